"""Writes for training runs: launch, cancel, execute, recover, and the beat trigger.

State moves, one function each (an illegal move raises ``IllegalTransition``)::

    queued --run_start--> running --run_succeed--> succeeded
      |                     |------run_fail------> failed
      |                     `--run_mark_cancelled-> cancelled   (after run_cancel asked for it)
      `--run_cancel / run_fail--> cancelled / failed

``run_start`` also accepts a run that is already ``running``: that is a resume after the worker
died (the attempt counter goes up and the loop continues from its last epoch checkpoint).

Locking rules:
- "Never two runs at once" is the database's unique ``active_slot`` (see ``training.models``);
  ``run_create`` checks first for a clear message and turns the constraint's IntegrityError,
  when two launches race, into the same ``RunBusy``.
- ``run_execute`` holds an exclusive ``flock`` on ``<training dir>/run_<id>/lock`` while it
  works, so a duplicate message (a recovery re-send while the run is still going in another
  process of this machine) does nothing. The OS drops the lock when the process dies, so a
  killed worker's run is picked up by the next one. Checkpoints live in that machine's
  ``BEARSITE_TRAINING_DIR``: one GPU machine trains (share the folder to use several).
- Progress is written with ``UPDATE`` of the progress columns only, never ``save()``, so an
  admin's ``cancel_requested`` is never overwritten by the worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from bearsite.storage import local_path
from inference.models import ModelVersion
from inference.services import IllegalTransition
from training import dataset as ds
from training.models import UNFINISHED, TrainingRun

log = logging.getLogger(__name__)

# Kept in step with training.loop.freeze.FREEZE_LEVELS (a test checks it): the web process
# must not import torch, which that module does.
FREEZE_LEVELS = ("none", "stem", "layer1", "layer2", "layer3")
LOSS_CURVE_POINTS = 400


class RunBusy(IllegalTransition):
    """Another run is queued or running."""


# --- Configuration ---------------------------------------------------------------------------------


def default_config() -> dict[str, Any]:
    """The launch form's defaults (settings), in ``TrainConfig`` field names."""
    return {
        "epochs": settings.BEARSITE_TRAIN_EPOCHS,
        "lr": settings.BEARSITE_TRAIN_LR,
        "batch_size": settings.BEARSITE_TRAIN_BATCH_SIZE,
        "min_positives": settings.BEARSITE_TRAIN_MIN_POSITIVES,
        "freeze": settings.BEARSITE_TRAIN_FREEZE,
        "optimizer": settings.BEARSITE_TRAIN_OPTIMIZER,
        "target_recall": settings.BEARSITE_TARGET_RECALL,
    }


def config_problems(config: dict[str, Any]) -> list[str]:
    """The launch fields' checks, without torch (the worker validates the full TrainConfig)."""
    p = []
    epochs, batch, minpos = (
        config.get("epochs"),
        config.get("batch_size"),
        config.get("min_positives"),
    )
    if not isinstance(epochs, int) or not 1 <= epochs <= 1000:
        p.append("epochs must be a whole number from 1 to 1000")
    if not isinstance(config.get("lr"), int | float) or not 0 < config["lr"] <= 10:
        p.append("the learning rate must be above 0 and at most 10")
    if not isinstance(batch, int) or not 2 <= batch <= 4096:
        p.append("the batch size must be a whole number from 2 to 4096")
    elif not isinstance(minpos, int) or not 1 <= minpos < batch:
        p.append(f"min_positives must be from 1 to the batch size minus one ({batch - 1})")
    if config.get("freeze") not in FREEZE_LEVELS:
        p.append(f"the freeze level must be one of {', '.join(FREEZE_LEVELS)}")
    tr = config.get("target_recall")
    if not isinstance(tr, int | float) or not 0 < tr <= 1:
        p.append("the target recall must be above 0 and at most 1")
    return p


# --- Transitions -------------------------------------------------------------------------------------


def _log_entry(message: str) -> dict[str, str]:
    return {"at": timezone.now().isoformat(timespec="seconds"), "message": message}


def _move(
    run_id: int, *, to: str, allowed: tuple[str, ...], message: str = "", **fields: Any
) -> TrainingRun:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status not in allowed:
            raise IllegalTransition(f"a {run.get_status_display()} run cannot become {to}")
        run.status = to
        if to in ("succeeded", "failed", "cancelled"):
            run.active_slot = None
            run.finished_at = timezone.now()
            run.eta_s = 0 if to == "succeeded" else None
        for name, value in fields.items():
            setattr(run, name, value)
        if message:
            run.log = [*run.log, _log_entry(message)]
        run.save()
    return run


