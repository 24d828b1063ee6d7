"""Writes for the model registry and inference jobs.

Registry transitions (one function each, illegal moves refused): any version that is not
active may be promoted (the previous active one is retired); a candidate may be rejected;
roll back re-promotes the version that was active before the last promotion. Each writes a
``ModelEvent``.

Jobs: ``job_create`` counts what is already scored by this version as done and queues the rest
in chunks; ``chunk_score`` is idempotent (skips frames that already have a score by this
version, and the database refuses a second one), records each frame's score, counters and
queue items in one transaction, so a worker killed mid-chunk loses at most the frame in flight,
which the redelivered chunk scores.
"""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bearsite.storage import local_path
from inference.models import FrameError, FrameScore, InferenceJob, ModelEvent, ModelVersion
from labeling.models import LabelItem, QueueKind, Survey, SurveyImage, SurveyQueue

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 8


class IllegalTransition(ValueError):
    pass


# --- Registry -----------------------------------------------------------------------------------


def model_register(
    *,
    checkpoint_path: str | os.PathLike,
    name: str,
    init: str | None = None,
    review_threshold: float | None = None,
    metrics: dict | None = None,
    parent: ModelVersion | None = None,
    created_by=None,
    notes: str = "",
) -> ModelVersion:
    """Validate a checkpoint file and add it to the registry as a candidate.

    Raises ``CheckpointError`` with the reason when the file does not load or has the wrong
    classes. The file is copied into storage under its SHA-256."""
    from inference.engine.checkpoint import file_sha256, load_checkpoint

    ckpt = load_checkpoint(checkpoint_path)
    sha = file_sha256(checkpoint_path)
    stored_name = f"models/{sha}.pt"
    if not default_storage.exists(stored_name):
        with open(checkpoint_path, "rb") as fh:
            stored_name = default_storage.save(stored_name, File(fh))
    threshold = review_threshold
    if threshold is None:
        threshold = float(ckpt.metrics.get("threshold", 0.5)) if ckpt.metrics else 0.5
    with transaction.atomic():
        version = ModelVersion.objects.create(
            name=name,
            arch=ckpt.arch,
            checkpoint=stored_name,
            sha256=sha,
            class_names=list(ckpt.class_names),
            preprocessing=ckpt.preprocessing.as_dict(),
            init=init or ckpt.init,
            review_threshold=min(max(threshold, 0.0), 1.0),
            metrics=metrics if metrics is not None else dict(ckpt.metrics),
            parent=parent,
            created_by=created_by,
            notes=notes,
        )
        ModelEvent.objects.create(
            version=version, action=ModelEvent.Action.REGISTER, user=created_by,
            reason=notes or f"registered from {Path(checkpoint_path).name}",
        )
    return version


