"""The training loop end to end on tiny tiles: it learns, checkpoints, resumes and cancels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.engine.checkpoint import (
    Checkpoint,
    build_model,
    file_sha256,
    load_checkpoint,
)
from training.loop.data import TileDataset, array_sample
from training.loop.evaluate import evaluate_model
from training.loop.runtime import InputPrep
from training.loop.train import Progress, TrainConfig, resume_path_for, train

TILE = 32  # ResNet-50 takes 32 px tiles thanks to adaptive pooling; 50x cheaper than 224 px


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: on a shared 2-core box the thread pool's hand-offs cost more than they win.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_samples(n_neg: int, n_pos: int, prefix: str, seed: int) -> list:
    """Background: grey texture. Bear: the same texture with a bright blob somewhere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:TILE, :TILE]
    out = []
    for i in range(n_neg + n_pos):
        tile = rng.integers(40, 110, size=(TILE, TILE, 3), dtype=np.uint8)
        bear = i >= n_neg
        if bear:
            cy, cx = rng.integers(8, TILE - 8, size=2)
            tile[(yy - cy) ** 2 + (xx - cx) ** 2 < 20] = 240
        # Four tiles per frame: the split is by frame.
        out.append(
            array_sample(tile, label=int(bear), group=f"{prefix}-frame{i // 4}", key=f"{prefix}{i}")
        )
    return out