def run_start(run_id: int) -> TrainingRun:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status not in UNFINISHED:
            raise IllegalTransition(f"a {run.get_status_display()} run cannot start again")
        resumed = run.status == TrainingRun.Status.RUNNING
        run.status = TrainingRun.Status.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or timezone.now()
        run.log = [
            *run.log,
            _log_entry(
                f"attempt {run.attempts}: the worker picked the run up again"
                if resumed
                else "started"
            ),
        ]
        run.save()
    return run


def run_succeed(run_id: int, **fields: Any) -> TrainingRun:
    return _move(
        run_id, to="succeeded", allowed=("running",), message="finished", phase="done", **fields
    )


def run_fail(run_id: int, *, error: str) -> TrainingRun:
    return _move(
        run_id,
        to="failed",
        allowed=UNFINISHED,
        message=f"failed: {error}",
        error=error,
        phase="failed",
    )


def run_mark_cancelled(run_id: int, *, message: str = "cancelled") -> TrainingRun:
    return _move(run_id, to="cancelled", allowed=UNFINISHED, message=message, phase="cancelled")


def run_cancel(*, run: TrainingRun, user=None) -> TrainingRun:
    """Cancel: a queued run stops at once; a running one when the loop next looks (after the
    current step; its last epoch checkpoint is kept)."""
    who = f" by {user}" if user is not None else ""
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.is_finished:
            raise IllegalTransition(f"the run is already {locked.get_status_display()}")
        if locked.cancel_requested:
            return locked
        if locked.status == TrainingRun.Status.QUEUED:
            return _move(
                run.pk,
                to="cancelled",
                allowed=("queued",),
                message=f"cancelled{who}",
                cancel_requested=True,
                phase="cancelled",
            )
        locked.cancel_requested = True
        locked.log = [*locked.log, _log_entry(f"cancel requested{who}")]
        locked.save(update_fields=["cancel_requested", "log"])
    return locked


# --- Launch ----------------------------------------------------------------------------------------


def run_create(
    *,
    trigger: str,
    config: dict[str, Any] | None = None,
    base_version: ModelVersion | None = None,
    target_recall: float | None = None,
    margin: float | None = None,
    dataset: dict[str, Any] | None = None,
    created_by=None,
    note: str = "",
    enqueue: bool = True,
) -> TrainingRun:
    """Queue a run (sent to the gpu queue after commit). ``base_version`` None = a fresh
    ResNet-50. Raises ``RunBusy`` when a run is queued or running, ``ValueError`` with every
    problem of the configuration."""
    cfg = {**default_config(), **(config or {})}
    if target_recall is not None:
        cfg["target_recall"] = target_recall
    problems = config_problems(cfg)
    margin = settings.BEARSITE_PROMOTION_MARGIN if margin is None else margin
    if not 0 <= margin < 1:
        problems.append("the promotion margin must be from 0 to below 1")
    if problems:
        raise ValueError("; ".join(problems))
    busy = TrainingRun.objects.filter(status__in=UNFINISHED).first()
    if busy is not None:
        raise RunBusy(f"training run #{busy.pk} is {busy.status}; one run at a time")
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                trigger=trigger,
                config=cfg,
                dataset=dataset or {"kind": "labels"},
                base_version=base_version,
                target_recall=cfg["target_recall"],
                margin=margin,
                created_by=created_by,
                note=note,
                epochs=cfg["epochs"],
                log=[_log_entry(f"queued ({TrainingRun.Trigger(trigger).label})")],
            )
            if enqueue:
                transaction.on_commit(lambda: _send(run.pk))
    except IntegrityError:
        raise RunBusy(
            "another training run was queued at the same moment; one run at a time"
        ) from None
    return run


def _send(run_id: int) -> None:
    from training.tasks import run as run_task

    run_task.delay(run_id)


def runs_requeue_unfinished() -> int:
    """On gpu worker start: send every queued or running run again (``run_execute`` resumes
    from the last epoch checkpoint and does nothing for a finished run); a run that was being
    cancelled when its worker died is marked cancelled."""
    n = 0
    for run in TrainingRun.objects.filter(status__in=UNFINISHED):
        if run.cancel_requested:
            with contextlib.suppress(IllegalTransition):
                run_mark_cancelled(
                    run.pk, message="cancelled (the worker stopped while cancelling)"
                )
            continue
        with transaction.atomic():
            transaction.on_commit(lambda pk=run.pk: _send(pk))
        n += 1
    return n


