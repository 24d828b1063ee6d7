"""The model registry, inference jobs and per-frame score grids.

A frame's scores are one compact float16 grid per model version (``FrameScore``), never one row
per tile: 100 000 frames x 500 tiles would be 50 million rows. Rows exist only for tiles that
enter a queue (``labeling.LabelItem``).
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from labeling.models import Survey, SurveyImage


class ModelVersion(models.Model):
    """An append-only record of one trained network. Exactly one is ``active`` at a time (a
    partial unique constraint); promote and roll back are services that write a ModelEvent."""

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "candidate"
        ACTIVE = "active", "active"
        REJECTED = "rejected", "rejected"
        RETIRED = "retired", "retired"

    class Init(models.TextChoices):
        IMAGENET = "imagenet", "ImageNet weights + new head"
        RANDOM = "random", "random initialisation"
        FINETUNED = "finetuned", "fine-tuned"
        EXTERNAL = "external", "registered checkpoint"

    name = models.CharField(max_length=200)
    arch = models.CharField(max_length=40, default="resnet50")
    checkpoint = models.FileField(max_length=500)
    sha256 = models.CharField(max_length=64)
    class_names = models.JSONField(default=list)
    preprocessing = models.JSONField(default=dict)
    init = models.CharField(max_length=12, choices=Init.choices)
    review_threshold = models.FloatField(default=0.5)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    notes = models.TextField(blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_model"
            ),
            models.CheckConstraint(
                condition=Q(review_threshold__gte=0) & Q(review_threshold__lte=1),
                name="review_threshold_is_probability",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk}, {self.status})"

    def get_absolute_url(self) -> str:
        return reverse("model-detail", args=[self.pk])


class ModelEvent(models.Model):
    """Audit record of every registry change: who did what to which version, and why."""

    class Action(models.TextChoices):
        REGISTER = "register", "registered"
        PROMOTE = "promote", "promoted"
        ROLLBACK = "rollback", "rolled back"
        REJECT = "reject", "rejected"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=10, choices=Action.choices)
    previous_active = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"model #{self.version_id} {self.get_action_display()}"


class InferenceJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "finished"
        FAILED = "failed", "finished with failures"
        CANCELLED = "cancelled", "cancelled"

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="inference_jobs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    images = models.ManyToManyField(SurveyImage, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    frames_total = models.PositiveIntegerField(default=0)
    frames_done = models.PositiveIntegerField(default=0)
    frames_failed = models.PositiveIntegerField(default=0)
    tiles_scored = models.BigIntegerField(default=0)
    compute_seconds = models.FloatField(default=0)
    tiles_per_s = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=40, blank=True)
    precision = models.CharField(max_length=10, blank=True)
    chunk_size = models.PositiveIntegerField(default=8)
    # Queue filling parameters, recorded so the audit sample can be reproduced and weighted.
    review_threshold = models.FloatField()
    audit_rate = models.FloatField(default=0.002)
    uncertain_count = models.PositiveIntegerField(
        default=50, help_text="tiles nearest the decision boundary queued for the survey"
    )
    uncertain_done = models.BooleanField(default=False)
    seed = models.BigIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"inference job {self.pk} ({self.survey}, model {self.model_version_id})"

    def get_absolute_url(self) -> str:
        return reverse("job-detail", args=[self.pk])

    @property
    def percent(self) -> int:
        if not self.frames_total:
            return 100 if self.status in (self.Status.SUCCEEDED, self.Status.FAILED) else 0
        return round(100 * (self.frames_done + self.frames_failed) / self.frames_total)

    @property
    def eta_seconds(self) -> float | None:
        remaining = self.frames_total - self.frames_done - self.frames_failed
        if not self.frames_done or remaining <= 0 or not self.compute_seconds:
            return None
        return remaining * self.compute_seconds / self.frames_done

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)


class FrameScore(models.Model):
    """P(bear) per tile of one frame by one model version: a float16 grid of rows x cols, with
    the tile origins. Unique per (image, version): a frame is never scored twice by one model."""

    image = models.ForeignKey(SurveyImage, on_delete=models.CASCADE, related_name="scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(
        InferenceJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores"
    )
    tile = models.PositiveSmallIntegerField(default=224)
    rows = models.PositiveIntegerField()
    cols = models.PositiveIntegerField()
    ys = models.JSONField()
    xs = models.JSONField()
    grid = models.BinaryField()
    max_score = models.FloatField()
    n_candidates = models.PositiveIntegerField(default=0)
    n_tiles_above = models.PositiveIntegerField(default=0)
    scored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="one_score_per_version")
        ]
        indexes = [models.Index(fields=["model_version", "max_score"])]

    def __str__(self) -> str:
        return f"scores of frame #{self.image_id} by model #{self.model_version_id}"

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.grid), dtype=np.float16).reshape(self.rows, self.cols)


class FrameError(models.Model):
    """A frame that could not be scored in a job, with the reason; retry removes it."""

    job = models.ForeignKey(InferenceJob, on_delete=models.CASCADE, related_name="frame_errors")
    image = models.ForeignKey(SurveyImage, on_delete=models.CASCADE, related_name="+")
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "image"], name="one_error_per_frame")]

    def __str__(self) -> str:
        return f"frame #{self.image_id} failed in job #{self.job_id}: {self.message[:80]}"
