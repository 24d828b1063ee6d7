"""Training runs through the services: a real short run on tiny tiles, the gate's decisions as
applied to the registry, cancel, one run at a time, the beat trigger, recovery."""

from __future__ import annotations

import json

import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from inference import services as inference_services
from inference.models import InferenceJob, ModelEvent, ModelVersion
from tests.training.runfixtures import (
    TINY_CONFIG,
    bear_item,
    labelled_survey,
    registered,
    tiny_checkpoint,
)
from training import services, tasks
from training.loop.evaluate import EvalMetrics
from training.loop.freeze import FREEZE_LEVELS
from training.loop.train import TrainResult
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def training_settings(settings, tmp_path):
    settings.BEARSITE_TRAINING_DIR = tmp_path / "training"
    settings.BEARSITE_VAL_PERCENT = 50
    settings.BEARSITE_CROPS_PER_BEAR = 2
    settings.BEARSITE_BACKGROUND_PER_FRAME = 2
    settings.BEARSITE_TRAINING_PROGRESS_PER_S = 100.0
    return settings


def test_freeze_levels_offered_match_the_loop():
    assert services.FREEZE_LEVELS == FREEZE_LEVELS


def test_a_short_real_run_registers_promotes_and_starts_reinference(
    django_capture_on_commit_callbacks, admin_user, monkeypatch
):
    survey, frames = labelled_survey(frames=8)
    # The inference job is created for real; its chunks (scoring, tested in tests/inference)
    # are recorded instead of sent.
    chunks = []
    monkeypatch.setattr(inference_services, "_enqueue_chunks", lambda job, ids: chunks.append(ids))
    run = services.run_create(
        trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, created_by=admin_user, enqueue=False
    )
    assert run.status == "queued" and run.percent == 0
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.percent == 100 and run.active_slot is None and run.finished_at
    # Progress and curves were recorded.
    assert run.global_step == run.total_steps > 0
    assert [e["epoch"] for e in run.history] == [1, 2]
    assert all("ap" in e and "recall" in e for e in run.history)
    assert len(run.loss_curve) == run.total_steps
    # The snapshot says exactly what it trained and validated on, and can be read back.
    assert run.snapshot["train_positives"] > 0 and run.snapshot["val_positives"] > 0
    assert run.labels_at_snapshot == 16 and run.snapshot_at
    with default_storage.open(run.snapshot_file.name) as fh:
        doc = json.load(fh)
    assert len(doc["items"]) == run.snapshot["train_tiles"] + run.snapshot["val_tiles"]
    assert {i["split"] for i in doc["items"]} == {"train", "val"}
    # A fresh base without ImageNet weights says so.
    assert run.base_init == "random" and "random initialisation" in run.note
    # The candidate version: registered with its figures, promoted (no active model), and
    # re-inference started with it.
    version = run.produced_version
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.metrics["training_run"] == run.pk
    assert version.metrics["pr_curve"] and version.review_threshold == pytest.approx(
        run.new_metrics["threshold"]
    )
    assert run.decision == "promoted" and "no active model" in run.decision_reason
    assert version.preprocessing["tile_size"] == 32
    job = InferenceJob.objects.get(model_version=version, survey=survey)
    assert job.frames_total == 8 and sorted(chunks[0]) == sorted(f.pk for f in frames)
    # Running the task again changes nothing.
    before = ModelVersion.objects.count(), list(ModelEvent.objects.values_list("pk", flat=True))
    tasks.run(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 1
    assert (
        ModelVersion.objects.count(),
        list(ModelEvent.objects.values_list("pk", flat=True)),
    ) == before


def metrics(fp_per_frame: float, *, recall: float = 1.0, split: str = "split-a") -> EvalMetrics:
    frames, positives = 10, 10
    fp = round(fp_per_frame * frames)
    tp = round(recall * positives)
    return EvalMetrics(
        recall=recall,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        fp_per_frame=fp_per_frame,
        tp=tp,
        fp=fp,
        fn=positives - tp,
        tn=100 - fp,
        threshold=0.5,
        ap=0.8,
        target_recall=0.95,
        frames=frames,
        positives=positives,
        negatives=100,
        split_id=split,
        pr_curve=[[0.9, 1.0, 0.5], [0.5, 0.7, recall]],
    )


GATE_CASES = [
    # (name, new FP/frame, new recall, active FP/frame or None, margin, promoted?)
    ("no active model", 0.9, 1.0, None, 0.05, True),
    ("fewer false positives by the margin", 0.5, 1.0, 1.0, 0.05, True),
    ("fewer, but within the margin", 0.98, 1.0, 1.0, 0.05, False),
    ("a tie", 1.0, 1.0, 1.0, 0.0, False),
    ("more false positives", 1.3, 1.0, 1.0, 0.05, False),
    ("misses the target recall", 0.1, 0.8, 1.0, 0.05, False),
]


@pytest.mark.parametrize(
    "name,new_fp,new_recall,active_fp,margin,promoted", GATE_CASES, ids=[c[0] for c in GATE_CASES]
)
def test_the_gate_decides_through_the_service(
    name,
    new_fp,
    new_recall,
    active_fp,
    margin,
    promoted,
    tmp_path,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    labelled_survey(frames=8)
    active = registered(tmp_path, "active", active=True) if active_fp is not None else None
    new = metrics(new_fp, recall=new_recall)

    def fake_train(config, train_samples, val_samples, *, base, out_path, **kwargs):
        tiny_checkpoint(out_path, seed=7)
        return TrainResult(
            checkpoint_path=out_path,
            sha256="x",
            metrics=new.as_dict(),
            history=[{"epoch": 1, "loss": 0.3}],
            epochs_completed=1,
        )

    monkeypatch.setattr("training.loop.train.train", fake_train)
    if active is not None:
        scored = services._Scored(metrics(active_fp).as_dict(), metrics(active_fp).as_dict())
        monkeypatch.setattr(services, "_evaluate_version", lambda *a, **k: scored)
    reinferred = []
    monkeypatch.setattr(
        inference_services,
        "jobs_for_unscored_surveys",
        lambda *, version_id, user=None: reinferred.append(version_id),
    )

    run = services.run_create(
        trigger=TrainingRun.Trigger.ADMIN,
        config=TINY_CONFIG,
        margin=margin,
        base_version=active,
        enqueue=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    version = run.produced_version
    assert run.status == "succeeded"
    assert version is not None and version.metrics["training_run"] == run.pk
    assert run.decision == ("promoted" if promoted else "rejected")
    assert run.decision_figures["new_fp_per_frame"] == new_fp
    events = list(ModelEvent.objects.filter(version=version).values_list("action", "reason"))
    if promoted:
        assert version.status == ModelVersion.Status.ACTIVE
        assert reinferred == [version.pk]
        assert ("promote", f"training run #{run.pk}: {run.decision_reason}") in events
        if active is not None:
            active.refresh_from_db()
            assert active.status == ModelVersion.Status.RETIRED
    else:
        assert version.status == ModelVersion.Status.REJECTED
        assert reinferred == []
        assert ("reject", f"training run #{run.pk}: {run.decision_reason}") in events
        active.refresh_from_db()
        assert active.status == ModelVersion.Status.ACTIVE
    if active is not None:
        assert run.compared_version == active
        assert run.active_metrics["fp_per_frame"] == active_fp
        assert run.decision_figures["active_fp_per_frame"] == active_fp


def test_an_admin_can_promote_a_rejected_version_and_roll_back(tmp_path):
    old = registered(tmp_path, "old", active=True)
    new = registered(tmp_path, "new")
    inference_services.model_reject(version=new, reason="gate")
    inference_services.model_promote(
        version=new, reason="admin overrides the gate", start_inference=False
    )
    new.refresh_from_db(), old.refresh_from_db()
    assert (new.status, old.status) == ("active", "retired")
    inference_services.model_rollback(reason="back")
    new.refresh_from_db(), old.refresh_from_db()
    assert (new.status, old.status) == ("retired", "active")
    assert list(ModelEvent.objects.filter(version=old).values_list("action", flat=True))[:1] == [
        "rollback"
    ]


def test_cancel_a_queued_run_frees_the_slot_and_the_task_does_nothing():
    run = services.run_create(trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, enqueue=False)
    services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.active_slot is None
    tasks.run(run.pk)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.attempts == 0 and run.produced_version is None
    with pytest.raises(services.IllegalTransition):
        services.run_cancel(run=run)
    services.run_create(trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, enqueue=False)


def test_cancel_while_training_stops_the_loop_and_keeps_no_model(monkeypatch):
    labelled_survey(frames=8)
    run = services.run_create(
        trigger=TrainingRun.Trigger.ADMIN, config={**TINY_CONFIG, "epochs": 3}, enqueue=False
    )
    real = services._ProgressWriter.__call__

    def progress_then_cancel(self, p):
        real(self, p)
        if p.phase == "train" and p.global_step == 2:
            services.run_cancel(run=TrainingRun.objects.get(pk=self.run_id))

    monkeypatch.setattr(services._ProgressWriter, "__call__", progress_then_cancel)
    monkeypatch.setattr(
        services._CancelPoll,
        "__call__",
        lambda self: TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists(),
    )
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.active_slot is None
    assert run.global_step == 2 < run.total_steps
    assert run.produced_version is None and ModelVersion.objects.count() == 0
    assert any("cancel requested" in e["message"] for e in run.log)


def test_never_two_runs_at_once():
    first = services.run_create(
        trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, enqueue=False
    )
    with pytest.raises(services.RunBusy, match=f"#{first.pk}"):
        services.run_create(trigger=TrainingRun.Trigger.API, config=TINY_CONFIG, enqueue=False)
    # The database refuses it too, whatever the code path.
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(trigger="admin", config=TINY_CONFIG)
    services.run_start(first.pk)
    services.run_fail(first.pk, error="boom")
    services.run_create(trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, enqueue=False)


def test_illegal_moves_are_refused():
    run = services.run_create(trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, enqueue=False)
    with pytest.raises(services.IllegalTransition):
        services.run_succeed(run.pk)  # queued -> succeeded skips running
    services.run_start(run.pk)
    services.run_succeed(run.pk)
    for move in (
        lambda: services.run_start(run.pk),
        lambda: services.run_fail(run.pk, error="x"),
        lambda: services.run_mark_cancelled(run.pk),
    ):
        with pytest.raises(services.IllegalTransition):
            move()


def test_bad_settings_are_refused_before_queueing():
    with pytest.raises(ValueError, match="min_positives"):
        services.run_create(
            trigger="admin", config={**TINY_CONFIG, "min_positives": 8}, enqueue=False
        )
    assert not TrainingRun.objects.exists()


def test_a_run_without_a_validation_bear_fails_with_what_to_label():
    survey, frames = labelled_survey(frames=8)
    from training.dataset import VAL, frame_split

    for f in frames:
        if frame_split(f.sha256) == VAL:
            f.label_items.filter(consensus="bear").delete()
    run = services.run_create(trigger=TrainingRun.Trigger.ADMIN, config=TINY_CONFIG, enqueue=False)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "label more bears" in run.error
    assert run.snapshot_at is not None  # the beat counts new labels from here


def test_beat_queues_a_run_at_k_new_labels_and_waits_while_one_runs(settings, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "_send", sent.append)
    settings.BEARSITE_RETRAIN_MIN_NEW_LABELS = 3
    survey, frames = labelled_survey(frames=8)  # 16 labels, no run yet
    first = services.retrain_if_due()
    assert first is not None and first.trigger == "beat"
    # While it is queued or running, a due run waits: the task does nothing, twice.
    tasks.maybe_retrain()
    tasks.maybe_retrain()
    assert TrainingRun.objects.count() == 1
    # It takes its snapshot; then only labels reached after it count.
    services.run_start(first.pk)
    TrainingRun.objects.filter(pk=first.pk).update(
        snapshot_at=timezone.now(), labels_at_snapshot=16
    )
    services.run_fail(first.pk, error="stopped for the test")
    assert services.retrain_if_due() is None
    bear_item(frames[0], 200, 30)
    bear_item(frames[1], 200, 30)
    assert services.retrain_if_due() is None  # 2 < K
    bear_item(frames[2], 200, 30)
    second = services.retrain_if_due()  # K = 3 reached
    assert second is not None and "3 new consensus labels" in second.note
    assert TrainingRun.objects.count() == 2


def test_beat_lock_holds_when_two_ticks_race(settings, monkeypatch):
    """Two beat ticks that both saw no unfinished run: the database lets one queue a run."""
    monkeypatch.setattr(services, "_send", lambda run_id: None)
    settings.BEARSITE_RETRAIN_MIN_NEW_LABELS = 1
    labelled_survey(frames=8)
    real_filter = TrainingRun.objects.filter
    # Make the "is one running?" check blind, as if both ticks read before either wrote.
    monkeypatch.setattr(
        TrainingRun.objects,
        "filter",
        lambda *a, **k: TrainingRun.objects.none() if k.get("status__in") else real_filter(*a, **k),
    )
    runs = [services.retrain_if_due(), services.retrain_if_due()]
    assert sum(r is not None for r in runs) == 1
    assert TrainingRun.objects.count() == 1


def test_worker_start_resends_unfinished_runs(monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(services, "_send", sent.append)
    queued = services.run_create(trigger="admin", config=TINY_CONFIG, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.runs_requeue_unfinished() == 1
    assert sent == [queued.pk]
    services.run_start(queued.pk)
    TrainingRun.objects.filter(pk=queued.pk).update(cancel_requested=True)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.runs_requeue_unfinished() == 0
    queued.refresh_from_db()
    assert queued.status == "cancelled" and sent == []