# --- The beat trigger ------------------------------------------------------------------------------


def new_labels_since_last_snapshot() -> tuple[int, TrainingRun | None]:
    last = (
        TrainingRun.objects.filter(snapshot_at__isnull=False)
        .order_by("-snapshot_at", "-pk")
        .first()
    )
    return ds.count_consensus_labels(since=last.snapshot_at if last else None), last


def retrain_if_due() -> TrainingRun | None:
    """Queue a run when at least ``BEARSITE_RETRAIN_MIN_NEW_LABELS`` consensus labels were
    reached since the last run's snapshot. While a run is queued or running this does nothing:
    the due run waits for the next tick."""
    if TrainingRun.objects.filter(status__in=UNFINISHED).exists():
        return None
    new, last = new_labels_since_last_snapshot()
    if new < settings.BEARSITE_RETRAIN_MIN_NEW_LABELS:
        return None
    from inference.selectors import active_model

    since = f"since run #{last.pk}'s snapshot" if last else "(no earlier run)"
    try:
        return run_create(
            trigger=TrainingRun.Trigger.BEAT,
            base_version=active_model(),
            note=f"{new} new consensus labels {since}",
        )
    except RunBusy:
        return None


# --- Execution ---------------------------------------------------------------------------------------


def run_dir(run_id: int) -> Path:
    return Path(settings.BEARSITE_TRAINING_DIR) / f"run_{run_id}"


@contextlib.contextmanager
def _exclusive(run_id: int) -> Iterator[bool]:
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _update(run_id: int, **fields: Any) -> None:
    TrainingRun.objects.filter(pk=run_id).update(**fields)


def _append_log(run_id: int, message: str) -> None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().only("log").get(pk=run_id)
        TrainingRun.objects.filter(pk=run_id).update(log=[*run.log, _log_entry(message)])


def _downsample(points: list[list[float]], limit: int = LOSS_CURVE_POINTS) -> list[list[float]]:
    """Bucket means, so a long run's curve stays a few kB and keeps its shape."""
    if len(points) <= limit:
        return [list(p) for p in points]
    size = math.ceil(len(points) / limit)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        out.append([chunk[-1][0], round(sum(p[1] for p in chunk) / len(chunk), 5)])
    return out


class _ProgressWriter:
    """``on_progress`` for the loop: keeps every step's loss, writes the row at most
    ``BEARSITE_TRAINING_PROGRESS_PER_S`` times a second (and on every phase change), and copies
    the per-epoch history from the epoch checkpoint when a new epoch starts."""

    def __init__(
        self, run: TrainingRun, resume_file: Path, echo: Callable[[str], None] | None = None
    ):
        self.run_id = run.pk
        self.echo = echo
        self.resume_file = resume_file
        self.interval = 1.0 / max(0.1, float(settings.BEARSITE_TRAINING_PROGRESS_PER_S))
        self.last_write = 0.0
        self.last_phase = ""
        self.last_epoch = 0
        self.curve: list[list[float]] = []
        self.curve_from = 0  # points before this global step come from an earlier attempt
        self.previous_curve = list(run.loss_curve)

    def start_at(self, global_step: int) -> None:
        self.previous_curve = [p for p in self.previous_curve if p[0] <= global_step]
        self.curve_from = global_step

    def __call__(self, p) -> None:
        if p.phase == "train" and p.loss is not None:
            self.curve.append([p.global_step, round(float(p.loss), 5)])
        if self.echo is not None and (p.phase != self.last_phase or p.step == p.steps_per_epoch):
            eta = f", about {p.eta_s / 60:.1f} min left" if p.eta_s else ""
            loss = f", loss {p.loss:.3f}" if p.loss is not None else ""
            self.echo(
                f"  epoch {p.epoch}/{p.epochs} step {p.step}/{p.steps_per_epoch} ({p.phase}"
                f"{loss}, {p.images_per_s:.1f} images/s{eta})"
            )
        now = time.monotonic()
        phase_changed = p.phase != self.last_phase
        if not phase_changed and now - self.last_write < self.interval:
            return
        fields: dict[str, Any] = {
            "phase": p.phase,
            "epoch": p.epoch,
            "epochs": p.epochs,
            "step": p.step,
            "steps_per_epoch": p.steps_per_epoch,
            "global_step": p.global_step,
            "total_steps": p.total_steps,
            "lr": p.lr,
            "images_per_s": p.images_per_s,
            "eta_s": p.eta_s,
            "progress_at": timezone.now(),
            "loss_curve": _downsample(self.previous_curve + self.curve),
        }
        if p.loss is not None:
            fields["loss"] = p.loss
        if p.phase == "train" and p.epoch != self.last_epoch:
            history = self._history()
            if history is not None:
                fields["history"] = history
            self.last_epoch = p.epoch
        _update(self.run_id, **fields)
        self.last_write, self.last_phase = now, p.phase

    def _history(self) -> list | None:
        """The finished epochs' entries, from the epoch checkpoint (memory-mapped: the weights
        and optimiser state are not read)."""
        if not self.resume_file.exists():
            return None
        import torch

        try:
            payload = torch.load(self.resume_file, map_location="cpu", weights_only=True, mmap=True)
            return list(payload.get("training_state", {}).get("history", []))
        except Exception:  # a checkpoint being replaced; the next epoch reads it again
            return None


