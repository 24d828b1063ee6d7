"""Reads for models, jobs and scores."""

from __future__ import annotations

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


def image_scores(*, image: SurveyImage, version: ModelVersion | None = None) -> dict | None:
    """The newest score grid of a frame (by the given or the active version) and its
    detections, for the heat map overlay."""
    qs = FrameScore.objects.filter(image=image).select_related("model_version")
    if version is not None:
        qs = qs.filter(model_version=version)
    active = active_model()
    fs = (qs.filter(model_version=active).first() if active and version is None else None) or qs.order_by("-scored_at").first()
    if fs is None:
        return None
    items = LabelItem.objects.filter(
        image=image, model_version_id=fs.model_version_id, kind=QueueKind.CANDIDATES
    ).values("pk", "x0", "y0", "x1", "y1", "score", "centre_x", "centre_y", "status", "consensus")
    return {
        "model_version": fs.model_version_id,
        "model_name": fs.model_version.name,
        "threshold": fs.model_version.review_threshold,
        "tile": fs.tile,
        "ys": fs.ys,
        "xs": fs.xs,
        "grid": [[round(float(v), 4) for v in row] for row in fs.as_array()],
        "max_score": fs.max_score,
        "detections": list(items),
    }
