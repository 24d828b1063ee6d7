"""Reads for training runs: the JSON the run page polls, the figures it plots, the list."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from inference.models import ModelVersion
from training.models import TrainingRun

CONFUSION_KEYS = ("tp", "fp", "fn", "tn")


def runs_recent(*, limit: int = 100) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("base_version", "produced_version", "created_by")[
        :limit
    ]


def run_busy() -> TrainingRun | None:
    return TrainingRun.objects.filter(status__in=["queued", "running"]).first()


def base_choices() -> list[tuple[str, str]]:
    """Launch form choices: the active model, a fresh ResNet-50, or any registered version."""
    choices = [
        ("active", "the active model (fine-tune it)"),
        ("fresh", "a fresh ResNet-50 (ImageNet weights if present, else random)"),
    ]
    for v in ModelVersion.objects.only("pk", "name", "status")[:200]:
        choices.append((str(v.pk), f"{v.name} (#{v.pk}, {v.status})"))
    return choices


def _version(v: ModelVersion | None) -> dict | None:
    if v is None:
        return None
    return {"id": v.pk, "name": v.name, "status": v.status, "url": v.get_absolute_url()}


def run_progress(*, run: TrainingRun) -> dict:
    """What the run page polls (and the API's progress action returns)."""
    return {
        "id": run.pk,
        "status": run.status,
        "status_display": run.get_status_display(),
        "phase": run.phase,
        "percent": run.percent,
        "epoch": run.epoch,
        "epochs": run.epochs,
        "step": run.step,
        "steps_per_epoch": run.steps_per_epoch,
        "global_step": run.global_step,
        "total_steps": run.total_steps,
        "loss": run.loss,
        "lr": run.lr,
        "images_per_s": run.images_per_s,
        "eta_s": run.eta_s,
        "attempts": run.attempts,
        "resumed_from_epoch": run.resumed_from_epoch,
        "finished": run.is_finished,
        "cancel_requested": run.cancel_requested,
        "error": run.error,
        "note": run.note,
        "decision": run.decision,
        "decision_display": run.get_decision_display(),
        "decision_reason": run.decision_reason,
        "produced_version": _version(run.produced_version),
        "history": run.history,
        "loss_curve": run.loss_curve,
        "log": run.log[-30:],
    }


def _confusion(metrics: dict) -> dict | None:
    if not metrics or any(k not in metrics for k in CONFUSION_KEYS):
        return None
    return {k: metrics[k] for k in CONFUSION_KEYS}


def run_metrics(*, run: TrainingRun) -> dict:
    """The figures of the evaluation: both models on the same validation split."""
    new, active = run.new_metrics or {}, run.active_metrics or {}
    return {
        "id": run.pk,
        "target_recall": run.target_recall,
        "margin": run.margin,
        "new": new,
        "active": active,
        "active_version": _version(run.compared_version),
        "confusion": {"new": _confusion(new), "active": _confusion(active)},
        "decision": run.decision,
        "decision_reason": run.decision_reason,
        "decision_figures": run.decision_figures,
        "history": run.history,
        "heldout_eval": {k: v for k, v in (run.heldout_eval or {}).items() if k != "frames"},
        "snapshot": run.snapshot,
    }


def retrain_status() -> dict:
    """For the runs page: how close the beat trigger is to launching a run."""
    from training.services import new_labels_since_last_snapshot

    new, last = new_labels_since_last_snapshot()
    return {
        "new_labels": new,
        "needed": settings.BEARSITE_RETRAIN_MIN_NEW_LABELS,
        "since_run": last.pk if last else None,
    }
