"""A real Celery worker is killed (SIGKILL) after the first epoch checkpoint; the restarted
worker re-sends the run, which resumes from that checkpoint and finishes."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.training.runfixtures import TINY_CONFIG, labelled_survey
from training import services
from training.models import TrainingRun

pytestmark = [pytest.mark.worker, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def training_dir(settings, tmp_path, monkeypatch):
    """The test and the worker process share one training folder (the worker reads the env)."""
    folder = tmp_path / "training"
    settings.BEARSITE_TRAINING_DIR = folder
    monkeypatch.setenv("BEARSITE_TRAINING_DIR", str(folder))
    # The promotion's re-inference is tested elsewhere; here it would only slow the teardown.
    monkeypatch.setenv("BEARSITE_REINFER_ON_PROMOTE", "false")
    settings.BEARSITE_VAL_PERCENT = 50
    settings.BEARSITE_CROPS_PER_BEAR = 2
    settings.BEARSITE_BACKGROUND_PER_FRAME = 12
    return folder


def test_training_resumes_after_the_worker_is_killed(training_dir, celery_worker_process):
    survey, frames = labelled_survey(frames=8)
    run = services.run_create(
        trigger=TrainingRun.Trigger.ADMIN, config={**TINY_CONFIG, "epochs": 2}, enqueue=False
    )
    # The snapshot is taken here, with this test's settings; the worker trains on exactly it.
    services._snapshot_plan(run, TINY_CONFIG["tile_size"])
    services._send(run.pk)

    resume = services.run_dir(run.pk) / "model.pt.resume"
    wait_for(resume.exists, timeout=240, interval=0.05, what="the first epoch checkpoint")
    celery_worker_process.kill()
    run.refresh_from_db()
    assert run.status == "running" and run.attempts == 1
    assert not run.produced_version_id

    celery_worker_process.start()  # its start re-sends unfinished runs

    def finished():
        run.refresh_from_db()
        return run.is_finished

    wait_for(finished, timeout=300, interval=0.5, what="the resumed run to finish")
    assert run.status == "succeeded", run.error + celery_worker_process.output()[-3000:]
    assert run.attempts == 2
    assert run.resumed_from_epoch == 1
    assert any("resuming from the checkpoint after epoch 1" in e["message"] for e in run.log)
    assert [e["epoch"] for e in run.history] == [1, 2]
    assert (
        run.produced_version is not None and run.produced_version.metrics["training_run"] == run.pk
    )