class _CancelPoll:
    """``should_cancel`` for the loop: one indexed read at most twice a second."""

    def __init__(self, run_id: int):
        self.run_id, self.checked, self.value = run_id, 0.0, False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.checked >= 0.5:
            self.value = TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()
            self.checked = now
        return self.value


def _snapshot_plan(run: TrainingRun, tile: int) -> tuple[list[ds.TileSpec], dict]:
    """The run's tiles: read back from its snapshot file when it has one (a resumed run trains
    on exactly what it started with, whatever was labelled since), else planned now from the
    labels (or the demo ground truth) and recorded."""
    if run.snapshot_file and default_storage.exists(run.snapshot_file.name):
        with default_storage.open(run.snapshot_file.name, "rb") as fh:
            doc = json.loads(fh.read().decode())
        return ds.specs_from_document(doc), doc["summary"]
    taken_at = timezone.now()
    kind = run.dataset.get("kind", "labels")
    if kind == "demo":
        from labeling.models import Survey

        survey = Survey.objects.get(pk=run.dataset["survey_id"])
        plan = ds.plan_from_ground_truth(
            survey=survey,
            ground_truth_dir=run.dataset["ground_truth"],
            tile=tile,
            background_per_frame=int(run.dataset.get("background_per_frame", 8)),
            crops_per_bear=run.dataset.get("crops_per_bear"),
            web_copies=run.dataset.get("web_copies"),
            hard_fraction=float(run.dataset.get("hard_fraction", 0.0)),
            rejected_from_versions=run.dataset.get("rejected_from_versions", ()),
        )
        labels = 0  # simulated labels are not consensus labels: the beat counts real ones
    else:
        labels = ds.count_consensus_labels()
        plan = ds.plan_from_labels(tile=tile)
    summary = ds.summarise(plan)
    summary["taken_at"] = taken_at.isoformat()
    summary["tile_size"] = tile
    doc = ds.snapshot_document(plan, summary)
    name = f"training/run_{run.pk}/snapshot.json"
    if default_storage.exists(name):
        default_storage.delete(name)
    name = default_storage.save(name, ContentFile(json.dumps(doc, separators=(",", ":")).encode()))
    _update(
        run.pk,
        snapshot=summary,
        snapshot_file=name,
        snapshot_at=taken_at,
        labels_at_snapshot=labels,
    )
    return plan.specs, summary


def _base_checkpoint(run: TrainingRun, seed: int):
    """(Checkpoint, init, note). A fresh base is seeded by the run's seed, so a resumed run
    rebuilds the identical starting weights (the loop checks that before resuming)."""
    import torch
    import torchvision

    from inference.engine.checkpoint import (
        Checkpoint,
        find_imagenet_weights,
        imagenet_backbone,
        load_checkpoint,
    )

    if run.base_version_id:
        with local_path(run.base_version.checkpoint.name) as path:
            ckpt = load_checkpoint(path)
        return (
            ckpt,
            "finetuned",
            f"fine-tuned from {run.base_version.name} (#{run.base_version_id})",
        )
    torch.manual_seed(seed)
    weights = find_imagenet_weights(settings.BEARSITE_IMAGENET_WEIGHTS or None)
    if weights is not None:
        model = imagenet_backbone(weights)
        return (
            Checkpoint(state_dict=model.state_dict(), init="imagenet"),
            "imagenet",
            (f"fine-tuned from ImageNet weights ({weights.name})"),
        )
    # From scratch, each residual block starts as the identity (its last BatchNorm scale at
    # zero, Goyal et al. 2017): the 50-layer net first trains like a shallow one, which is what
    # lets a few minutes of CPU training learn anything at all. Same state_dict keys.
    model = torchvision.models.resnet50(weights=None, num_classes=2, zero_init_residual=True)
    return (
        Checkpoint(state_dict=model.state_dict(), init="random"),
        "random",
        (
            "trained from random initialisation: no ImageNet weights were available offline "
            "(put torchvision's resnet50 file in the torch cache or set BEARSITE_IMAGENET_WEIGHTS)"
        ),
    )


