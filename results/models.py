"""Report snapshots: the survey report's figures computed once and served many times.

The report's figures come from SQL aggregates that each scan the survey's rows (seconds for a
survey of 100 000 frames), so the page renders from a stored snapshot instead. Freshness is a
per-survey counter, not a comparison of timestamps:

- ``SurveyChange.generation`` goes up by one whenever something the report counts changes
  (signal receivers in ``results.signals``, one UPDATE each, after the writer's commit);
- a snapshot records the generation it read *before* it ran its aggregates
  (``ReportSnapshot.source_marker``), so it is fresh while ``source_marker >= generation``.
  A change that commits while a snapshot is being computed leaves it stale, never wrongly fresh.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from inference.models import ModelVersion
from labeling.models import Survey


class SurveyChange(models.Model):
    """When the data behind a survey's report last changed. One row per survey, created by the
    first change or the first snapshot; bumped with a single UPDATE (see ``results.services``)."""

    survey = models.OneToOneField(
        Survey, primary_key=True, on_delete=models.CASCADE, related_name="report_change"
    )
    generation = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"survey {self.survey_id} data generation {self.generation}"


class ReportSnapshot(models.Model):
    """Everything the report page and its JSON API show for one survey, model version and
    estimate method, except the paginated frame table (read live, one indexed page at a time).

    ``model_version`` is the version the figures are for (``None`` while no model has scored the
    survey). ``is_default`` marks the snapshot the page shows when no version is asked for (at most
    one per survey and method). One row per (survey, version, method), overwritten in place;
    writes hold the survey's ``SurveyChange`` row lock, and never replace a snapshot computed
    from a newer generation. ``refresh_requested_at``: when a page last queued a refresh of it
    (cleared when it is rewritten), so a burst of page views queues one task."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="report_snapshots")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    method = models.CharField(max_length=20)
    is_default = models.BooleanField(default=False)
    data = models.JSONField()
    computed_at = models.DateTimeField()
    compute_ms = models.PositiveIntegerField(default=0)
    source_marker = models.BigIntegerField(
        help_text="the survey's data generation read before the figures were computed"
    )
    refresh_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "model_version", "method"],
                condition=Q(model_version__isnull=False),
                name="one_snapshot_per_version_method",
            ),
            models.UniqueConstraint(
                fields=["survey", "method"],
                condition=Q(model_version__isnull=True),
                name="one_unscored_snapshot_per_method",
            ),
            models.UniqueConstraint(
                fields=["survey", "method"],
                condition=Q(is_default=True),
                name="one_default_snapshot_per_method",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"report of survey {self.survey_id}, version {self.model_version_id}, {self.method}, "
            f"as of {self.computed_at:%Y-%m-%d %H:%M:%S}"
        )
