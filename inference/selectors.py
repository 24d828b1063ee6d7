"""Reads for models, jobs and scores."""

from __future__ import annotations

from django.urls import reverse

from inference.models import FrameScore, InferenceJob, ModelVersion
from labeling.models import LabelItem, QueueKind, SurveyImage


def active_model() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def job_progress(*, job: InferenceJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": job.get_status_display(),
        "frames_total": job.frames_total,
        "frames_done": job.frames_done,
        "frames_failed": job.frames_failed,
        "tiles_scored": job.tiles_scored,
        "tiles_per_s": job.tiles_per_s,
        "eta_s": job.eta_seconds,
        "percent": job.percent,
        "device": job.device,
        "precision": job.precision,
        "finished": job.is_finished,
        "candidates": LabelItem.objects.filter(
            survey=job.survey, model_version_id=job.model_version_id, kind=QueueKind.CANDIDATES
        ).count(),
        "errors": list(
            job.frame_errors.select_related("image").values("image__original_name", "message")[:200]
        ),
    }


def _frame_score(*, image: SurveyImage, version: ModelVersion | None) -> FrameScore | None:
    """The frame's score grid by ``version``; without one, by the active model, else the newest."""
    qs = FrameScore.objects.filter(image=image).select_related("model_version")
    if version is not None:
        return qs.filter(model_version=version).first()
    active = active_model()
    return (qs.filter(model_version=active).first() if active else None) or qs.order_by(
        "-scored_at"
    ).first()


def _detections(*, image: SurveyImage, fs: FrameScore) -> list[dict]:
    return list(
        LabelItem.objects.filter(
            image=image, model_version_id=fs.model_version_id, kind=QueueKind.CANDIDATES
        )
        .order_by("-score", "pk")
        .values("pk", "x0", "y0", "x1", "y1", "score", "centre_x", "centre_y", "status", "consensus")
    )


def image_scores(*, image: SurveyImage, version: ModelVersion | None = None) -> dict | None:
    """The newest score grid of a frame (by the given or the active version) and its
    detections, for the heat map overlay."""
    fs = _frame_score(image=image, version=version)
    if fs is None:
        return None
    return {
        "model_version": fs.model_version_id,
        "model_name": fs.model_version.name,
        "threshold": fs.model_version.review_threshold,
        "tile": fs.tile,
        "ys": fs.ys,
        "xs": fs.xs,
        "grid": [[round(float(v), 4) for v in row] for row in fs.as_array()],
        "max_score": fs.max_score,
        "detections": _detections(image=image, fs=fs),
    }


def image_score_summary(*, image: SurveyImage) -> dict | None:
    """What a frame's API detail shows of its scores: the grid's shape and figures (the grid
    itself is ``grid_url``, the heat map's JSON) and the detections queued from it. None while
    the frame is unscored."""
    fs = _frame_score(image=image, version=None)
    if fs is None:
        return None
    return {
        "model_version": fs.model_version_id,
        "model_name": fs.model_version.name,
        "threshold": fs.model_version.review_threshold,
        "tile": fs.tile,
        "rows": fs.rows,
        "cols": fs.cols,
        "max_score": fs.max_score,
        "tiles_above_threshold": fs.n_tiles_above,
        "candidates": fs.n_candidates,
        "scored_at": fs.scored_at,
        "grid_url": reverse("image-scores", args=[image.pk]),
        "detections": _detections(image=image, fs=fs),
    }