@dataclass
class _Scored:
    at_target: dict
    at_review_threshold: dict


def _evaluate_version(
    version: ModelVersion, val_samples, *, target_recall: float, device, batch_size: int
) -> _Scored:
    """The active model on the run's validation tiles: at the threshold reaching the target
    recall (what the gate compares) and at its own review threshold (how it runs today)."""
    from inference.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from training.loop import runtime
    from training.loop.data import TileDataset
    from training.loop.evaluate import metrics_at, predict_scores

    with local_path(version.checkpoint.name) as path:
        ckpt = load_checkpoint(path)
    dev = runtime.resolve_device(device)
    model = model_from_checkpoint(ckpt).to(dev)
    pre = ckpt.preprocessing
    data = TileDataset(val_samples, tile_size=pre.tile_size, augment=False)
    scores = predict_scores(
        model,
        data,
        positive_index=ckpt.positive_index,
        mean=pre.mean,
        std=pre.std,
        batch_size=batch_size,
        device=dev,
    )
    keys = [s.key for s in val_samples]
    at_target = metrics_at(scores, data.labels, data.groups, target_recall=target_recall, keys=keys)
    stored = metrics_at(
        scores,
        data.labels,
        data.groups,
        threshold=version.review_threshold,
        target_recall=target_recall,
        keys=keys,
    )
    return _Scored(at_target.as_dict(), stored.as_dict())


def run_execute(
    *, run_id: int, start_inference: bool | None = None, echo: Callable[[str], None] | None = None
) -> TrainingRun | None:
    """Do (or finish) one run: snapshot, tiles, training (resuming from the last epoch
    checkpoint), evaluation of the new and the active model on the same validation split, the
    gate, the candidate version, promotion or rejection. Safe to call again at any point: each
    step first looks for what an earlier attempt already did."""
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        log.warning("training run %s is gone; nothing to do", run_id)
        return None
    if run.is_finished:
        return run
    with _exclusive(run_id) as mine:
        if not mine:
            log.info("training run %s is being worked on by another process here", run_id)
            return run
        run.refresh_from_db()
        if run.is_finished:
            return run
        if run.cancel_requested:
            return run_mark_cancelled(run_id)
        run = run_start(run_id)
        try:
            return _execute(run, start_inference=start_inference, echo=echo)
        except ds.DatasetError as exc:
            return run_fail(run_id, error=str(exc))
        except Exception as exc:
            log.exception("training run %s failed", run_id)
            return run_fail(run_id, error=f"{type(exc).__name__}: {exc}")


def _execute(
    run: TrainingRun, *, start_inference: bool | None, echo: Callable[[str], None] | None = None
) -> TrainingRun:
    from training.loop.train import TrainConfig, resume_path_for, train

    config = TrainConfig.from_dict(run.config)
    if config.device is None and settings.BEARSITE_DEVICE:
        config.device = settings.BEARSITE_DEVICE
    tile = config.tile_size
    _update(run.pk, phase="preparing data")
    specs, summary = _snapshot_plan(run, tile)
    plan = ds.Plan(specs=specs, kind=summary.get("kind", "labels"))
    ds.check_plan(plan)
    paths = ds.materialise(specs)
    train_samples = ds.samples_for(plan.split(ds.TRAIN), paths)
    val_samples = ds.samples_for(plan.split(ds.VAL), paths)
    run.refresh_from_db()
    if run.cancel_requested:
        return run_mark_cancelled(run.pk)

    base, init, base_note = _base_checkpoint(run, config.seed)
    if "input_scale" not in run.config:
        # Fine-tuning keeps the base model's input scale unless the run asks for another.
        config.input_scale = base.preprocessing.input_scale
    if init == "random" and "random initialisation" not in run.note:
        run.note = (run.note + "\n" if run.note else "") + "Note: " + base_note + "."
        _update(run.pk, note=run.note)
    _update(run.pk, base_init=init)

    out = run_dir(run.pk) / "model.pt"
    resume_file = resume_path_for(out)
    writer = _ProgressWriter(run, resume_file, echo)
    if resume_file.exists():
        import torch

        state = torch.load(resume_file, map_location="cpu", weights_only=True, mmap=True)
        done = int(state.get("training_state", {}).get("epoch", 0))
        writer.start_at(int(state.get("training_state", {}).get("global_step", 0)))
        _update(run.pk, resumed_from_epoch=done)
        _append_log(run.pk, f"resuming from the checkpoint after epoch {done}")
    else:
        writer.start_at(0)  # an attempt killed before its first checkpoint starts afresh
    _update(run.pk, phase="train")
    result = train(
        config,
        train_samples,
        val_samples,
        base=base,
        out_path=out,
        on_progress=writer,
        should_cancel=_CancelPoll(run.pk),
        data_snapshot={**summary, "training_run": run.pk},
    )
    _update(
        run.pk,
        history=result.history,
        epochs=config.epochs,
        loss_curve=_downsample(writer.previous_curve + writer.curve),
    )
    if result.cancelled:
        return run_mark_cancelled(
            run.pk,
            message=f"cancelled after {result.epochs_completed} epoch(s); "
            "the last epoch checkpoint is kept",
        )
    return _decide(
        run.pk,
        result,
        val_samples,
        config,
        init=init,
        base_note=base_note,
        start_inference=start_inference,
    )


