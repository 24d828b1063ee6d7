"""A real Celery worker runs an inference job; killed with SIGKILL mid-job and restarted, every
frame ends up scored exactly once. And in Chromium, the job page's progress bar reaches 100 %
and the candidates appear."""

from __future__ import annotations

import pytest

from inference import services
from inference.models import FrameScore, InferenceJob
from labeling.models import LabelItem, QueueKind
from tests.conftest import wait_for
from tests.inference.jobfixtures import register_model, survey_with_frames

pytestmark = pytest.mark.worker


def test_killed_worker_mid_job_scores_every_frame_exactly_once(celery_worker_process, tmp_path):
    survey = survey_with_frames(12)
    version = register_model(tmp_path, threshold=0.5)
    job = services.job_create(survey=survey, model_version=version, chunk_size=4, audit_rate=0.0, uncertain_count=0)
    wait_for(lambda: FrameScore.objects.filter(job=job).count() >= 2, timeout=180,
             what=f"two scored frames\n{celery_worker_process.output()[-3000:]}")
    celery_worker_process.kill()
    scored_at_kill = FrameScore.objects.filter(job=job).count()
    celery_worker_process.start()

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, timeout=300, what=f"the job to finish\n{celery_worker_process.output()[-3000:]}")
    assert scored_at_kill < 12, "the worker was not killed mid-job"
    assert job.status == InferenceJob.Status.SUCCEEDED
    assert FrameScore.objects.filter(model_version=version).count() == 12
    assert (job.frames_done, job.frames_failed, job.frames_total) == (12, 0, 12)
    assert job.tiles_scored == 12 * 4
    # a candidate is queued once per detection, however many times its chunk ran
    boxes = list(LabelItem.objects.filter(model_version_id=version.pk).values_list("image_id", "kind", "x0", "y0"))
    assert len(boxes) == len(set(boxes))


@pytest.mark.browser
def test_job_progress_reaches_100_and_candidates_appear(celery_worker_process, live_server, browser, tmp_path, django_user_model, artifacts_dir):
    django_user_model.objects.create_superuser("lead", "lead@example.org", "survey-lead-pw-1")
    survey = survey_with_frames(6)
    version = register_model(tmp_path, threshold=0.5)
    services.model_promote(version=version, start_inference=False)

    page = browser.new_page()
    page.goto(f"{live_server.url}/surveys/{survey.pk}/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "survey-lead-pw-1")
    page.click("button[type=submit]")
    page.click("text=Run the active model over this survey")
    page.wait_for_url("**/jobs/*/")
    seen = set()
    for _ in range(600):
        seen.add(page.eval_on_selector("#job-progress", "el => el.value"))
        if page.is_visible("#job-done"):
            break
        page.wait_for_timeout(200)
    assert page.eval_on_selector("#job-progress", "el => el.value") == 100
    job = InferenceJob.objects.get()
    n_candidates = LabelItem.objects.filter(model_version_id=version.pk, kind=QueueKind.CANDIDATES).count()
    assert n_candidates > 0
    assert page.text_content("[data-field=candidates]").strip() == str(n_candidates)
    assert job.frames_done == 6 and "6 of 6 frames" in " ".join(page.text_content("#job-text").split())
    assert len(seen) > 1 or 100 in seen
    page.screenshot(path=str(artifacts_dir / "inference-job.png"), full_page=True)

    # the frame page overlays the heat map and outlines the detections
    item = LabelItem.objects.filter(model_version_id=version.pk, kind=QueueKind.CANDIDATES).first()
    page.goto(f"{live_server.url}/images/{item.image_id}/")
    page.wait_for_selector(".detection", state="attached", timeout=20_000)
    assert page.locator(".heat").count() > 0
    page.screenshot(path=str(artifacts_dir / "image-heatmap.png"))
    page.close()
