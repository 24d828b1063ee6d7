"""Surveys, their frames, Web images, and the batches that bring them in.

Knows nothing of torch. A frame that fails ingest never becomes a ``SurveyImage``: its
``BatchItem`` keeps the reason, so a batch of 500 with one corrupt file shows 499 frames and one
error.
"""

from __future__ import annotations

import math
import random

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse


class Survey(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    region = models.CharField(max_length=200, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    # Camera and flight facts. The ground sample distance is entered directly or computed from
    # altitude, focal length and pixel pitch.
    camera = models.CharField(max_length=200, blank=True)
    aircraft = models.CharField(max_length=200, blank=True)
    altitude_m = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(20000)],
        help_text="Flight altitude above the ice, metres.",
    )
    focal_length_mm = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(2000)]
    )
    pixel_pitch_um = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.5), MaxValueValidator(50)],
        help_text="Sensor pixel size, micrometres.",
    )
    gsd_cm = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.1), MaxValueValidator(500)],
        verbose_name="ground sample distance (cm/px)",
        help_text="Leave empty to compute it from altitude, focal length and pixel pitch.",
    )
    animal_length_m = models.FloatField(
        default=2.0, validators=[MinValueValidator(0.05), MaxValueValidator(50)],
        help_text="Expected animal length (2.0 m for polar bears).",
    )
    team = models.ForeignKey(
        "Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="surveys",
        help_text="Restrict the survey to one team of volunteers; empty means everyone.",
    )
    archived = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("survey-detail", args=[self.pk])

    def clean(self) -> None:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The survey cannot end before it starts."})
        if self.gsd_cm is None and self.computed_gsd_cm is None:
            raise ValidationError(
                "Give the ground sample distance, or altitude, focal length and pixel pitch "
                "so it can be computed."
            )

    @property
    def computed_gsd_cm(self) -> float | None:
        """GSD = altitude x pixel pitch / focal length (metres per pixel), in cm."""
        if not (self.altitude_m and self.focal_length_mm and self.pixel_pitch_um):
            return None
        return self.altitude_m * (self.pixel_pitch_um * 1e-6) / (self.focal_length_mm * 1e-3) * 100

    @property
    def effective_gsd_cm(self) -> float | None:
        return self.gsd_cm if self.gsd_cm is not None else self.computed_gsd_cm

    @property
    def animal_length_px(self) -> float | None:
        gsd = self.effective_gsd_cm
        return None if not gsd else self.animal_length_m * 100.0 / gsd

    @property
    def min_tile_overlap_px(self) -> int:
        """Tiles overlap by at least one animal length, so a bear cut by one edge is whole in
        the neighbour."""
        length = self.animal_length_px
        return 0 if length is None else int(math.ceil(length))


class SurveyImage(models.Model):
    """One ingested survey frame. Dimensions are those of the frame as displayed (EXIF
    orientation applied); every position stored elsewhere is in these coordinates."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(max_length=500)
    original_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    orientation = models.PositiveSmallIntegerField(default=1)
    captured_at = models.DateTimeField(null=True, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    altitude_m = models.FloatField(null=True, blank=True)
    camera = models.CharField(max_length=200, blank=True)
    thumbnail = models.FileField(max_length=500, blank=True)
    batch = models.ForeignKey(
        "IngestBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["captured_at", "original_name", "pk"]
        constraints = [
            # A duplicate in the same survey is reported and skipped: the database enforces it.
            models.UniqueConstraint(fields=["survey", "sha256"], name="unique_frame_per_survey"),
        ]
        indexes = [models.Index(fields=["survey", "captured_at"])]

    def __str__(self) -> str:
        return f"{self.survey} / {self.original_name}"

    def get_absolute_url(self) -> str:
        return reverse("image-detail", args=[self.pk])

    @property
    def has_gps(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


class WebImage(models.Model):
    """A Web-sourced photo (the paper's positive examples), with provenance and curation."""

    class Curation(models.TextChoices):
        UNREVIEWED = "unreviewed", "not reviewed"
        USABLE = "usable", "usable"
        UNUSABLE = "unusable", "unusable"

    file = models.FileField(max_length=500)
    original_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, unique=True)
    phash = models.CharField(max_length=32, db_index=True)
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    thumbnail = models.FileField(max_length=500, blank=True)
    source_url = models.URLField(max_length=2000, blank=True)
    source_page = models.URLField(max_length=2000, blank=True)
    licence = models.CharField(max_length=200, blank=True)
    author = models.CharField(max_length=200, blank=True)
    near_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    curation = models.CharField(
        max_length=12, choices=Curation.choices, default=Curation.UNREVIEWED
    )
    batch = models.ForeignKey(
        "IngestBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="web_images"
    )
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "pk"]

    def __str__(self) -> str:
        return self.original_name


