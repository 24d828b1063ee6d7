"""Ingest through a real Celery worker process on the configured broker (the filesystem broker
on the embedded default, Redis in CI), and a worker killed mid-batch."""

from __future__ import annotations

import io

import pytest

from labeling import services
from labeling.models import BatchItem, IngestBatch
from tests.conftest import wait_for
from tests.labeling import images as img

pytestmark = [pytest.mark.worker, pytest.mark.embedded]


def test_a_real_worker_ingests_a_batch(celery_worker_process, survey):
    files = [(f"f{n}.jpg", img.jpeg_bytes(400, 300, seed=n)) for n in range(4)]
    files.append(("bad.jpg", img.corrupt_jpeg()))
    batch = services.batch_create(
        target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.UPLOAD, survey=survey,
        files=[services.IncomingFile(name=n, fileobj=io.BytesIO(d), size=len(d)) for n, d in files],
    )

    def finished():
        batch.refresh_from_db()
        return batch.status == IngestBatch.Status.DONE

    wait_for(finished, timeout=90, what=f"the worker to ingest the batch\n{celery_worker_process.output()[-3000:]}")
    assert survey.images.count() == 4
    assert batch.items.get(name="bad.jpg").status == BatchItem.Status.FAILED


def test_a_killed_worker_loses_nothing(celery_worker_process, survey):
    """SIGKILL the worker while it holds the batch; a new worker finishes every file once."""
    files = [(f"k{n}.jpg", img.jpeg_bytes(1600, 1200, seed=100 + n)) for n in range(30)]
    batch = services.batch_create(
        target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.UPLOAD, survey=survey,
        files=[services.IncomingFile(name=n, fileobj=io.BytesIO(d), size=len(d)) for n, d in files],
    )
    wait_for(lambda: survey.images.count() >= 1, timeout=90, what="the first frame")
    celery_worker_process.kill()
    partial = survey.images.count()
    celery_worker_process.start()

    def finished():
        batch.refresh_from_db()
        return batch.status == IngestBatch.Status.DONE

    wait_for(finished, timeout=120, what=f"the restarted worker\n{celery_worker_process.output()[-3000:]}")
    assert survey.images.count() == 30
    names = list(survey.images.values_list("original_name", flat=True))
    assert len(set(names)) == 30
    assert batch.items.filter(status=BatchItem.Status.INGESTED).count() == 30
    assert partial < 30  # the kill really happened mid-batch
