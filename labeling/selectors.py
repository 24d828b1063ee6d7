"""Reads for surveys, batches and images."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from labeling.models import BatchItem, IngestBatch, Survey, SurveyImage


def progress_from_counts(*, batch: IngestBatch, counts: dict[str, int]) -> dict:
    """A batch's progress from its item counts per status."""
    # An unpacked archive is not a file of the batch: its entries are.
    total = sum(n for s, n in counts.items() if s != BatchItem.Status.UNPACKED)
    pending = counts.get(BatchItem.Status.PENDING, 0)
    return {
        "id": batch.pk,
        "status": batch.status,
        "total": total,
        "done": total - pending,
        "pending": pending,
        "ingested": counts.get(BatchItem.Status.INGESTED, 0),
        "duplicates": counts.get(BatchItem.Status.DUPLICATE, 0),
        "failed": counts.get(BatchItem.Status.FAILED, 0),
        "archives": counts.get(BatchItem.Status.UNPACKED, 0),
        "percent": 100 if total == 0 else round(100 * (total - pending) / total),
    }


def batch_progress(*, batch: IngestBatch) -> dict:
    """Counts per item status in one query, and the failures with their reasons."""
    counts = dict(
        batch.items.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    errors = list(
        batch.items.filter(status__in=[BatchItem.Status.FAILED, BatchItem.Status.DUPLICATE])
        .order_by("pk")
        .values("name", "status", "error_code", "error")[:500]
    )
    return progress_from_counts(batch=batch, counts=counts) | {"errors": errors}


def survey_list(*, include_archived: bool = False) -> QuerySet[Survey]:
    qs = Survey.objects.annotate(
        n_images=Count("images", distinct=True),
        n_gps=Count("images", filter=Q(images__latitude__isnull=False), distinct=True),
    )
    return qs if include_archived else qs.filter(archived=False)


def survey_images(*, survey: Survey) -> QuerySet[SurveyImage]:
    return survey.images.only(
        "pk", "original_name", "thumbnail", "width", "height", "captured_at", "latitude",
        "longitude", "survey_id",
    )


def surveys_visible_to(*, user, include_archived: bool = False) -> QuerySet[Survey]:
    """Surveys a person may see in pages and the API. Staff see every survey; everyone else
    surveys without a team or of one of their teams (others answer 404, never 403, so their
    existence does not leak)."""
    from labeling.queues.roles import sees_every_survey
    from labeling.queues.selectors import visible_surveys

    if sees_every_survey(user):
        qs = Survey.objects.all()
        return qs if include_archived else qs.filter(archived=False)
    return visible_surveys(user=user)


def images_visible_to(*, user) -> QuerySet[SurveyImage]:
    return SurveyImage.objects.filter(survey__in=surveys_visible_to(user=user, include_archived=True).values("pk"))