class IngestBatch(models.Model):
    """An upload, a server folder, an API batch or a URL list. Its items carry each file's fate."""

    class Target(models.TextChoices):
        SURVEY = "survey", "survey frames"
        WEB = "web", "Web images"

    class Source(models.TextChoices):
        UPLOAD = "upload", "browser upload"
        FOLDER = "folder", "server folder"
        API = "api", "REST API"
        URLS = "urls", "URL list"

    class Status(models.TextChoices):
        PENDING = "pending", "waiting"
        RUNNING = "running", "ingesting"
        DONE = "done", "done"

    target = models.CharField(max_length=10, choices=Target.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    survey = models.ForeignKey(
        Survey, null=True, blank=True, on_delete=models.CASCADE, related_name="batches"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ingest batches"

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.get_source_display()})"

    def get_absolute_url(self) -> str:
        return reverse("batch-detail", args=[self.pk])


class BatchItem(models.Model):
    """One file (or URL) of a batch. ``pending`` until ingest decides; a worker killed mid-way
    leaves it ``pending`` and the retry finishes it."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting"
        INGESTED = "ingested", "ingested"
        DUPLICATE = "duplicate", "duplicate, skipped"
        FAILED = "failed", "failed"
        UNPACKED = "unpacked", "archive unpacked"

    batch = models.ForeignKey(IngestBatch, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=500)
    stored_file = models.CharField(max_length=500, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    source_page = models.URLField(max_length=2000, blank=True)
    licence = models.CharField(max_length=200, blank=True)
    author = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error_code = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    survey_image = models.ForeignKey(
        SurveyImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    web_image = models.ForeignKey(
        WebImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["batch", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


# --- People and queues ---------------------------------------------------------------------------


class Team(models.Model):
    """A group of volunteers; a survey restricted to a team is seen by its members only."""

    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    def __str__(self) -> str:
        return self.name


class QueueKind(models.TextChoices):
    CANDIDATES = "candidates", "candidates"
    UNCERTAIN = "uncertain", "uncertain"
    AUDIT = "audit", "audit"
    WEB = "web", "Web images"
    ADJUDICATION = "adjudication", "adjudication"


def random_key_default() -> float:
    """A uniform key in [0, 1) for the audit queue's random order (a named function so that
    migrations can refer to it)."""
    return random.random()


class LabelItem(models.Model):
    """Something a person is asked about: a survey tile (candidate, uncertain, audit) or a Web
    image. Tile boxes are in frame coordinates. ``model_version_id`` names the model whose
    scores put the item here (labeling knows nothing of the inference app, so it is a plain id).

    Invariants: an item is retired exactly once, with a consensus; every vote is kept.
    """

    class Status(models.TextChoices):
        OPEN = "open", "open"
        ADJUDICATION = "adjudication", "needs a reviewer"
        RETIRED = "retired", "retired"

    class Answer(models.TextChoices):
        BEAR = "bear", "bear"
        NO_BEAR = "no_bear", "no bear"
        UNSURE = "unsure", "unsure"
        USABLE = "usable", "usable"
        UNUSABLE = "unusable", "unusable"

    kind = models.CharField(max_length=12, choices=QueueKind.choices)
    survey = models.ForeignKey(
        Survey, null=True, blank=True, on_delete=models.CASCADE, related_name="label_items"
    )
    image = models.ForeignKey(
        SurveyImage, null=True, blank=True, on_delete=models.CASCADE, related_name="label_items"
    )
    web_image = models.ForeignKey(
        WebImage, null=True, blank=True, on_delete=models.CASCADE, related_name="label_items"
    )
    x0 = models.IntegerField(default=0)
    y0 = models.IntegerField(default=0)
    x1 = models.IntegerField(default=0)
    y1 = models.IntegerField(default=0)
    # Where the model thinks the animal is (merged detection centre), frame coordinates.
    centre_x = models.FloatField(null=True, blank=True)
    centre_y = models.FloatField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    priority = models.FloatField(default=0, help_text="higher is served first")
    sampling_probability = models.FloatField(null=True, blank=True)
    model_version_id = models.BigIntegerField(null=True, blank=True)
    tile_crop = models.FileField(max_length=500, blank=True)
    context_crop = models.FileField(max_length=500, blank=True)
    context_box = models.JSONField(null=True, blank=True, help_text="context crop's frame box")
    votes_needed = models.PositiveSmallIntegerField(default=2)
    votes_count = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    consensus = models.CharField(max_length=10, choices=Answer.choices, blank=True)
    consensus_points = models.JSONField(default=list, blank=True)
    consensus_boxes = models.JSONField(default=list, blank=True)
    consensus_reason = models.CharField(
        max_length=40, blank=True, help_text="why a Web image was judged unusable"
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.CharField(max_length=10, choices=Answer.choices, blank=True)
    gold_points = models.JSONField(default=list, blank=True)
    # A uniform random key fixed at creation: the audit queue is served in this order (from a
    # random starting point per request), an index scan instead of ORDER BY RANDOM().
    random_key = models.FloatField(default=random_key_default)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [
            ("label_items", "Can label items in the volunteer queues"),
            ("adjudicate_items", "Can settle disagreements and mark gold items"),
            ("manage_queues", "Can set up queues, invite codes and see who labelled what"),
        ]
        constraints = [
            # Re-running a job never queues the same tile twice for one model and queue.
            models.UniqueConstraint(
                fields=["image", "kind", "model_version_id", "x0", "y0", "x1", "y1"],
                condition=Q(image__isnull=False),
                name="one_item_per_tile_kind_model",
            ),
            models.UniqueConstraint(
                fields=["web_image"], condition=Q(web_image__isnull=False), name="one_item_per_web_image"
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "status", "-priority"]),
            models.Index(fields=["survey", "kind", "status"]),
            models.Index(fields=["kind", "status", "random_key"], name="labelitem_random_order"),
            models.Index(fields=["is_gold", "kind"], name="labelitem_gold",
                         condition=Q(is_gold=True)),
        ]

    def __str__(self) -> str:
        where = self.image.original_name if self.image_id else (self.web_image or "?")
        return f"{self.kind} item {self.pk} ({where})"

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


class SurveyQueue(models.Model):
    """Per-survey queue settings: which queues are on and how many votes each item needs."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="queues")
    kind = models.CharField(max_length=12, choices=QueueKind.choices)
    enabled = models.BooleanField(default=True)
    votes_needed = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Votes collected before an undecided item goes to a reviewer.",
    )
    agree_votes = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Agreeing votes that retire an item (more than the votes needed: every "
        "item that the quick rule below does not settle goes to a reviewer).",
    )
    no_bear_below = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="One 'no bear' vote retires an item whose model score is below this bound "
        "(empty: off).",
    )
    point_agree_lengths = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.05), MaxValueValidator(5)],
        help_text="Bear points agree when within this many animal lengths of each other.",
    )
    weight_by_accuracy = models.BooleanField(
        default=False,
        help_text="Settle a disagreement without a reviewer when the volunteers' gold accuracy "
        "gives one answer a clear weighted majority.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["survey", "kind"], name="one_queue_setting")]

    def __str__(self) -> str:
        return f"{self.survey} / {self.kind}"


class Lease(models.Model):
    """A person's claim on an item until ``expires_at``; expired leases are released by beat."""

    item = models.ForeignKey(LabelItem, on_delete=models.CASCADE, related_name="leases")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leases")
    # The queue the item was handed out from (a gold item of the audit queue may be handed out
    # in the candidates queue): a page that reloads gets its own leases of that queue back.
    queue = models.CharField(max_length=12, choices=QueueKind.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="one_lease_per_person")]

    def __str__(self) -> str:
        return f"lease of item {self.item_id} by user {self.user_id} until {self.expires_at:%H:%M:%S}"


