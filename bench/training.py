"""Training throughput: the real data pipeline against the model alone, and by freeze level.

    python bench/training.py [--quick] [--device cpu|cuda] [--batch-size 64] [--tile-size 224]

Figures (images per second from the median step time):

- ``train_images_per_s``: the training loop's own parts, as ``train()`` wires them: tiles
  decoded from JPEG and PNG files on disk by ``TileDataset`` (with augmentation), batched by
  the balanced sampler through the DataLoader, then one ``TrainStep``. A step's time includes
  waiting for the loader.
- ``synthetic_images_per_s``: the same ``TrainStep`` on one uint8 batch already in memory.
- ``ratio_pipeline`` = train / synthetic (goal >= 0.9: the loader never starves the model).
- ``loader_wait_share``: the share of the pipeline's step time spent waiting for a batch,
  measured inside the same steps, so it holds even where machine load makes the two rates
  noisy (1 - share is the ratio the loader alone allows).
- ``images_per_s_by_freeze``: synthetic, for each freeze level.
- ``images_per_s_by_input_scale``: synthetic, the default freeze level, with the network seeing
  the tile averaged down by 1, 2 and 4 (``input_scale``; the demo model uses 2).
- ``peak_rss_mb``: the process's peak resident memory, read after a step at batch 64.

The two sides of each ratio alternate on the same model (step by step without loader workers,
in blocks with them), so a change in the machine's load (a shared CI box) hits both alike. Each
pipeline block first discards the steps the loader could have prefetched during the previous
block, so prefetching does not flatter it.

``--quick`` (under a minute on a 2-core CPU): 64 px tiles, batch 16, 2 rounds of 2 timed
steps, and the batch-64 step at 64 px; without it, ``--tile-size`` (224) and ``--batch-size``
(64), 3 rounds of 3 steps. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.engine.checkpoint import INPUT_SCALES, Checkpoint, build_model  # noqa: E402
from training.loop import runtime  # noqa: E402
from training.loop.data import TileDataset, file_sample  # noqa: E402
from training.loop.freeze import FREEZE_LEVELS  # noqa: E402
from training.loop.sampler import BalancedBatchSampler  # noqa: E402
from training.loop.train import TrainConfig, TrainStep  # noqa: E402

PREFETCH = 4  # runtime.make_loader's prefetch_factor


def write_tiles(folder: Path, count: int, size: int, seed: int = 0) -> list:
    """Survey-like tiles: noisy ice texture; every fourth has a bright blob. Half JPEG, half PNG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    samples = []
    for i in range(count):
        tile = rng.normal(150, 25, size=(size, size, 3)).clip(0, 255).astype(np.uint8)
        bear = i % 4 == 0
        if bear:
            cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
            tile[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 10) ** 2] = 245
        path = folder / f"tile{i:04d}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(tile).save(path, quality=90)
        samples.append(file_sample(path, label=int(bear), group=f"frame{i // 8}"))
    return samples


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class PipelineSide:
    """Files -> TileDataset -> BalancedBatchSampler -> DataLoader -> TrainStep, as train() does."""

    def __init__(self, cfg: TrainConfig, samples, stepper: TrainStep) -> None:
        ds = TileDataset(samples, tile_size=cfg.tile_size, augment=cfg.augment)
        self.sampler = BalancedBatchSampler(
            ds.labels, batch_size=cfg.batch_size, min_positives=cfg.min_positives, seed=cfg.seed
        )
        self.loader = runtime.make_loader(
            ds, device=stepper.device, num_workers=cfg.num_workers, batch_sampler=self.sampler
        )
        self.stepper = stepper
        self.epoch = 0
        self.batches = iter(())
        # Batches the loader may have prefetched while the other side ran: not timed.
        self.prefetched = (cfg.num_workers or 0) * PREFETCH
        self.warm = False
        self.wait: list[float] = []  # time spent getting each timed batch from the loader

    def next_batch(self):
        try:
            return next(self.batches)
        except StopIteration:
            self.sampler.set_epoch(self.epoch)
            self.epoch += 1
            self.batches = iter(self.loader)
            return next(self.batches)

    def block(self, steps: int) -> list[float]:
        times = []
        discard = self.prefetched + (0 if self.warm else 1)  # plus one warm-up step, once
        self.warm = True
        for i in range(discard + steps):
            t = time.perf_counter()
            tiles, labels = self.next_batch()
            loaded = time.perf_counter()
            self.stepper(tiles, labels)
            sync(self.stepper.device)
            if i >= discard:
                times.append(time.perf_counter() - t)
                self.wait.append(loaded - t)
        return times


