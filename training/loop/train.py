"""The fine-tuning loop: balanced batches, a frozen prefix, a checkpoint every epoch, resume.

``train()`` takes plain samples and a base :class:`~inference.engine.checkpoint.Checkpoint` and
returns a :class:`TrainResult`; the Django service turns rows into samples, passes callbacks
that write the ``TrainingRun`` row, and records the result.

Invariants:
- The configuration is validated before any work (all problems reported at once).
- The training and validation splits share no frame (``TileSample.group``): a shared frame
  would leak and flatter the figures, so it is refused.
- After every epoch a checkpoint is written atomically to ``<out_path>.resume`` holding the
  model, optimiser, scheduler, sampler state, epoch, config, class names, preprocessing, data
  snapshot and that epoch's validation metrics. A run killed or cancelled mid-way and started
  again with the same config, data and base resumes from it; anything else starts afresh.
  Resumed and uninterrupted runs give the same weights (same batches, same augmentation, same
  optimiser state; CPU kernels are deterministic, GPU ones up to float rounding).
- On success the final model (the last epoch's, not the best epoch's) goes atomically to
  ``out_path`` with its validation metrics; it carries no optimiser state (its
  ``training_state`` holds only ``complete``, the run identity and the per-epoch history), and
  the resume file is removed. Calling ``train()`` again with the same inputs returns that result without training
  (a redelivered task does nothing twice).
- ``on_progress`` is called after every optimiser step and at each phase change;
  ``should_cancel`` is polled after every step and every epoch. A cancelled run keeps its last
  epoch checkpoint, so it can be resumed later.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from inference.engine.checkpoint import (
    INPUT_SCALES,
    Checkpoint,
    CheckpointError,
    Preprocessing,
    file_sha256,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

from . import runtime
from .augment import AugmentParams
from .data import TileDataset, TileSample, samples_fingerprint
from .evaluate import EvalMetrics, metrics_at, predict_scores
from .freeze import FREEZE_LEVELS, apply_freeze, trainable_parameters
from .sampler import BalancedBatchSampler

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
# Fields that change how fast a run goes, not what it computes: a run may resume with others.
EXECUTION_FIELDS = frozenset({"device", "num_workers", "cache_tiles", "eval_every_epoch"})


@dataclass
class TrainConfig:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    min_positives: int = 8
    freeze: str = "stem"
    optimizer: str = "sgd"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4  # not applied to biases and BatchNorm weights
    schedule: str = "cosine"  # per step, to zero at the end; "step": x step_gamma every step_epochs
    warmup_epochs: float = 0.0  # linear warm-up from lr/100, in (fractional) epochs
    step_epochs: int = 1
    step_gamma: float = 0.1
    seed: int = 0
    target_recall: float = 0.95
    precision: str = "auto"  # auto | bf16 | fp32 (see runtime.resolve_precision)
    channels_last: bool = True
    augment: bool = True
    scale_jitter: float = 0.1
    brightness_jitter: float = 0.15
    tile_size: int = 224
    # The network sees each tile averaged down by this factor (1, 2 or 4): the tile covers the
    # same ground, the network costs about 1/input_scale**2 (see inference.engine.checkpoint).
    input_scale: int = 1
    # Execution only (EXECUTION_FIELDS):
    eval_every_epoch: bool = True
    device: str | None = None
    num_workers: int | None = None  # None: runtime.default_num_workers
    cache_tiles: bool = False  # keep decoded tiles in memory (150 kB per 224 px tile)

    def problems(self) -> list[str]:
        p = []
        if not isinstance(self.epochs, int) or self.epochs < 1:
            p.append(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if not self.lr > 0:
            p.append(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            p.append(f"batch_size must be a whole number >= 2, got {self.batch_size!r}")
        elif (
            not isinstance(self.min_positives, int) or not 1 <= self.min_positives < self.batch_size
        ):
            p.append(
                f"min_positives must be between 1 and batch_size - 1 ({self.batch_size - 1}), "
                f"got {self.min_positives!r}"
            )
        if self.freeze not in FREEZE_LEVELS:
            p.append(f"freeze must be one of {', '.join(FREEZE_LEVELS)}, got {self.freeze!r}")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            p.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            p.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in SCHEDULES:
            p.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 <= self.warmup_epochs <= (self.epochs if isinstance(self.epochs, int) else 0):
            p.append(f"warmup_epochs must be between 0 and epochs, got {self.warmup_epochs!r}")
        if not isinstance(self.step_epochs, int) or self.step_epochs < 1:
            p.append(f"step_epochs must be a whole number >= 1, got {self.step_epochs!r}")
        if not 0 < self.step_gamma <= 1:
            p.append(f"step_gamma must be in (0, 1], got {self.step_gamma!r}")
        if not 0 < self.target_recall <= 1:
            p.append(f"target_recall must be in (0, 1], got {self.target_recall!r}")
        if self.precision not in runtime.PRECISIONS:
            p.append(
                f"precision must be one of {', '.join(runtime.PRECISIONS)}, got {self.precision!r}"
            )
        if not 0 <= self.scale_jitter < 0.5:
            p.append(f"scale_jitter must be in [0, 0.5), got {self.scale_jitter!r}")
        if not 0 <= self.brightness_jitter < 1:
            p.append(f"brightness_jitter must be in [0, 1), got {self.brightness_jitter!r}")
        if not isinstance(self.tile_size, int) or self.tile_size < 16:
            p.append(f"tile_size must be a whole number >= 16, got {self.tile_size!r}")
        if self.input_scale not in INPUT_SCALES:
            p.append(
                f"input_scale must be one of {', '.join(map(str, INPUT_SCALES))}, "
                f"got {self.input_scale!r}"
            )
        elif isinstance(self.tile_size, int) and self.tile_size % self.input_scale:
            p.append(
                f"tile_size must be a multiple of input_scale ({self.input_scale}), "
                f"got {self.tile_size}"
            )
        if self.num_workers is not None and (
            not isinstance(self.num_workers, int) or self.num_workers < 0
        ):
            p.append(f"num_workers must be None or a whole number >= 0, got {self.num_workers!r}")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                p.append(f"device {self.device!r} is not a torch device name (cpu, cuda, cuda:1)")
        return p

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the trained weights."""
        return {k: v for k, v in asdict(self).items() if k not in EXECUTION_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from stored settings; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg


@dataclass(frozen=True)
class Progress:
    """One report for the TrainingRun row. ``epoch`` and ``step`` count from 1."""

    phase: str  # "train" | "evaluate" | "checkpoint" | "done" | "cancelled"
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    global_step: int
    total_steps: int
    loss: float | None
    lr: float
    images_per_s: float
    eta_s: float | None


@dataclass
class TrainResult:
    checkpoint_path: Path | None  # the final model; when cancelled, the last epoch checkpoint
    sha256: str | None
    metrics: dict[str, Any]  # EvalMetrics.as_dict() of the last evaluation, {} if none
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per epoch
    cancelled: bool = False
    resumed_from_epoch: int = 0  # epochs already done when this call started
    epochs_completed: int = 0
    sampler_report: dict[str, Any] = field(default_factory=dict)


def resume_path_for(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".resume")


def _state_fingerprint(state_dict: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for k in sorted(state_dict):
        v = state_dict[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_data(train_samples: Sequence[TileSample], val_samples: Sequence[TileSample]) -> None:
    problems = []
    train_labels = {int(s.label) for s in train_samples}
    if 1 not in train_labels:
        problems.append("the training split holds no bear tiles")
    if 0 not in train_labels:
        problems.append("the training split holds no background tiles")
    if not any(int(s.label) == 1 for s in val_samples):
        problems.append("the validation split holds no bear tiles, so recall cannot be measured")
    shared = {s.group for s in train_samples} & {s.group for s in val_samples}
    if shared:
        problems.append(
            f"{len(shared)} frame(s) are in both splits (e.g. {sorted(shared)[0]!r}); split by "
            f"frame so no frame's tiles are on both sides"
        )
    if problems:
        raise ValueError("cannot train: " + "; ".join(problems))


def _lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:  # `step` = optimiser steps taken so far
        if step < warmup:
            return 0.01 + 0.99 * step / warmup
        if config.schedule == "constant":
            return 1.0
        if config.schedule == "step":
            return config.step_gamma ** (step // (config.step_epochs * steps_per_epoch))
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = trainable_parameters(model)
    # Decay on weights only: shrinking biases and BatchNorm scales only hurts (torchvision's
    # reference recipe does the same with norm_weight_decay=0).
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def _try_load(path: Path) -> Checkpoint | None:
    if not path.exists():
        return None
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        log.warning("ignoring unusable checkpoint %s: %s", path, exc)
        return None


class TrainStep:
    """One optimiser step on a uint8 batch: the part of the loop a benchmark times on its own.

    Holds the model (frozen prefix applied, channels-last, on the device), the optimiser over
    the trainable parameters and the per-step learning-rate schedule.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        *,
        prep: runtime.InputPrep,
        positive_index: int,
        precision: str,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.prep = prep
        self.device = prep.device
        self.precision = precision
        # label (0 background, 1 bear) -> the model's class column
        self.target_of = torch.tensor([1 - positive_index, positive_index], device=self.device)

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        base: Checkpoint,
        steps_per_epoch: int,
        *,
        device: torch.device,
        precision: str,
    ) -> TrainStep:
        model = model_from_checkpoint(base, input_scale=config.input_scale).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        apply_freeze(model, config.freeze)
        optimizer = _optimizer(config, model)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_factor(config, steps_per_epoch)
        )
        prep = runtime.InputPrep(
            device,
            base.preprocessing.mean,
            base.preprocessing.std,
            channels_last=config.channels_last,
        )
        return cls(
            model,
            optimizer,
            scheduler,
            prep=prep,
            positive_index=base.positive_index,
            precision=precision,
        )

    def __call__(self, tiles: torch.Tensor, labels: torch.Tensor) -> float:
        """Train on one batch; returns its loss (one device sync: the run row needs it)."""
        x = self.prep(tiles)
        y = self.target_of[labels.to(self.device, non_blocking=True)]
        with runtime.autocast(self.device, self.precision):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())


def train(
    config: TrainConfig,
    train_samples: Sequence[TileSample],
    val_samples: Sequence[TileSample],
    *,
    base: Checkpoint,
    out_path: str | Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    data_snapshot: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune ``base`` on ``train_samples``; see the module docstring for the guarantees."""
    config.validate()
    _check_data(train_samples, val_samples)
    out_path = Path(out_path)
    resume_path = resume_path_for(out_path)
    report = on_progress or (lambda _p: None)
    cancel_requested = should_cancel or (lambda: False)
    identity = {
        "config": config.identity(),
        "train": samples_fingerprint(train_samples),
        "val": samples_fingerprint(val_samples),
        "base": _state_fingerprint(base.state_dict),
    }
    snapshot = dict(data_snapshot or {})
    snapshot.setdefault("train_fingerprint", identity["train"])
    snapshot.setdefault("val_fingerprint", identity["val"])
    snapshot.setdefault("train_tiles", len(train_samples))
    snapshot.setdefault("val_tiles", len(val_samples))

    done = _try_load(out_path)
    if done is not None and done.training_state.get("run_identity") == identity:
        log.info("%s already holds this run's final model; not training again", out_path)
        return TrainResult(
            checkpoint_path=out_path,
            sha256=file_sha256(out_path),
            metrics=done.metrics,
            history=list(done.training_state.get("history", [])),
            resumed_from_epoch=config.epochs,
            epochs_completed=config.epochs,
        )

    device = runtime.resolve_device(config.device)
    precision = runtime.resolve_precision(config.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels once
    positive_index = base.positive_index
    preprocessing = Preprocessing(
        tile_size=config.tile_size,
        mean=base.preprocessing.mean,
        std=base.preprocessing.std,
        input_scale=config.input_scale,
    )
    aug = AugmentParams(
        scale_jitter=config.scale_jitter, brightness_jitter=config.brightness_jitter
    )
    train_ds = TileDataset(
        train_samples,
        tile_size=config.tile_size,
        augment=config.augment,
        augment_params=aug,
        cache=config.cache_tiles,
    )
    val_ds = TileDataset(
        val_samples, tile_size=config.tile_size, augment=False, cache=config.cache_tiles
    )
    sampler = BalancedBatchSampler(
        train_ds.labels,
        batch_size=config.batch_size,
        min_positives=config.min_positives,
        seed=config.seed,
    )
    steps_per_epoch = len(sampler)
    total_steps = config.epochs * steps_per_epoch

    stepper = TrainStep.build(config, base, steps_per_epoch, device=device, precision=precision)
    model, optimizer, scheduler = stepper.model, stepper.optimizer, stepper.scheduler

    start_epoch, global_step, history = 0, 0, []
    last_metrics: dict[str, Any] = {}
    partial = _try_load(resume_path)
    if partial is not None:
        state = partial.training_state
        if state.get("run_identity") == identity:
            model.load_state_dict(partial.state_dict)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
            history = list(state.get("history", []))
            last_metrics = partial.metrics
            log.info("resuming %s after epoch %d", out_path, start_epoch)
        else:
            log.warning(
                "%s belongs to another run (config, data or base differ); starting afresh",
                resume_path,
            )
    resumed_from = start_epoch

    workers = (
        runtime.default_num_workers(device) if config.num_workers is None else config.num_workers
    )
    loader = runtime.make_loader(
        train_ds, device=device, num_workers=workers, batch_sampler=sampler
    )

    def evaluate() -> EvalMetrics:
        scores = predict_scores(
            model,
            val_ds,
            positive_index=positive_index,
            mean=preprocessing.mean,
            std=preprocessing.std,
            batch_size=config.batch_size,
            device=device,
            precision=precision,
            num_workers=workers,
            channels_last=config.channels_last,
        )
        return metrics_at(
            scores,
            val_ds.labels,
            val_ds.groups,
            target_recall=config.target_recall,
            keys=[s.key for s in val_samples],
        )

    # How this run actually ran (TrainConfig.from_dict can read `config` back unchanged).
    run_info = {
        "base_init": base.init,
        "device": str(device),
        "precision": precision,
        "loader_workers": workers,
        "sampler": sampler.last_batch_report,
    }

    def checkpoint(metrics: dict[str, Any], training_state: dict[str, Any], path: Path) -> str:
        ckpt = Checkpoint(
            state_dict=_cpu_state(model),
            arch=base.arch,
            class_names=base.class_names,
            preprocessing=preprocessing,
            init="finetuned",
            config=config.as_dict(),
            metrics=metrics,
            data_snapshot=snapshot,
            training_state=training_state,
        )
        return save_checkpoint(ckpt, path)

    cancelled = False
    epoch = start_epoch
    images_per_s = 0.0

    def emit(phase: str, step: int, loss: float | None = None, eta_s: float | None = None) -> None:
        report(
            Progress(
                phase=phase,
                epoch=min(epoch + 1, config.epochs),
                epochs=config.epochs,
                step=step,
                steps_per_epoch=steps_per_epoch,
                global_step=global_step,
                total_steps=total_steps,
                loss=loss,
                lr=optimizer.param_groups[0]["lr"],
                images_per_s=images_per_s,
                eta_s=eta_s,
            )
        )

    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        model.train()  # the freeze override keeps the frozen prefix in eval
        t0 = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for step, (tiles, labels) in enumerate(loader, start=1):
            loss_value = stepper(tiles, labels)
            global_step += 1
            loss_sum += loss_value * len(labels)
            seen += len(labels)
            elapsed = time.perf_counter() - t0
            images_per_s = seen / elapsed if elapsed > 0 else 0.0
            # ETA from this epoch's pace, which includes waiting for the loader; evaluation
            # passes are not counted.
            emit("train", step, loss_value, (total_steps - global_step) * elapsed / step)
            if cancel_requested():
                cancelled = True
                break
        if cancelled:
            break
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": loss_sum / max(1, seen),
            "images_per_s": images_per_s,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if config.eval_every_epoch or epoch + 1 == config.epochs:
            emit("evaluate", steps_per_epoch)
            last_metrics = evaluate().as_dict()
            entry |= {
                k: last_metrics[k]
                for k in ("ap", "recall", "precision", "fp_per_frame", "threshold")
            }
        history.append(entry)
        emit("checkpoint", steps_per_epoch)
        training_state = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler": sampler.state_dict(),
            "history": history,
            "run_identity": identity,
            "run": run_info,
        }
        checkpoint(last_metrics, training_state, resume_path)
        if epoch + 1 < config.epochs and cancel_requested():
            cancelled = True
            break

    epochs_completed = len(history)
    if cancelled:
        emit("cancelled", 0)
        # A leftover of another run may sit at resume_path; only an epoch of ours counts.
        has_partial = bool(history) and resume_path.exists()
        return TrainResult(
            checkpoint_path=resume_path if has_partial else None,
            sha256=file_sha256(resume_path) if has_partial else None,
            metrics=last_metrics,
            history=history,
            cancelled=True,
            resumed_from_epoch=resumed_from,
            epochs_completed=epochs_completed,
            sampler_report=sampler.last_batch_report,
        )

    sha = checkpoint(
        last_metrics,
        {"complete": True, "run_identity": identity, "history": history, "run": run_info},
        out_path,
    )
    resume_path.unlink(missing_ok=True)
    epoch = config.epochs - 1
    emit("done", steps_per_epoch, eta_s=0.0)
    return TrainResult(
        checkpoint_path=out_path,
        sha256=sha,
        metrics=last_metrics,
        history=history,
        resumed_from_epoch=resumed_from,
        epochs_completed=epochs_completed,
        sampler_report=sampler.last_batch_report,
    )
