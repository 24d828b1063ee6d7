"""The training pages and REST API: launch, progress, metrics, cancel, and who may use them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.training.runfixtures import TINY_CONFIG, registered
from training import services
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def volunteer_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("vol", password="pw-vol-12345"))
    return client


def test_runs_page_offers_the_launch_form_with_defaults(admin_client, settings):
    settings.BEARSITE_RETRAIN_MIN_NEW_LABELS = 123
    page = admin_client.get(reverse("training-run-list"))
    assert page.status_code == 200
    html = page.content.decode()
    for field in (
        "id_base",
        "id_epochs",
        "id_lr",
        "id_batch_size",
        "id_min_positives",
        "id_freeze",
        "id_target_recall",
    ):
        assert f'id="{field}"' in html
    assert 'value="0.95"' in html  # target recall default
    assert "a run is queued automatically at <strong>123</strong>" in html


def test_launch_from_the_page_queues_a_run_with_the_form_settings(
    admin_client, admin_user, tmp_path
):
    active = registered(tmp_path, "active", active=True)
    response = admin_client.post(
        reverse("training-run-list"),
        {
            "base": "active",
            "epochs": 3,
            "lr": 0.01,
            "batch_size": 32,
            "min_positives": 4,
            "freeze": "layer1",
            "target_recall": 0.9,
        },
    )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert (run.status, run.trigger, run.base_version, run.created_by) == (
        "queued",
        "admin",
        active,
        admin_user,
    )
    assert {
        k: run.config[k] for k in ("epochs", "lr", "batch_size", "min_positives", "freeze")
    } == {"epochs": 3, "lr": 0.01, "batch_size": 32, "min_positives": 4, "freeze": "layer1"}
    assert run.target_recall == 0.9
    # A second launch while it waits is refused with the reason.
    response = admin_client.post(
        reverse("training-run-list"),
        {
            "base": "fresh",
            "epochs": 3,
            "lr": 0.01,
            "batch_size": 32,
            "min_positives": 4,
            "freeze": "none",
            "target_recall": 0.9,
        },
        follow=True,
    )
    assert f"training run #{run.pk} is queued" in response.content.decode()
    assert TrainingRun.objects.count() == 1


def test_launch_form_refuses_impossible_settings(admin_client):
    response = admin_client.post(
        reverse("training-run-list"),
        {
            "base": "fresh",
            "epochs": 3,
            "lr": 0.01,
            "batch_size": 8,
            "min_positives": 8,
            "freeze": "none",
            "target_recall": 0.9,
        },
    )
    assert response.status_code == 200
    assert "min_positives must be from 1 to the batch size minus one" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_run_page_status_json_and_cancel(admin_client):
    run = services.run_create(trigger="admin", config=TINY_CONFIG, enqueue=False)
    page = admin_client.get(run.get_absolute_url())
    assert page.status_code == 200 and "waiting for the GPU worker" in page.content.decode()
    status = admin_client.get(reverse("training-run-status", args=[run.pk])).json()
    assert status["status"] == "queued" and status["percent"] == 0 and status["finished"] is False
    admin_client.post(reverse("training-run-cancel", args=[run.pk]))
    status = admin_client.get(reverse("training-run-status", args=[run.pk])).json()
    assert status["status"] == "cancelled" and status["finished"] and "metrics" in status


def test_pages_are_for_staff_only(volunteer_client):
    run = services.run_create(trigger="admin", config=TINY_CONFIG, enqueue=False)
    for url in (
        reverse("training-run-list"),
        run.get_absolute_url(),
        reverse("training-run-status", args=[run.pk]),
    ):
        assert volunteer_client.get(url).status_code == 302  # to the login page
    volunteer_client.post(reverse("training-run-cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == "queued"


def test_api_launch_progress_metrics_cancel(admin_client):
    response = admin_client.post(
        "/api/training/runs/",
        {"fresh": True, "epochs": 2, "batch_size": 16, "min_positives": 4},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    run = TrainingRun.objects.get(pk=run_id)
    assert run.trigger == "api" and run.base_version is None and run.config["epochs"] == 2
    busy = admin_client.post("/api/training/runs/", {}, content_type="application/json")
    assert busy.status_code == 409 and "one run at a time" in busy.json()["detail"]
    assert admin_client.get(f"/api/training/runs/{run_id}/progress/").json()["status"] == "queued"
    metrics = admin_client.get(f"/api/training/runs/{run_id}/metrics/").json()
    assert metrics["target_recall"] == 0.95 and metrics["decision"] == ""
    listing = admin_client.get("/api/training/runs/?status=queued").json()
    assert [r["id"] for r in listing["results"]] == [run_id]
    assert admin_client.post(f"/api/training/runs/{run_id}/cancel/").json()["status"] == "cancelled"
    assert admin_client.post(f"/api/training/runs/{run_id}/cancel/").status_code == 409


def test_api_refuses_bad_settings(admin_client):
    bad = admin_client.post(
        "/api/training/runs/",
        {"batch_size": 4, "min_positives": 4},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "min_positives" in bad.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_api_is_for_staff_only(volunteer_client):
    assert volunteer_client.get("/api/training/runs/").status_code == 403
    assert (
        volunteer_client.post(
            "/api/training/runs/", {}, content_type="application/json"
        ).status_code
        == 403
    )
    assert not TrainingRun.objects.exists()


def test_web_process_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bearsite.settings');"
        "import django; django.setup(); import bearsite.urls, training.views, training.api, "
        "training.admin, training.tasks; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
