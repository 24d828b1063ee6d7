"""Tiled inference speed: the engine end to end against the model-only ceiling and a naive
per-tile pipeline, on synthetic survey frames (Django-free).

    python bench/inference.py --quick            # < 60 s on a 2-core CPU: small frames (1792x896)
    python bench/inference.py                    # 6000 x 4000 frames
    python bench/inference.py --device cuda --compile --batch-size 256 --frames 24

Three figures, tiles per second, same model, same machine, same run:

- ceiling: the network alone at the engine's precision and batch size on a batch already on the
  device, normalised and channels-last (``Predictor.score_normalised``); median over repeats.
- e2e: ``Predictor.predict_files`` from JPEG files to score grids: decoding, transfer, tiling,
  normalisation, the network, read-back; total tiles over wall time, median over repeats.
- naive: the usual tutorial pipeline: PIL opens the frame, crops each tile, torchvision
  ``ToTensor`` + ``Normalize``, fp32, NCHW, batches of 32; median over batches, with the frame's
  decoding shared over its tiles.

The three are measured in alternating rounds, so a neighbour's load on a shared machine weighs on
all three alike; CPU seconds per tile are reported too, as a load-independent check. Frames are synthesised in a child process, so the
reported peak RSS is the engine's and the naive pipeline's, not the renderer's.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAIVE_BATCH = 32


# ------------------------------------------------------------------------------ frames


def synth_frame(width: int, height: int, seed: int):
    """A realistic aerial frame (uint8 RGB): the demo survey renderer if present, else smooth
    noise with floes, leads and grain, so that JPEG size and decoding cost are realistic."""
    try:
        from labeling.demo.synth import render_frame

        img, _ = render_frame(width, height, seed=seed, n_bears=2)
        return img
    except ImportError:
        pass
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.zeros((height, width), dtype=np.float32)
    for scale, amp in ((64, 40.0), (16, 25.0), (4, 12.0)):
        small = rng.random((height // scale + 2, width // scale + 2), dtype=np.float32)
        up = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        out += (np.asarray(up, dtype=np.float32) / 255 - 0.5) * amp
    ice = 200 + out
    ice[out < -12] = 40  # open-water leads
    ice += rng.normal(0, 3, ice.shape).astype(np.float32)  # sensor grain
    rgb = np.stack([ice * 0.95, ice * 0.98, ice * 1.02], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make_frames(folder: Path, count: int, width: int, height: int) -> None:
    from PIL import Image

    for i in range(count):
        Image.fromarray(synth_frame(width, height, seed=i)).save(
            folder / f"frame_{i:03d}.jpg", quality=90
        )


# ------------------------------------------------------------------------------ measurements


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ceiling_batches(predictor, batches: int, group: int) -> list[float]:
    """Tiles/s of the network alone, one figure per group of ``group`` batches."""
    import torch

    t = predictor.tile
    g = torch.Generator().manual_seed(0)
    x = torch.randn(predictor.batch_size, 3, t, t, generator=g).to(
        predictor.device, memory_format=torch.channels_last
    )
    rates = []
    for _ in range(batches):
        sync(predictor.device)
        t0 = time.perf_counter()
        for _ in range(group):
            out = predictor.score_normalised(x)
        out.cpu()  # the engine reads every batch's scores back too
        sync(predictor.device)
        rates.append(group * predictor.batch_size / (time.perf_counter() - t0))
    return rates


class Naive:
    """The tutorial pipeline: PIL crop per tile, ToTensor + Normalize, fp32, NCHW."""

    def __init__(self, ckpt, device: str):
        import torch
        from torchvision import transforms

        from inference.engine.checkpoint import model_from_checkpoint

        self.device = device
        self.model = model_from_checkpoint(ckpt).eval().to(device)
        pre = ckpt.preprocessing
        self.tf = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(pre.mean, pre.std)]
        )
        self.pos = ckpt.positive_index
        self.torch = torch

    def batches(self, path: Path, tiles, count: int) -> list[float]:
        """Tiles/s for ``count`` batches of the frame at ``path``, its decoding shared out."""
        from PIL import Image

        torch = self.torch
        t0 = time.perf_counter()
        frame = Image.open(path)
        frame.load()
        decode_s = time.perf_counter() - t0
        boxes = [tiles.box(r, c) for r in range(tiles.rows) for c in range(tiles.cols)]
        rates = []
        for b in range(count):
            chunk = boxes[(b * NAIVE_BATCH) % len(boxes) :][:NAIVE_BATCH]
            sync(self.device)
            t0 = time.perf_counter()
            x = torch.stack([self.tf(frame.crop(box)) for box in chunk]).to(self.device)
            with torch.no_grad():
                probs = self.model(x).softmax(dim=1)[:, self.pos].cpu()
            elapsed = time.perf_counter() - t0 + decode_s * len(chunk) / len(boxes)
            rates.append(len(probs) / elapsed)
        return rates


def e2e_run(predictor, paths: list[Path], min_overlap: int) -> dict:
    t0 = time.perf_counter()
    tiles = 0
    decode_s = wait_s = 0.0
    errors = []
    for result in predictor.predict_files(paths, min_overlap=min_overlap):
        if not result.ok:
            errors.append(result.error)
            continue
        tiles += result.scores.tiles.count
        decode_s += result.decode_s
        wait_s += result.wait_s
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"frames failed: {errors}")
    return {
        "tiles": tiles,
        "wall_s": wall,
        "rate": tiles / wall,
        "decode_s": decode_s,
        "wait_s": wait_s,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: GPU if present)")
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--compile", action="store_true", help="torch.compile the network")
    ap.add_argument(
        "--quick", action="store_true", help="small frames, few repeats (< 60 s on CPU)"
    )
    ap.add_argument(
        "--frames", type=int, default=None, help="frames per e2e run (default 2; 24 on GPU)"
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", default=None, help="frame WxH (default 6000x4000; quick: 1792x896)")
    ap.add_argument("--min-overlap", type=int, default=0)
    ap.add_argument(
        "--repeats", type=int, default=None, help="rounds of ceiling/e2e/naive (medians reported)"
    )
    ap.add_argument("--make-frames", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    # quick: two 8 x 4 tile frames, whose 64 tiles make exactly one batch of 64 across both
    size = args.size or ("1792x896" if args.quick else "6000x4000")
    width, height = (int(v) for v in size.lower().split("x"))
    if args.make_frames:  # child process: render and write the frames, then exit
        make_frames(Path(args.make_frames), args.frames, width, height)
        return {}

    import torch

    from inference.engine.checkpoint import Checkpoint, build_model
    from inference.engine.predictor import Predictor
    from inference.engine.tiling import plan_tiles

    on_gpu_hint = (args.device or "").startswith("cuda")
    frames = args.frames or (2 if not on_gpu_hint else 24)
    unique = min(frames, 4)  # decoding repeats per item, so a few distinct files suffice
    rounds = args.repeats or (3 if on_gpu_hint else 2)

    folder = Path(tempfile.mkdtemp(prefix="bearsite-bench-inference-"))
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--make-frames",
            str(folder),
            "--frames",
            str(unique),
            "--size",
            size,
        ],
        check=True,
    )
    files = sorted(folder.glob("*.jpg"))
    paths = [files[i % unique] for i in range(frames)]
    mb = sum(p.stat().st_size for p in files) / unique / 1e6
    print(
        f"frames: {frames} x {width}x{height} JPEG ({mb:.1f} MB each), made in {time.perf_counter() - t0:.1f} s"
    )

    rss_torch = peak_rss_mb()
    torch.manual_seed(0)
    ckpt = Checkpoint(state_dict=build_model("resnet50").state_dict())
    predictor = Predictor(
        ckpt,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        compile=args.compile,
    )
    device = predictor.device
    on_gpu = device.startswith("cuda")
    tiles = plan_tiles(height, width, tile=predictor.tile, min_overlap=args.min_overlap)
    naive = Naive(ckpt, device)
    rss_models = peak_rss_mb()
    print(
        f"device {device}, precision {predictor.precision} ({predictor.precision_reason}), "
        f"batch {args.batch_size}, threads {torch.get_num_threads()}, compile {args.compile}"
    )
    print(
        f"tiles per frame: {tiles.rows} x {tiles.cols} = {tiles.count} (min overlap {args.min_overlap} px); "
        f"{frames * tiles.count} tiles per e2e run, {rounds} rounds"
    )
    print(f"peak RSS after importing torch and building both models: {rss_models:.0f} MB")

    # Warm-up, not timed: on a GPU, cuDNN autotuning (and compilation, if asked) happen on the
    # first calls of each shape; on a CPU the first call only loads kernels, so a tiny one does.
    t0 = time.perf_counter()
    if on_gpu:
        ceiling_batches(predictor, 1, 3)
        naive.batches(files[0], tiles, 1)
    else:
        predictor.predict_array(synth_frame(224, 448, seed=99))
        if args.compile:
            ceiling_batches(predictor, 1, 1)
    print(f"warm-up {time.perf_counter() - t0:.1f} s")

    # Rounds of ceiling, e2e and naive in turn, so load from neighbours on a shared machine
    # weighs on all three; CPU seconds are counted too, as a load-independent check.
    group = 10 if on_gpu else 1
    ceil_each = 3 if on_gpu else (1 if args.quick else 2)
    naive_each = 3 if on_gpu else (1 if args.quick else 2)
    ceiling, naive_rates, runs, e2e_peaks = [], [], [], []
    cpu = {"ceiling": [0.0, 0], "e2e": [0.0, 0], "naive": [0.0, 0]}

    def timed(kind, fn, tiles_done):
        c0 = time.process_time()
        out = fn()
        cpu[kind][0] += time.process_time() - c0
        cpu[kind][1] += tiles_done(out)
        return out

    for i in range(rounds):
        ceiling += timed(
            "ceiling",
            lambda: ceiling_batches(predictor, ceil_each, group),
            lambda o: len(o) * group * args.batch_size,
        )
        can_reset = reset_peak_rss()
        runs.append(
            timed("e2e", lambda: e2e_run(predictor, paths, args.min_overlap), lambda o: o["tiles"])
        )
        if can_reset:
            e2e_peaks.append(peak_rss_since_reset_mb())
        naive_rates += timed(
            "naive",
            lambda i=i: naive.batches(files[i % unique], tiles, naive_each),
            lambda o: len(o) * NAIVE_BATCH,
        )

    ceiling_rate = statistics.median(ceiling)
    naive_rate = statistics.median(naive_rates)
    e2e_rate = statistics.median(r["rate"] for r in runs)
    cpu_per_tile = {k: v[0] / v[1] for k, v in cpu.items()}
    for i, r in enumerate(runs):
        print(
            f"e2e run {i}: {r['tiles']} tiles in {r['wall_s']:.1f} s = {r['rate']:.1f} tiles/s; "
            f"decoding {r['decode_s']:.2f} s in the background, engine waited {r['wait_s']:.2f} s for it"
        )
    print(f"ceiling {ceiling_rate:.1f} tiles/s (each: {', '.join(f'{v:.1f}' for v in ceiling)})")
    print(f"naive   {naive_rate:.1f} tiles/s (each: {', '.join(f'{v:.1f}' for v in naive_rates)})")
    e2e_each = ", ".join(f"{r['rate']:.1f}" for r in runs)
    print(f"e2e     {e2e_rate:.1f} tiles/s (each: {e2e_each})")
    print(
        "CPU seconds per tile (all threads): "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in cpu_per_tile.items())
    )
    result = {
        "ceiling_tiles_per_s": round(ceiling_rate, 2),
        "e2e_tiles_per_s": round(e2e_rate, 2),
        "naive_tiles_per_s": round(naive_rate, 2),
        "ratio_e2e_to_ceiling": round(e2e_rate / ceiling_rate, 3),
        "ratio_e2e_to_naive": round(e2e_rate / naive_rate, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # Peak RSS while the engine ran end to end (the naive model's weights still loaded).
        "e2e_peak_rss_mb": round(max(e2e_peaks), 1) if e2e_peaks else None,
        "device": device,
        "precision": predictor.precision,
        "batch_size": args.batch_size,
        "compile": args.compile,
        "frame": f"{width}x{height}",
        "frames": frames,
        "tiles_per_frame": tiles.count,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "rounds": rounds,
        # Load-independent cross-check on a shared CPU: ratios of CPU seconds per tile.
        "cpu_ratio_e2e_to_ceiling": round(cpu_per_tile["ceiling"] / cpu_per_tile["e2e"], 3),
        "cpu_ratio_e2e_to_naive": round(cpu_per_tile["naive"] / cpu_per_tile["e2e"], 3),
        "rss_after_models_mb": round(rss_models, 1),
        "rss_after_import_torch_mb": round(rss_torch, 1),
    }
    if on_gpu:
        result["gpu"] = torch.cuda.get_device_name()
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    for p in files:
        p.unlink()
    os.rmdir(folder)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