class Vote(models.Model):
    """One person's answer about one item. Undone votes are kept (``undone_at``) and do not
    count; at most one counting vote per person and item."""

    item = models.ForeignKey(LabelItem, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes")
    answer = models.CharField(max_length=10, choices=LabelItem.Answer.choices)
    points = models.JSONField(default=list, blank=True, help_text="[[x, y], ...] frame coordinates")
    boxes = models.JSONField(default=list, blank=True, help_text="[[x0, y0, x1, y1], ...]")
    unusable_reason = models.CharField(max_length=40, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    is_review = models.BooleanField(default=False, help_text="a reviewer's final answer")
    # An answer to a gold item: judged against the known answer, never part of its consensus.
    is_gold_answer = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "user"], condition=Q(undone_at__isnull=True), name="one_vote_per_person"
            )
        ]
        indexes = [
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["created_at"], name="vote_created"),
        ]

    def __str__(self) -> str:
        return f"{self.answer} on item {self.item_id} by user {self.user_id}"


# --- Volunteers: invitations, progress, skips, site-wide labelling settings ----------------------


class InviteCode(models.Model):
    """A code that lets a person create a volunteer account (open sign-up is a setting). Joining
    with a code adds the person to its team, when it has one.

    Invariant: ``uses`` never exceeds ``max_uses`` (checked and incremented in one UPDATE)."""

    code = models.CharField(max_length=40, unique=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="invite_codes"
    )
    max_uses = models.PositiveIntegerField(default=50)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.code


