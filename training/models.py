"""Training runs: what was trained, on what, how it went, and what was decided.

A ``TrainingRun`` row is the job record a page polls and the audit trail of one fine-tuning:

- ``config`` is the loop's ``TrainConfig.as_dict()``; ``dataset`` says where the tiles come
  from (consensus labels, or the demo's ground truth).
- ``snapshot`` summarises exactly which tiles were trained and validated on (counts, split,
  fingerprints); the full item list is the ``snapshot_file`` in storage, from which the same
  tiles can be cut again (a resumed run does exactly that).
- The progress fields are written by the worker at most a few times a second.
- ``new_metrics`` and ``active_metrics`` are the two models' figures on the same validation
  split; ``decision*`` is the promotion gate's verdict with the figures that decided it.

Invariants (enforced by the database, not only by the services):
- At most one run is queued or running at a time: ``active_slot`` is 1 exactly while the run is
  unfinished and NULL afterwards, and it is unique (NULLs never collide).
- Status moves only queued -> running -> succeeded/failed/cancelled (or queued -> cancelled /
  failed); ``training.services`` has one function per move and refuses the others.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

UNFINISHED = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "finished"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    class Trigger(models.TextChoices):
        ADMIN = "admin", "launched by an admin"
        BEAT = "beat", "enough new labels (scheduled)"
        DEMO = "demo", "demo model (make run)"
        API = "api", "REST API"

    class Decision(models.TextChoices):
        NONE = "", "not decided"
        PROMOTED = "promoted", "promoted"
        REJECTED = "rejected", "rejected"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.ADMIN)
    # 1 while queued or running, NULL once finished: the unique constraint below is the lock
    # that keeps two runs from training at once (a beat tick racing an admin's click included).
    active_slot = models.PositiveSmallIntegerField(null=True, blank=True, default=1, editable=False)
    # The model fine-tuned from; NULL = a fresh ResNet-50 (ImageNet weights when they are on
    # disk, random initialisation otherwise; ``base_init`` records which).
    base_version = models.ForeignKey(
        "inference.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
    )
    base_init = models.CharField(max_length=12, blank=True)
    produced_version = models.OneToOneField(
        "inference.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="produced_by_run",
    )
    # The active model at evaluation time: the one the candidate was compared with.
    compared_version = models.ForeignKey(
        "inference.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    config = models.JSONField(default=dict)
    dataset = models.JSONField(
        default=dict, help_text='{"kind": "labels"} or {"kind": "demo", ...}'
    )
    target_recall = models.FloatField(default=0.95)
    margin = models.FloatField(default=0.05)

    # --- What it trained on ---
    snapshot = models.JSONField(default=dict, blank=True)
    snapshot_file = models.FileField(max_length=500, blank=True)
    snapshot_at = models.DateTimeField(null=True, blank=True)
    labels_at_snapshot = models.PositiveIntegerField(default=0)

    # --- Live progress (written by the worker, throttled) ---
    phase = models.CharField(max_length=60, blank=True)
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    steps_per_epoch = models.PositiveIntegerField(default=0)
    global_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    lr = models.FloatField(null=True, blank=True)
    images_per_s = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="one entry per epoch")
    loss_curve = models.JSONField(default=list, blank=True, help_text="[[global_step, loss], ...]")
    log = models.JSONField(default=list, blank=True, help_text="[{at, message}, ...]")
    attempts = models.PositiveIntegerField(default=0)
    resumed_from_epoch = models.PositiveIntegerField(default=0)

    # --- Evaluation and decision ---
    new_metrics = models.JSONField(default=dict, blank=True)
    active_metrics = models.JSONField(default=dict, blank=True)
    # Figures of the demo model against the demo survey's ground truth (held-out frames).
    heldout_eval = models.JSONField(default=dict, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    decision_reason = models.TextField(blank=True)
    decision_figures = models.JSONField(default=dict, blank=True)

    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    note = models.TextField(
        blank=True, help_text="shown on the run page (e.g. random initialisation)"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["active_slot"], name="one_unfinished_training_run"),
            models.CheckConstraint(
                condition=(Q(status__in=UNFINISHED) & Q(active_slot=1))
                | (Q(status__in=FINISHED) & Q(active_slot__isnull=True)),
                name="training_slot_held_while_unfinished",
            ),
        ]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("training-run-detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.total_steps:
            return 0
        # Training is most of the work; 99 % at most until the evaluation and decision are in.
        return min(99, int(100 * self.global_step / self.total_steps))