def _decide(
    run_id: int,
    result,
    val_samples,
    config,
    *,
    init: str,
    base_note: str,
    start_inference: bool | None,
) -> TrainingRun:
    from inference import services as inference_services
    from inference.selectors import active_model
    from training.loop.evaluate import EvalMetrics
    from training.loop.gate import decide_promotion

    run = TrainingRun.objects.select_related("produced_version", "base_version").get(pk=run_id)
    new = EvalMetrics.from_dict(result.metrics)
    active = active_model()
    if run.produced_version_id and active is not None and active.pk == run.produced_version_id:
        active = None  # an earlier attempt already promoted it: nothing to compare with
    active_metrics: EvalMetrics | None = None
    stored: dict = {}
    if active is not None:
        _update(run_id, phase="evaluating the active model")
        scored = _evaluate_version(
            active,
            val_samples,
            target_recall=run.target_recall,
            device=config.device,
            batch_size=config.batch_size,
        )
        active_metrics = EvalMetrics.from_dict(scored.at_target)
        stored = {
            k: scored.at_review_threshold[k]
            for k in ("recall", "precision", "fp_per_frame", "threshold", "tp", "fp", "fn", "tn")
        }
    decision = decide_promotion(
        new, active_metrics, target_recall=run.target_recall, margin=run.margin
    )
    fields: dict[str, Any] = {
        "new_metrics": result.metrics,
        "decision_reason": decision.reason,
        "decision_figures": decision.figures,
        "phase": "deciding",
    }
    if active_metrics is not None:
        fields["active_metrics"] = {**active_metrics.as_dict(), "at_review_threshold": stored}
        fields["compared_version"] = active
    _update(run_id, **fields)

    if run.produced_version_id is None:
        with transaction.atomic():
            version = inference_services.model_register(
                checkpoint_path=result.checkpoint_path,
                name=f"run-{run_id}" + ("-demo" if run.trigger == TrainingRun.Trigger.DEMO else ""),
                init=ModelVersion.Init.FINETUNED,
                review_threshold=new.threshold,
                metrics={
                    **result.metrics,
                    "training_run": run_id,
                    "base_init": init,
                    "gate": {"promote": decision.promote, "reason": decision.reason},
                },
                parent=run.base_version,
                created_by=run.created_by,
                notes=f"Training run #{run_id}: {base_note}.",
            )
            TrainingRun.objects.filter(pk=run_id).update(produced_version=version)
    else:
        version = run.produced_version
    version.refresh_from_db()
    with transaction.atomic():
        if version.status == ModelVersion.Status.CANDIDATE:
            if decision.promote:
                inference_services.model_promote(
                    version=version,
                    user=run.created_by,
                    start_inference=start_inference,
                    reason=f"training run #{run_id}: {decision.reason}",
                )
            else:
                inference_services.model_reject(
                    version=version,
                    user=run.created_by,
                    reason=f"training run #{run_id}: {decision.reason}",
                )
        outcome = (
            TrainingRun.Decision.PROMOTED if decision.promote else TrainingRun.Decision.REJECTED
        )
        return run_succeed(run_id, decision=outcome)