@pytest.fixture(scope="module")
def base() -> Checkpoint:
    """A random ResNet-50 whose BatchNorm statistics fit these tiles, as ImageNet's fit photos.

    With random statistics a few steps cannot bring the running averages in line with the
    batch statistics, and eval-mode scores would say nothing about what was learned.
    """
    torch.manual_seed(0)
    model = build_model()
    tiles = TileDataset(make_samples(24, 8, "calib", 99), tile_size=TILE, augment=False)
    x = torch.stack([tiles[i][0] for i in range(len(tiles))])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over this one pass
    model.train()
    with torch.no_grad():
        model(InputPrep(torch.device("cpu"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(x))
    for m in bns:
        m.momentum = 0.1
    return Checkpoint(
        state_dict={k: v.clone() for k, v in model.state_dict().items()}, init="random"
    )


def test_configuration_problems_are_all_reported_before_any_work():
    cfg = TrainConfig(
        epochs=0, freeze="layer9", optimizer="adam", min_positives=64, precision="fp8"
    )
    with pytest.raises(ValueError) as err:
        cfg.validate()
    message = str(err.value)
    for word in ("epochs", "freeze", "optimizer", "min_positives", "precision"):
        assert word in message
    with pytest.raises(ValueError, match="unknown training settings: learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert TrainConfig.from_dict({"epochs": 5, "freeze": "layer1"}).epochs == 5
    TrainConfig().validate()  # the defaults are valid


def test_leaky_or_unmeasurable_splits_are_refused(tmp_path, base):
    tmp_path = tmp_path / "runs"  # the shared conftest puts a media folder in tmp_path
    train_set = make_samples(8, 4, "t", 1)
    cfg = TrainConfig(epochs=1, batch_size=8, min_positives=2, tile_size=TILE)
    with pytest.raises(ValueError, match="in both splits"):
        train(cfg, train_set, make_samples(4, 4, "t", 2), base=base, out_path=tmp_path / "m.pt")
    with pytest.raises(ValueError, match="validation split holds no bear"):
        train(cfg, train_set, make_samples(4, 0, "v", 2), base=base, out_path=tmp_path / "m.pt")
    assert not tmp_path.exists(), "nothing is written for a refused run"


def test_a_short_real_run_learns_bright_blobs_and_its_checkpoint_tells_how_to_run_it(
    tmp_path, base
):
    train_set = make_samples(48, 16, "t", 1)
    val_set = make_samples(24, 16, "v", 2)
    cfg = TrainConfig(
        epochs=3,
        lr=0.01,
        batch_size=16,
        min_positives=4,
        tile_size=TILE,
        optimizer="sgd",
        freeze="stem",
        eval_every_epoch=False,
        seed=1,
        precision="fp32",  # the re-evaluation below must see the same numbers
    )
    reports: list[Progress] = []
    out = tmp_path / "model.pt"
    result = train(
        cfg,
        train_set,
        val_set,
        base=base,
        out_path=out,
        on_progress=reports.append,
        data_snapshot={"labels_until": "2024-05-01"},
    )
    assert not result.cancelled and result.epochs_completed == 3
    assert result.checkpoint_path == out and result.sha256 == file_sha256(out)
    assert not resume_path_for(out).exists(), "the resume file goes once the run is complete"

    # Progress: every step reported, in order, with the figures the run row shows.
    steps = [p for p in reports if p.phase == "train"]
    assert len(steps) == 3 * 4  # 48 negatives / (16 - 4) per batch = 4 steps per epoch
    assert [p.global_step for p in steps] == list(range(1, 13))
    assert all(p.loss is not None and p.images_per_s > 0 and p.eta_s >= 0 for p in steps)
    assert steps[-1].eta_s == 0
    assert reports[-1].phase == "done"
    assert np.mean([p.loss for p in steps[-4:]]) < np.mean([p.loss for p in steps[:4]])

    # The checkpoint is the source of truth: classes, preprocessing, config, data, metrics.
    ckpt = load_checkpoint(out)
    assert ckpt.class_names == base.class_names and ckpt.init == "finetuned"
    assert ckpt.preprocessing.tile_size == TILE
    assert ckpt.config["freeze"] == "stem" and ckpt.config["epochs"] == 3
    assert ckpt.data_snapshot["labels_until"] == "2024-05-01"
    assert ckpt.data_snapshot["train_tiles"] == 64
    assert "optimizer" not in ckpt.training_state, "a final model carries no optimiser state"
    assert TrainConfig.from_dict(ckpt.config) == cfg
    assert ckpt.training_state["run"]["precision"] == "fp32"

    # It learned: validation accuracy at the 0.5 threshold, measured again from the file.
    at_half = evaluate_model(ckpt, val_set, threshold=0.5, precision="fp32")
    assert at_half.accuracy >= 0.9, at_half
    # Same file, same outputs: re-evaluation reproduces the stored figures.
    again = evaluate_model(ckpt, val_set, target_recall=cfg.target_recall, precision="fp32")
    assert again.threshold == pytest.approx(result.metrics["threshold"], rel=1e-5)
    assert again.ap == pytest.approx(result.metrics["ap"])
    assert result.metrics["recall"] >= 0.95

    # A redelivered task does nothing twice.
    rerun: list[Progress] = []
    second = train(cfg, train_set, val_set, base=base, out_path=out, on_progress=rerun.append)
    assert not rerun and second.sha256 == result.sha256


def small_run_config(**overrides) -> TrainConfig:
    settings = dict(
        epochs=2,
        lr=0.05,
        batch_size=16,
        min_positives=4,
        tile_size=TILE,
        optimizer="sgd",
        momentum=0.9,
        freeze="layer3",
        eval_every_epoch=False,
        schedule="cosine",
    )
    return TrainConfig(**(settings | overrides))


def test_a_run_stopped_after_an_epoch_resumes_to_the_same_weights(tmp_path, base):
    train_set = make_samples(24, 8, "t", 3)
    val_set = make_samples(8, 4, "v", 4)
    cfg = small_run_config()

    whole = train(cfg, train_set, val_set, base=base, out_path=tmp_path / "whole.pt")

    out = tmp_path / "stopped.pt"
    last: list[Progress] = []
    stopped = train(
        cfg,
        train_set,
        val_set,
        base=base,
        out_path=out,
        on_progress=last.append,
        # The worker "dies" once the first epoch's checkpoint is written.
        should_cancel=lambda: last[-1].phase == "checkpoint",
    )
    assert stopped.cancelled and stopped.epochs_completed == 1
    assert stopped.checkpoint_path == resume_path_for(out) and not out.exists()
    partial = load_checkpoint(stopped.checkpoint_path)
    state = partial.training_state
    assert state["epoch"] == 1 and state["global_step"] == 2
    assert {"optimizer", "scheduler", "sampler"} <= set(state)
    assert partial.config["lr"] == cfg.lr and partial.class_names == base.class_names

    resumed = train(cfg, train_set, val_set, base=base, out_path=out)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 2
    a = load_checkpoint(whole.checkpoint_path).state_dict
    b = load_checkpoint(resumed.checkpoint_path).state_dict
    # CPU kernels are deterministic here, so the weights match exactly; on a GPU, float
    # rounding in cuDNN would allow differences of order 1e-6.
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, mismatched[:5]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]


def test_cancel_inside_the_first_epoch_and_other_runs_leftovers(tmp_path, base):
    tmp_path = tmp_path / "runs"  # the shared conftest puts a media folder in tmp_path
    tmp_path.mkdir()
    train_set = make_samples(24, 8, "t", 3)
    val_set = make_samples(8, 4, "v", 4)
    out = tmp_path / "m.pt"
    result = train(
        small_run_config(), train_set, val_set, base=base, out_path=out, should_cancel=lambda: True
    )
    assert result.cancelled and result.epochs_completed == 0
    assert result.checkpoint_path is None and not list(tmp_path.iterdir())

    # A leftover from a run with another configuration is not resumed.
    last: list[Progress] = []
    train(
        small_run_config(lr=0.01),
        train_set,
        val_set,
        base=base,
        out_path=out,
        on_progress=last.append,
        should_cancel=lambda: last[-1].phase == "checkpoint",
    )
    assert resume_path_for(out).exists()
    other = train(
        small_run_config(), train_set, val_set, base=base, out_path=out, should_cancel=lambda: True
    )
    assert other.resumed_from_epoch == 0 and other.checkpoint_path is None


def test_a_run_at_half_input_scale_writes_a_model_that_runs_at_half_scale(tmp_path, base):
    """The factor is part of the model: the run trains and validates with it, the checkpoint
    carries it, and scoring the file again gives the run's own figures."""
    train_set = make_samples(16, 8, "t", 3)
    val_set = make_samples(8, 8, "v", 4)
    cfg = small_run_config(epochs=1, input_scale=2, precision="fp32", freeze="none")
    out = tmp_path / "half.pt"
    result = train(cfg, train_set, val_set, base=base, out_path=out)
    ckpt = load_checkpoint(out)
    assert ckpt.preprocessing.input_scale == 2 and ckpt.preprocessing.tile_size == TILE
    again = evaluate_model(ckpt, val_set, target_recall=cfg.target_recall, precision="fp32")
    assert again.ap == pytest.approx(result.metrics["ap"])
    assert again.threshold == pytest.approx(result.metrics["threshold"], rel=1e-5)