class SyntheticSide:
    """The same TrainStep on one uint8 batch held in memory.

    The batch is one the pipeline produced (repeated to size if needed), so both sides compute
    on the same pixels: content can change CPU speed (denormal numbers, for one).
    """

    def __init__(
        self, stepper: TrainStep, tiles: torch.Tensor, labels: torch.Tensor, size: int
    ) -> None:
        reps = -(-size // len(labels))
        self.tiles = tiles.repeat(reps, 1, 1, 1)[:size].clone()
        self.labels = labels.repeat(reps)[:size].clone()
        self.stepper = stepper
        self.warm = False

    def block(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps + (0 if self.warm else 1)):
            t = time.perf_counter()
            self.stepper(self.tiles, self.labels)
            sync(self.stepper.device)
            times.append(time.perf_counter() - t)
        if not self.warm:
            times, self.warm = times[1:], True  # first step: allocations, kernel choice
        return times


def rate(times: list[float], batch: int) -> float:
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per block")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: auto)")
    ap.add_argument("--precision", default="auto", choices=runtime.PRECISIONS)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = runtime.resolve_device(args.device)
    precision = runtime.resolve_precision(args.precision, device)
    tile = args.tile_size or (64 if args.quick else 224)
    batch = args.batch_size or (16 if args.quick else 64)
    rounds = args.rounds or (2 if args.quick else 3)
    steps = args.steps or (2 if args.quick else 3)
    workers = runtime.default_num_workers(device) if args.workers is None else args.workers
    cfg = TrainConfig(
        batch_size=batch,
        min_positives=max(1, batch // 8),
        tile_size=tile,
        device=str(device),
        precision=precision,
        num_workers=workers,
    )
    print(
        f"device {device} ({platform.machine()}, {torch.get_num_threads()} threads), "
        f"precision {precision}, tile {tile} px, batch {batch}, {rounds} rounds x {steps} "
        f"timed steps, {workers} loader workers",
        flush=True,
    )
    torch.manual_seed(0)
    base = Checkpoint(state_dict=build_model().state_dict())

    def stepper_for(c: TrainConfig) -> TrainStep:
        s = TrainStep.build(c, base, 1000, device=device, precision=precision)
        s.model.train()
        return s

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        count = 4 * batch  # a few batches; the pipeline side cycles epochs over them
        t = time.perf_counter()
        samples = write_tiles(Path(tmp), count, tile)
        print(f"wrote {count} tiles in {time.perf_counter() - t:.1f} s", flush=True)

        stepper = stepper_for(cfg)
        pipeline_side = PipelineSide(cfg, samples, stepper)
        sample_tiles, sample_labels = pipeline_side.next_batch()
        synthetic_side = SyntheticSide(stepper, sample_tiles, sample_labels, batch)
        pipe_times: list[float] = []
        synth_times: list[float] = []
        # Without loader workers nothing is prefetched between blocks, so the sides can
        # alternate step by step, which cancels load changes best.
        per_block = 1 if workers == 0 else steps
        for r in range(rounds):
            for _ in range(steps // per_block):
                pipe_times += pipeline_side.block(per_block)
                synth_times += synthetic_side.block(per_block)
            print(
                f"round {r + 1}: pipeline {rate(pipe_times, batch):.1f} img/s, "
                f"synthetic {rate(synth_times, batch):.1f} img/s (medians so far)",
                flush=True,
            )
        wait_share = sum(pipeline_side.wait) / sum(pipe_times)
        del pipeline_side  # stop loader workers before the freeze comparison
    pipeline, synthetic = rate(pipe_times, batch), rate(synth_times, batch)
    print(f"waiting for the loader: {wait_share:.1%} of the pipeline's step time", flush=True)

    by_freeze_times: dict[str, list[float]] = {}
    sides = {}
    for level in FREEZE_LEVELS[1:]:
        level_cfg = TrainConfig(**(cfg.as_dict() | {"freeze": level}))
        level_stepper = stepper if level == cfg.freeze else stepper_for(level_cfg)
        sides[level] = SyntheticSide(level_stepper, sample_tiles, sample_labels, batch)
        by_freeze_times[level] = []
    for _ in range(max(1, rounds - 1)):
        for level, side in sides.items():
            by_freeze_times[level] += side.block(steps)
    by_freeze = {k: rate(v, batch) for k, v in by_freeze_times.items()}
    print("by freeze: " + ", ".join(f"{k} {v:.1f}" for k, v in by_freeze.items()), flush=True)
    del sides

    scale_sides = {
        scale: SyntheticSide(
            stepper
            if scale == cfg.input_scale
            else stepper_for(TrainConfig(**(cfg.as_dict() | {"input_scale": scale}))),
            sample_tiles,
            sample_labels,
            batch,
        )
        for scale in INPUT_SCALES
        if tile % scale == 0
    }
    by_scale_times: dict[int, list[float]] = {k: [] for k in scale_sides}
    for _ in range(max(1, rounds - 1)):
        for scale, side in scale_sides.items():
            by_scale_times[scale] += side.block(steps)
    by_scale = {k: rate(v, batch) for k, v in by_scale_times.items()}
    print("by input scale: " + ", ".join(f"1/{k} {v:.1f}" for k, v in by_scale.items()), flush=True)
    del scale_sides, stepper

    rss_cfg = TrainConfig(**(cfg.as_dict() | {"batch_size": 64, "min_positives": 8}))
    SyntheticSide(stepper_for(rss_cfg), sample_tiles, sample_labels, 64).block(0)  # one step
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS, after a batch-64 step at {tile} px: {peak_rss_mb:.0f} MB", flush=True)

    print(
        json.dumps(
            {
                "train_images_per_s": round(pipeline, 2),
                "synthetic_images_per_s": round(synthetic, 2),
                "ratio_pipeline": round(pipeline / synthetic, 3),
                "loader_wait_share": round(wait_share, 4),
                "images_per_s_by_freeze": {k: round(v, 2) for k, v in by_freeze.items()},
                "images_per_s_by_input_scale": {str(k): round(v, 2) for k, v in by_scale.items()},
                "peak_rss_mb": round(peak_rss_mb),
                "device": str(device),
                "precision": precision,
                "tile_size": tile,
                "batch_size": batch,
                "timed_steps": rounds * steps,
                "loader_workers": workers,
                "threads": torch.get_num_threads(),
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
