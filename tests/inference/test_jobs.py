"""Inference jobs through the services: scores, queue items, idempotency, cancel, retry."""

from __future__ import annotations

import numpy as np
import pytest

from inference import services
from inference.models import FrameError, FrameScore, InferenceJob, ModelEvent, ModelVersion
from labeling.models import LabelItem, QueueKind
from tests.inference.jobfixtures import register_model, survey_with_frames


def scores_of(version):
    return {fs.image_id: fs.as_array() for fs in FrameScore.objects.filter(model_version=version)}


@pytest.mark.django_db
def test_job_scores_every_frame_once_and_fills_queues(tmp_path, django_capture_on_commit_callbacks):
    survey = survey_with_frames(3)
    probe = register_model(tmp_path, threshold=0.5)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(survey=survey, model_version=probe, chunk_size=2, audit_rate=0.5, uncertain_count=3)
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.SUCCEEDED
    assert (job.frames_total, job.frames_done, job.frames_failed) == (3, 3, 0)
    assert job.tiles_scored == 3 * 4  # 2 x 2 tiles of 224 px per 444 px frame
    grids = scores_of(probe)
    assert len(grids) == 3 and all(g.shape == (2, 2) and g.dtype == np.float16 for g in grids.values())
    fs = FrameScore.objects.first()
    assert fs.max_score == pytest.approx(float(fs.as_array().max()), abs=1e-3)

    # Threshold between observed scores, so the queues get something of each kind.
    all_scores = np.concatenate([g.ravel() for g in grids.values()]).astype(float)
    version = register_model(tmp_path, threshold=float(np.median(all_scores)), name="mid")
    with django_capture_on_commit_callbacks(execute=True):
        job2 = services.job_create(survey=survey, model_version=version, audit_rate=1.0, uncertain_count=2)
    job2.refresh_from_db()
    items = LabelItem.objects.filter(model_version_id=version.pk)
    candidates = items.filter(kind=QueueKind.CANDIDATES)
    audit = items.filter(kind=QueueKind.AUDIT)
    uncertain = items.filter(kind=QueueKind.UNCERTAIN)
    n_above = sum(int((g.astype(float) >= version.review_threshold).sum()) for g in scores_of(version).values())
    assert candidates.exists() and candidates.count() <= n_above
    assert audit.count() == 12 - n_above  # rate 1.0: every tile below the threshold
    assert all(a.sampling_probability == 1.0 and a.score < version.review_threshold for a in audit)
    assert uncertain.count() == 2 and all(u.score < version.review_threshold for u in uncertain)
    for item in items:
        assert item.tile_crop.name and item.context_crop.name
        assert item.x1 - item.x0 == 224 and item.y1 - item.y0 == 224
        assert 0 <= item.x0 and item.x1 <= item.image.width
        assert item.context_box[2] - item.context_box[0] > 224  # the tile plus surroundings
    top = candidates.order_by("-priority").first()
    assert top.score == max(c.score for c in candidates)


@pytest.mark.django_db
def test_rerun_with_same_version_skips_done_frames(tmp_path, django_capture_on_commit_callbacks):
    survey = survey_with_frames(2)
    version = register_model(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        services.job_create(survey=survey, model_version=version)
    before = {fs.pk: fs.scored_at for fs in FrameScore.objects.all()}
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(survey=survey, model_version=version)
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.SUCCEEDED and job.frames_done == 2
    assert job.tiles_scored == 0  # nothing was scored again
    assert {fs.pk: fs.scored_at for fs in FrameScore.objects.all()} == before
    # a redelivered chunk does nothing twice
    services.chunk_score(job_id=job.pk, image_ids=list(survey.images.values_list("pk", flat=True)))
    assert FrameScore.objects.count() == 2


@pytest.mark.django_db
def test_corrupt_frame_fails_alone_and_can_be_retried(tmp_path, django_capture_on_commit_callbacks):
    survey = survey_with_frames(3, corrupt=(1,))
    version = register_model(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(survey=survey, model_version=version)
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.FAILED
    assert (job.frames_done, job.frames_failed) == (2, 1)
    error = FrameError.objects.get()
    assert error.image.original_name == "f001.jpg" and "truncated" in error.message.lower()

    # the survey lead replaces the file, then retries the failed frames
    from tests.labeling import images as img

    with open(error.image.file.path, "wb") as fh:
        fh.write(img.jpeg_bytes(444, 444, seed=501))
    with django_capture_on_commit_callbacks(execute=True):
        services.job_retry_failed(job=job)
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.SUCCEEDED
    assert (job.frames_done, job.frames_failed) == (3, 0)


@pytest.mark.django_db
def test_cancel_stops_a_job_and_is_final(tmp_path):
    survey = survey_with_frames(2)
    version = register_model(tmp_path)
    job = services.job_create(survey=survey, model_version=version)  # chunks not sent: no commit
    services.job_cancel(job=job)
    services.chunk_score(job_id=job.pk, image_ids=list(survey.images.values_list("pk", flat=True)))
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED and FrameScore.objects.count() == 0
    with pytest.raises(services.IllegalTransition):
        services.job_cancel(job=job)


@pytest.mark.django_db
def test_registry_one_active_promote_and_rollback(tmp_path):
    a = register_model(tmp_path, name="a")
    b = register_model(tmp_path, name="b", seed=1)
    services.model_promote(version=a, start_inference=False)
    services.model_promote(version=b, start_inference=False)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == (ModelVersion.Status.RETIRED, ModelVersion.Status.ACTIVE)
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1
    services.model_rollback(reason="b misses bears on grey ice")
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == (ModelVersion.Status.ACTIVE, ModelVersion.Status.RETIRED)
    last = ModelEvent.objects.first()
    assert last.action == ModelEvent.Action.ROLLBACK and last.previous_active == b
    with pytest.raises(services.IllegalTransition):
        services.model_promote(version=a)
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=b.pk).update(status=ModelVersion.Status.ACTIVE)


@pytest.mark.django_db
def test_promotion_starts_inference_on_unscored_surveys(tmp_path, django_capture_on_commit_callbacks):
    survey = survey_with_frames(1)
    version = register_model(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        services.model_promote(version=version, start_inference=True)
    job = InferenceJob.objects.get()
    assert job.survey == survey and job.model_version == version
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.SUCCEEDED
