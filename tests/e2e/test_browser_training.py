"""In Chromium: an admin launches a training run from the Training page and watches its page:
the progress bar climbs to 100 %, the loss and PR charts are drawn, and the decision with its
reason appears."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tests.training.runfixtures import TINY_CONFIG, labelled_survey
from training import services

pytestmark = [pytest.mark.browser, pytest.mark.embedded]


@pytest.mark.django_db(transaction=True)
def test_admin_launches_a_run_and_sees_it_reach_100_and_the_decision(
    live_server, browser, django_user_model, settings, tmp_path, monkeypatch, artifacts_dir
):
    settings.BEARSITE_TRAINING_DIR = tmp_path / "training"
    settings.BEARSITE_VAL_PERCENT = 50
    settings.BEARSITE_CROPS_PER_BEAR = 2
    settings.BEARSITE_BACKGROUND_PER_FRAME = 2
    django_user_model.objects.create_superuser("lead", "lead@example.org", "survey-lead-pw-1")
    labelled_survey(frames=8)
    # Tiny tiles so ResNet-50 trains in seconds; the GPU worker is a thread of this process.
    real_defaults = services.default_config
    monkeypatch.setattr(
        services,
        "default_config",
        lambda: {
            **real_defaults(),
            **{k: TINY_CONFIG[k] for k in ("tile_size", "precision", "num_workers", "optimizer")},
        },
    )
    workers: list[threading.Thread] = []

    def gpu_worker(run_id: int) -> None:
        try:
            services.run_execute(run_id=run_id, start_inference=False)
        finally:
            connection.close()

    def send(run_id: int) -> None:
        thread = threading.Thread(target=gpu_worker, args=(run_id,), daemon=True)
        workers.append(thread)
        thread.start()

    monkeypatch.setattr(services, "_send", send)

    page = browser.new_page()
    page.goto(f"{live_server.url}/training/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "survey-lead-pw-1")
    page.click("button[type=submit]")
    page.select_option("#id_base", "fresh")
    page.fill("#id_epochs", "2")
    page.fill("#id_batch_size", "8")
    page.fill("#id_min_positives", "2")
    page.select_option("#id_freeze", "none")
    page.fill("#id_target_recall", "0.95")
    page.click("text=Launch training")
    page.wait_for_selector("h1:has-text('Training run #')")
    page.wait_for_function("document.getElementById('run-progress').value >= 100", timeout=240_000)
    page.wait_for_selector("#decision:not([hidden])", timeout=30_000)
    assert "promoted" in page.text_content("#decision-word")
    assert "no active model" in page.text_content("#decision-reason")
    assert page.locator("#loss-chart polyline").count() == 1
    assert page.locator("#pr-chart polyline").count() >= 1
    assert page.locator("#confusion-table").count() == 1
    assert "random initialisation" in page.text_content("#run-note")
    page.screenshot(path=str(artifacts_dir / "training-run.png"), full_page=True)

    page.goto(f"{live_server.url}/training/")
    assert "promoted" in page.text_content("#runs")
    page.close()
    for thread in workers:
        thread.join(timeout=60)