class VolunteerProfile(models.Model):
    """A person's labelling progress: counts kept with the votes (F() updates in the vote's
    transaction), so dashboards and the gold rate read one row."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="volunteer_profile"
    )
    tutorial_seen_at = models.DateTimeField(null=True, blank=True)
    votes_total = models.PositiveIntegerField(default=0)
    gold_answered = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    last_vote_at = models.DateTimeField(null=True, blank=True)
    joined_with = models.ForeignKey(
        InviteCode, null=True, blank=True, on_delete=models.SET_NULL, related_name="volunteers"
    )

    def __str__(self) -> str:
        return f"profile of {self.user}"

    @property
    def gold_accuracy(self) -> float | None:
        return None if not self.gold_answered else self.gold_correct / self.gold_answered


class Skip(models.Model):
    """A person passed on an item: it is not offered to them again (others still get it)."""

    item = models.ForeignKey(LabelItem, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="one_skip_per_person")]

    def __str__(self) -> str:
        return f"item {self.item_id} skipped by user {self.user_id}"


class LabellingSettings(models.Model):
    """Site-wide labelling switches an admin changes at run time (a single row, pk=1); the
    environment gives the defaults."""

    show_model_score = models.BooleanField(
        default=False,
        help_text="Show volunteers the model's score (off by default: it anchors people).",
    )
    open_signup = models.BooleanField(
        default=False, help_text="Anyone may create a volunteer account without an invite code."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "labelling settings"
        verbose_name_plural = "labelling settings"

    def __str__(self) -> str:
        return "labelling settings"


class UnusableReason(models.TextChoices):
    """Why a Web image cannot become training data (a vote's ``unusable_reason``)."""

    NOT_POLAR_BEAR = "not_polar_bear", "not a polar bear"
    NOT_FROM_ABOVE = "not_from_above", "not seen from above"
    WATERMARK = "watermark", "watermark"
    TOO_SMALL = "too_small", "too small"
