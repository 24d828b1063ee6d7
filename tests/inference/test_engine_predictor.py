"""The predictor's scores against the per-tile PIL reference, batch-size independence, bf16,
files with bad frames among good ones. A random ResNet-50 on few tiles (about 70 tile passes
in all, 2 of them in emulated bf16: ResNet-50 runs about 8 tiles/s on a 2-core CPU)."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from inference.engine.checkpoint import save_checkpoint
from inference.engine.decode import decode_frame
from inference.engine.predictor import (
    BF16_ATOL,
    FP32_ATOL,
    FrameSource,
    Predictor,
    PredictorError,
    cpu_has_native_bf16,
)
from inference.engine.tiling import FrameTooSmall, plan_tiles
from tests.inference.engine_helpers import (
    corrupt_jpeg_bytes,
    make_checkpoint,
    make_frame,
    reference_scores,
    write_jpeg,
)

# The engine's device; the reference always runs on the CPU. bench/gpu.sh sets it to "cuda" to
# check the GPU path (pinned copies, streams, padded batches) against the same reference.
DEVICE = os.environ.get("BEARSITE_ENGINE_TEST_DEVICE", "cpu")

# (height, width, min_overlap): sizes that are not multiples of 224, with and without overlap.
CASES = [(300, 500, 0), (448, 700, 100)]


@pytest.fixture(scope="module")
def ckpt():
    return make_checkpoint(seed=0)


@pytest.fixture(scope="module")
def predictor(ckpt):
    return Predictor(ckpt, device=DEVICE, precision="fp32", batch_size=64)


@pytest.fixture(scope="module")
def frames():
    # seed 0 gives both frames tiles from about 0.1 to 0.8 with the calibrated random head
    return {(h, w): make_frame(h, w, seed=0) for h, w, _ in CASES}


@pytest.fixture(scope="module")
def reference(ckpt, frames):
    """Reference scores per case, computed once per module (the expensive part)."""
    out = {}
    for h, w, ov in CASES:
        out[(h, w, ov)] = reference_scores(ckpt, frames[(h, w)], plan_tiles(h, w, min_overlap=ov))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-overlap{c[2]}")
def test_fp32_scores_equal_the_per_tile_pil_reference(predictor, frames, reference, case):
    h, w, ov = case
    got = predictor.predict_array(frames[(h, w)], min_overlap=ov)
    ref = reference[case]
    assert got.tiles == plan_tiles(h, w, min_overlap=ov)
    assert got.grid.shape == ref.shape and got.grid.dtype == np.float32
    np.testing.assert_allclose(got.grid, ref, rtol=0, atol=FP32_ATOL)
    # The test means something only if tiles differ: the head is calibrated for a spread.
    assert ref.max() - ref.min() > 0.3


def test_scores_do_not_depend_on_the_batch_size(ckpt, frames, reference):
    # Batch 64 is checked against the reference above; batch 4 splits the 6 tiles 4 + 2.
    small = Predictor(ckpt, device=DEVICE, precision="fp32", batch_size=4)
    got_small = small.predict_array(frames[(300, 500)]).grid
    np.testing.assert_allclose(got_small, reference[(300, 500, 0)], rtol=0, atol=FP32_ATOL)


def test_bf16_scores_stay_within_the_stated_tolerance(ckpt, frames, reference):
    bf16 = Predictor(ckpt, device=DEVICE, precision="bf16", batch_size=64)
    assert bf16.precision == "bf16" and "bf16" in bf16.precision_reason
    # Two tiles only: bf16 is emulated, hence slow, on CPUs without it. The top-left 224 x 448
    # of the frame holds exactly the reference's tiles (0, 0) and (0, 1).
    got = bf16.predict_array(np.ascontiguousarray(frames[(300, 500)][:224, :448])).grid
    np.testing.assert_allclose(got, reference[(300, 500, 0)][:1, :2], rtol=0, atol=BF16_ATOL)


def test_precision_is_chosen_by_the_hardware_and_recorded(ckpt):
    auto = Predictor(ckpt, device="cpu")
    assert auto.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert auto.precision_reason.startswith("auto:")
    assert auto.info["precision"] == auto.precision and auto.info["device"] == "cpu"
    with pytest.raises(PredictorError, match="precision"):
        Predictor(ckpt, device="cpu", precision="fp16")


def test_files_are_scored_in_order_and_a_bad_frame_fails_alone(ckpt, frames, reference, tmp_path):
    # Lossless files, so the decoded pixels are the frames the reference scored.
    big = frames[(300, 500)]
    good_a = tmp_path / "a.png"
    Image.fromarray(big).save(good_a)
    corrupt = tmp_path / "b.jpg"
    corrupt.write_bytes(corrupt_jpeg_bytes(big))
    tiny = write_jpeg(tmp_path / "c.jpg", make_frame(100, 300))
    good_d = tmp_path / "d.png"
    Image.fromarray(np.ascontiguousarray(big[:224, :448])).save(good_d)  # tiles (0,0), (0,1)
    # batch_size 4: a's 6 tiles and d's 2 share a batch, across the two bad frames.
    engine = Predictor(ckpt, device=DEVICE, precision="fp32", batch_size=4)
    results = list(engine.predict_files([good_a, corrupt, tiny, good_d], keep_image=True))

    assert [r.path for r in results] == [str(p) for p in (good_a, corrupt, tiny, good_d)]
    assert [r.ok for r in results] == [True, False, False, True]
    assert "b.jpg" in results[1].error and "truncated" in results[1].error
    assert "c.jpg" in results[2].error and "smaller than one 224x224 px tile" in results[2].error
    assert results[1].scores is None and results[1].image is None

    ref = reference[(300, 500, 0)]
    np.testing.assert_allclose(results[0].scores.grid, ref, rtol=0, atol=FP32_ATOL)
    np.testing.assert_allclose(results[3].scores.grid, ref[:1, :2], rtol=0, atol=FP32_ATOL)
    assert (results[0].image == big).all()  # the decoded frame, for rendering crops
    assert all(r.decode_s > 0 and r.infer_s > 0 for r in (results[0], results[3]))


def test_files_from_storage_are_decoded_ahead_in_a_background_thread(ckpt, tmp_path):
    # Batches of 2 = one frame each, so the first frame is finished before the second is needed.
    predictor = Predictor(ckpt, device=DEVICE, precision="fp32", batch_size=2)
    paths = [write_jpeg(tmp_path / f"f{i}.jpg", make_frame(224, 300, seed=i)) for i in range(2)]
    events = []

    def opener(i):
        def open_frame():
            events.append(("open", i, threading.current_thread().name))
            return open(paths[i], "rb")

        return open_frame

    sources = [FrameSource(f"surveys/1/f{i}.jpg", opener(i)) for i in range(2)]
    results = []
    for r in predictor.predict_files(sources):
        events.append(("result", r.path, threading.current_thread().name))
        results.append(r)

    assert [r.path for r in results] == ["surveys/1/f0.jpg", "surveys/1/f1.jpg"]
    assert all(r.ok for r in results)
    opens = [e for e in events if e[0] == "open"]
    assert all(name.startswith("bearsite-decode") for _, _, name in opens)
    # The second frame was being decoded before the first one's scores were handed over.
    assert events.index(opens[1]) < events.index(("result", "surveys/1/f0.jpg", events[-1][2]))
    for i, r in enumerate(results):
        expected = predictor.predict_array(decode_frame(paths[i])).grid
        np.testing.assert_allclose(r.scores.grid, expected, rtol=0, atol=FP32_ATOL)


def test_a_frame_smaller_than_a_tile_or_not_an_image_is_refused(predictor):
    with pytest.raises(FrameTooSmall, match="500x100"):
        predictor.predict_array(np.zeros((100, 500, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict_array(np.zeros((300, 300, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="min_overlap"):
        list(predictor.predict_files([], min_overlap=224))


def test_a_checkpoint_file_loads_into_a_predictor(ckpt, tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(ckpt, path)
    loaded = Predictor.from_file(path, device="cpu", precision="fp32", batch_size=8)
    assert loaded.tile == 224 and loaded.batch_size == 8 and loaded.info["init"] == "random"


def test_importing_the_engine_touches_neither_cuda_nor_torch_where_not_needed():
    code = (
        "import sys\n"
        "import inference.engine.tiling, inference.engine.selection, inference.engine.crops, "
        "inference.engine.decode, inference.engine.predictor\n"
        "assert 'torch' not in sys.modules, 'engine import pulled in torch'\n"
        "import torch\n"
        "assert not torch.cuda.is_initialized()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo_root()))


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