def model_promote(
    *, version: ModelVersion, user=None, reason: str = "", action: str = ModelEvent.Action.PROMOTE,
    start_inference: bool | None = None,
) -> ModelVersion:
    """Make ``version`` the active model; the previous active one is retired."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status == ModelVersion.Status.ACTIVE:
            raise IllegalTransition(f"{version} is already the active model")
        previous = ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.ACTIVE).first()
        if previous is not None:
            previous.status = ModelVersion.Status.RETIRED
            previous.save(update_fields=["status"])
        version.status = ModelVersion.Status.ACTIVE
        version.save(update_fields=["status"])
        ModelEvent.objects.create(
            version=version, action=action, previous_active=previous, user=user, reason=reason
        )
        if start_inference is None:
            start_inference = settings.BEARSITE_REINFER_ON_PROMOTE
        if start_inference:
            transaction.on_commit(lambda: jobs_for_unscored_surveys(version_id=version.pk, user=user))
    return version


def model_rollback(*, user=None, reason: str = "") -> ModelVersion:
    """Re-activate the model that was active before the last promotion."""
    last = (
        ModelEvent.objects.filter(action__in=[ModelEvent.Action.PROMOTE, ModelEvent.Action.ROLLBACK])
        .select_related("previous_active")
        .first()
    )
    if last is None or last.previous_active is None:
        raise IllegalTransition("there is no earlier active model to roll back to")
    return model_promote(
        version=last.previous_active, user=user, action=ModelEvent.Action.ROLLBACK,
        reason=reason or f"rolled back from {last.version.name}",
    )


def model_reject(*, version: ModelVersion, reason: str, user=None) -> ModelVersion:
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != ModelVersion.Status.CANDIDATE:
            raise IllegalTransition(f"only a candidate can be rejected; {version} is {version.status}")
        version.status = ModelVersion.Status.REJECTED
        version.save(update_fields=["status"])
        ModelEvent.objects.create(version=version, action=ModelEvent.Action.REJECT, user=user, reason=reason)
    return version


def jobs_for_unscored_surveys(*, version_id: int, user=None) -> list[InferenceJob]:
    """Start a job with this version for every survey that has frames it has not scored."""
    version = ModelVersion.objects.get(pk=version_id)
    jobs = []
    for survey in Survey.objects.filter(archived=False):
        unscored = survey.images.exclude(scores__model_version=version)
        if unscored.exists():
            jobs.append(job_create(survey=survey, model_version=version, created_by=user))
    return jobs


# --- Jobs ---------------------------------------------------------------------------------------


def job_create(
    *,
    survey: Survey,
    model_version: ModelVersion,
    images: list[SurveyImage] | None = None,
    created_by=None,
    chunk_size: int = DEFAULT_CHUNK,
    audit_rate: float | None = None,
    uncertain_count: int | None = None,
    seed: int = 0,
) -> InferenceJob:
    with transaction.atomic():
        job = InferenceJob.objects.create(
            survey=survey,
            model_version=model_version,
            review_threshold=model_version.review_threshold,
            audit_rate=settings.BEARSITE_AUDIT_RATE if audit_rate is None else audit_rate,
            uncertain_count=(
                settings.BEARSITE_UNCERTAIN_PER_SURVEY if uncertain_count is None else uncertain_count
            ),
            chunk_size=chunk_size,
            seed=seed,
            created_by=created_by,
        )
        qs = survey.images.all()
        if images is not None:
            job.images.set(images)
            qs = qs.filter(pk__in=[i.pk for i in images])
        ids = list(qs.order_by("pk").values_list("pk", flat=True))
        done = set(
            FrameScore.objects.filter(model_version=model_version, image_id__in=ids).values_list(
                "image_id", flat=True
            )
        )
        todo = [i for i in ids if i not in done]
        job.frames_total = len(ids)
        job.frames_done = len(done)
        job.save(update_fields=["frames_total", "frames_done"])
        _enqueue_chunks(job, todo)
        if not todo:
            transaction.on_commit(lambda: job_finish_if_done(job_id=job.pk))
    return job


def _enqueue_chunks(job: InferenceJob, image_ids: list[int]) -> None:
    from inference.tasks import score_chunk

    def send() -> None:
        for start in range(0, len(image_ids), job.chunk_size):
            score_chunk.delay(job.pk, image_ids[start : start + job.chunk_size])

    transaction.on_commit(send)


def jobs_requeue_unfinished() -> int:
    """Queue again the unscored frames of every queued or running job (idempotent chunks)."""
    jobs = list(InferenceJob.objects.filter(
        status__in=[InferenceJob.Status.QUEUED, InferenceJob.Status.RUNNING], cancel_requested=False
    ))
    for job in jobs:
        qs = job.images.all() if job.images.exists() else job.survey.images.all()
        scored = FrameScore.objects.filter(model_version_id=job.model_version_id).values("image_id")
        failed = job.frame_errors.values("image_id")
        todo = list(qs.exclude(pk__in=scored).exclude(pk__in=failed).order_by("pk").values_list("pk", flat=True))
        with transaction.atomic():
            _enqueue_chunks(job, todo)
            if not todo:
                transaction.on_commit(lambda job_id=job.pk: job_finish_if_done(job_id=job_id))
    return len(jobs)


def job_cancel(*, job: InferenceJob, user=None) -> InferenceJob:
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise IllegalTransition(f"the job is already {job.get_status_display()}")
        job.cancel_requested = True
        job.status = InferenceJob.Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["cancel_requested", "status", "finished_at"])
    return job


def job_retry_failed(*, job: InferenceJob, user=None) -> InferenceJob:
    """Queue the failed frames again (for example after the file was replaced)."""
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().get(pk=job.pk)
        if not job.is_finished:
            raise IllegalTransition("the job is still running; retry its failed frames when it ends")
        errors = list(job.frame_errors.values_list("image_id", flat=True))
        if not errors:
            raise IllegalTransition("the job has no failed frames")
        job.frame_errors.all().delete()
        job.frames_failed = F("frames_failed") - len(errors)
        job.status = InferenceJob.Status.QUEUED
        job.cancel_requested = False
        job.finished_at = None
        job.save(update_fields=["frames_failed", "status", "cancel_requested", "finished_at"])
        _enqueue_chunks(job, errors)
    job.refresh_from_db()
    return job


def job_finish_if_done(*, job_id: int) -> None:
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished or job.frames_done + job.frames_failed < job.frames_total:
            return
        job.status = InferenceJob.Status.FAILED if job.frames_failed else InferenceJob.Status.SUCCEEDED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
        if not job.uncertain_done and job.uncertain_count:
            from inference.tasks import queue_uncertain

            transaction.on_commit(lambda: queue_uncertain.delay(job.pk))


def job_queue_uncertain(*, job_id: int) -> int:
    """Queue the survey's tiles nearest the decision boundary (below the threshold; those above
    are candidates already), at most ``uncertain_count``, for active learning. Runs once per job,
    after every frame is scored; decodes only the frames that hold a chosen tile."""
    import heapq

    from inference.engine.decode import decode_frame
    from inference.engine.tiling import TileGrid

    job = InferenceJob.objects.select_related("model_version").get(pk=job_id)
    if job.uncertain_done or job.status == InferenceJob.Status.CANCELLED:
        return 0
    threshold = job.review_threshold
    heap: list[tuple[float, int, int, int, float]] = []  # (-distance, image, r, c, score)
    scores = FrameScore.objects.filter(model_version=job.model_version, image__survey=job.survey)
    for fs in scores.only("image_id", "rows", "cols", "grid").iterator(chunk_size=500):
        grid = fs.as_array().astype(np.float32)
        below = np.where(grid < threshold, threshold - grid, np.inf)
        k = min(job.uncertain_count, below.size)
        for flat in np.argpartition(below.ravel(), k - 1)[:k]:
            d = float(below.ravel()[flat])
            if not np.isfinite(d):
                continue
            r, c = divmod(int(flat), fs.cols)
            entry = (-d, fs.image_id, r, c, float(grid[r, c]))
            if len(heap) < job.uncertain_count:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)
    by_image: dict[int, list] = {}
    for _, image_id, r, c, score in heap:
        by_image.setdefault(image_id, []).append((r, c, score))
    items = []
    for image in SurveyImage.objects.filter(pk__in=by_image):
        fs = FrameScore.objects.get(image=image, model_version=job.model_version)
        tiles = TileGrid(height=image.height, width=image.width, tile=fs.tile,
                         ys=tuple(fs.ys), xs=tuple(fs.xs))
        with local_path(image.file.name) as path:
            frame = decode_frame(path)
        for r, c, score in by_image[image.pk]:
            items.append(_tile_item(
                job, image, QueueKind.UNCERTAIN, tiles.box(r, c), score=score,
                priority=-abs(threshold - score), frame=frame,
            ))
        del frame
    with transaction.atomic():
        LabelItem.objects.bulk_create(items, ignore_conflicts=True)
        InferenceJob.objects.filter(pk=job_id).update(uncertain_done=True)
    return len(items)


# The GPU worker keeps one predictor per process, loaded lazily on the first chunk: CUDA is
# initialised in the worker child only, and a model is loaded once, not per task.
_PREDICTOR: tuple[int, object] | None = None


def _predictor_for(version: ModelVersion):
    global _PREDICTOR
    if _PREDICTOR is not None and _PREDICTOR[0] == version.pk:
        return _PREDICTOR[1]
    from inference.engine.checkpoint import load_checkpoint
    from inference.engine.predictor import Predictor

    with local_path(version.checkpoint.name) as path:
        ckpt = load_checkpoint(path)
    predictor = Predictor(
        ckpt, device=settings.BEARSITE_DEVICE or None, batch_size=settings.BEARSITE_INFER_BATCH
    )
    _PREDICTOR = (version.pk, predictor)
    return predictor


def chunk_score(*, job_id: int, image_ids: list[int]) -> None:
    job = InferenceJob.objects.select_related("model_version", "survey").filter(pk=job_id).first()
    if job is None:
        log.warning("inference job %s is gone; chunk ignored", job_id)
        return
    if job.cancel_requested or job.is_finished:
        return
    version = job.model_version
    done = set(
        FrameScore.objects.filter(model_version=version, image_id__in=image_ids).values_list(
            "image_id", flat=True
        )
    )
    images = list(SurveyImage.objects.filter(pk__in=[i for i in image_ids if i not in done]).order_by("pk"))
    if not images:
        job_finish_if_done(job_id=job_id)
        return
    with transaction.atomic():
        InferenceJob.objects.filter(pk=job_id, status=InferenceJob.Status.QUEUED).update(
            status=InferenceJob.Status.RUNNING, started_at=timezone.now()
        )
    predictor = _predictor_for(version)
    InferenceJob.objects.filter(pk=job_id).update(device=predictor.device, precision=predictor.precision)
    min_overlap = job.survey.min_tile_overlap_px
    from inference.engine.predictor import FrameSource

    # Frames are read through the storage API in the decoding threads (local disk or an
    # object store alike); each is decoded once and kept for its crops.
    sources = [
        FrameSource(name=img.file.name, open=lambda name=img.file.name: default_storage.open(name, "rb"))
        for img in images
    ]
    by_name = {img.file.name: img for img in images}
    started = time.perf_counter()
    for result in predictor.predict_files(sources, min_overlap=min_overlap, keep_image=True):
        image = by_name[str(result.path)]
        elapsed = time.perf_counter() - started
        if InferenceJob.objects.filter(pk=job_id, cancel_requested=True).exists():
            return
        if result.error is not None:
            _record_frame_error(job, image, result.error)
        else:
            _record_frame_score(job, image, result, elapsed)
        started = time.perf_counter()
    job_finish_if_done(job_id=job_id)


def _record_frame_error(job: InferenceJob, image: SurveyImage, message: str) -> None:
    with transaction.atomic():
        _, created = FrameError.objects.get_or_create(job=job, image=image, defaults={"message": message})
        if created:
            InferenceJob.objects.filter(pk=job.pk).update(frames_failed=F("frames_failed") + 1)


def _record_frame_score(job: InferenceJob, image: SurveyImage, result, elapsed: float) -> None:
    from inference.engine.selection import audit_sample, frame_seed, merge_detections

    scores = result.scores
    grid = np.asarray(scores.grid, dtype=np.float32)
    threshold = job.review_threshold
    detections = merge_detections(scores, threshold)
    audit = audit_sample(scores, threshold, job.audit_rate, frame_seed(job.seed, image.sha256))
    tiles = scores.tiles
    items = []
    for det in detections:
        items.append(_tile_item(
            job, image, QueueKind.CANDIDATES, _tile_box_around(det.x, det.y, tiles.tile, image),
            score=det.score, priority=det.score, centre=(det.x, det.y), frame=result.image,
        ))
    for r, c, score, probability in audit:
        items.append(_tile_item(
            job, image, QueueKind.AUDIT, tiles.box(r, c), score=score,
            priority=0.0, probability=probability, frame=result.image,
        ))
    with transaction.atomic():
        try:
            with transaction.atomic():
                FrameScore.objects.create(
                    image=image,
                    model_version=job.model_version,
                    job=job,
                    tile=tiles.tile,
                    rows=grid.shape[0],
                    cols=grid.shape[1],
                    ys=list(tiles.ys),
                    xs=list(tiles.xs),
                    grid=grid.astype(np.float16).tobytes(),
                    max_score=float(grid.max()),
                    n_candidates=len(detections),
                    n_tiles_above=int((grid >= threshold).sum()),
                )
        except IntegrityError:
            return  # scored already (a redelivered chunk racing another worker): count nothing
        LabelItem.objects.bulk_create(items, ignore_conflicts=True)
        InferenceJob.objects.filter(pk=job.pk).update(
            frames_done=F("frames_done") + 1,
            tiles_scored=F("tiles_scored") + grid.size,
            compute_seconds=F("compute_seconds") + elapsed,
        )
    job_update_speed(job_id=job.pk)


def job_update_speed(*, job_id: int) -> None:
    job = InferenceJob.objects.get(pk=job_id)
    if job.compute_seconds:
        InferenceJob.objects.filter(pk=job_id).update(tiles_per_s=job.tiles_scored / job.compute_seconds)


def _tile_box_around(x: float, y: float, tile: int, image: SurveyImage) -> tuple[int, int, int, int]:
    """A tile-sized box centred on (x, y), kept inside the frame."""
    x0 = int(round(min(max(x - tile / 2, 0), image.width - tile)))
    y0 = int(round(min(max(y - tile / 2, 0), image.height - tile)))
    return (x0, y0, x0 + tile, y0 + tile)


def _votes_needed(survey_id: int, kind: str) -> int:
    setting = SurveyQueue.objects.filter(survey_id=survey_id, kind=kind).first()
    if setting is not None:
        return setting.votes_needed
    return settings.BEARSITE_DEFAULT_VOTES.get(kind, 2)


def _tile_item(
    job, image, kind, box, *, score, priority, frame, centre=None, probability=None
) -> LabelItem:
    tile_name, context_name, context_box = _render_crops(job, image, kind, box, frame)
    return LabelItem(
        kind=kind,
        survey_id=image.survey_id,
        image=image,
        x0=box[0], y0=box[1], x1=box[2], y1=box[3],
        centre_x=None if centre is None else centre[0],
        centre_y=None if centre is None else centre[1],
        score=score,
        priority=priority,
        sampling_probability=probability,
        model_version_id=job.model_version_id,
        tile_crop=tile_name,
        context_crop=context_name,
        context_box=context_box,
        votes_needed=_votes_needed(image.survey_id, kind),
    )


def _render_crops(job, image, kind, box, frame) -> tuple[str, str, list[int]]:
    """Tile and context crops cut from the frame this worker already decoded."""
    from inference.engine.crops import render_context_crop

    crop = render_context_crop(frame, box)
    base = f"crops/{image.survey_id}/{image.pk}/{job.model_version_id}-{kind}-{box[0]}-{box[1]}"
    names = []
    for suffix, picture, fmt in (("tile.png", crop.tile, "PNG"), ("context.jpg", crop.context, "JPEG")):
        buf = io.BytesIO()
        picture.save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
        name = f"{base}-{suffix}"
        if default_storage.exists(name):
            default_storage.delete(name)  # a redelivered chunk renders the same crop again
        names.append(default_storage.save(name, ContentFile(buf.getvalue())))
    x, y = crop.offset
    return names[0], names[1], [x, y, x + crop.context.width, y + crop.context.height]
