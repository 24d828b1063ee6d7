"""Writes of the results app: the per-survey data-change marker and the report snapshots.

The report page and its API serve a stored snapshot (``ReportSnapshot``) instead of running the
report's aggregates, which scan the survey's rows (seconds at 100 000 frames):

- ``survey_data_changed`` bumps the survey's generation (one UPDATE, or an INSERT the first time);
  signal receivers in ``results.signals`` call it after the writer's transaction commits;
- ``report_serve`` returns the snapshot for the page: fresh, or stale with a refresh queued (the
  ``results.refresh_report`` task, once per burst of page views), or computed inline when the
  survey has none yet;
- ``report_refresh`` (the task's body, the "Refresh now" button, ``manage.py refresh_reports``)
  recomputes a snapshot unless a fresh one exists; running it twice changes nothing the second
  time.

A snapshot is fresh while its ``source_marker`` is at least the survey's generation and it is
younger than ``BEARSITE_REPORT_MAX_AGE_S`` (default 15 min): the age bound catches the few writes
that send no signal (``bulk_create`` of uncertain tiles, ``QuerySet.update``), so no figure stays
wrong for longer than that on a page someone looks at.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from labeling.models import Survey
from results import estimate, selectors, snapshot_data
from results.models import ReportSnapshot, SurveyChange
from results.snapshot_data import SnapshotReport

log = logging.getLogger(__name__)


def max_age() -> timedelta:
    return timedelta(seconds=getattr(settings, "BEARSITE_REPORT_MAX_AGE_S", 15 * 60))


def refresh_delay_s() -> float:
    """Countdown of a queued refresh: changes landing in the same few seconds (votes of a busy
    labelling session) are counted by one recompute."""
    return float(getattr(settings, "BEARSITE_REPORT_REFRESH_DELAY_S", 2.0))


def requeue_after() -> timedelta:
    """A refresh queued this long ago and still not done is taken as lost (worker down, broker
    restarted): the next page view queues another."""
    return timedelta(seconds=getattr(settings, "BEARSITE_REPORT_REQUEUE_AFTER_S", 10 * 60))


# --- The data-change marker -------------------------------------------------------------------------


def survey_data_changed(*, survey_id: int, when: datetime | None = None) -> None:
    """Mark the survey's report data as changed: one UPDATE of its marker row (an INSERT the first
    time). O(1) whatever the survey's size; no aggregate."""
    when = when or timezone.now()
    updated = SurveyChange.objects.filter(survey_id=survey_id).update(
        generation=F("generation") + 1, changed_at=when
    )
    if updated:
        return
    try:
        with transaction.atomic():
            SurveyChange.objects.create(survey_id=survey_id, generation=1, changed_at=when)
    except IntegrityError:
        # Created meanwhile by another writer (or the survey is gone): bump that row, if any.
        SurveyChange.objects.filter(survey_id=survey_id).update(
            generation=F("generation") + 1, changed_at=when
        )


def all_surveys_data_changed(*, when: datetime | None = None) -> int:
    """Mark every survey's report data as changed (a model version was promoted, retired, renamed
    or deleted: which version a report shows, and its precision-recall curve, may differ). One
    UPDATE. Surveys without a marker row have no snapshot to make stale (a snapshot write creates
    the row)."""
    return SurveyChange.objects.update(
        generation=F("generation") + 1, changed_at=when or timezone.now()
    )


def survey_generation(*, survey_id: int) -> int:
    return (
        SurveyChange.objects.filter(survey_id=survey_id)
        .values_list("generation", flat=True)
        .first()
        or 0
    )


# --- Snapshots ------------------------------------------------------------------------------------


def snapshot_is_fresh(snapshot: ReportSnapshot, *, generation: int, now: datetime) -> bool:
    return (
        snapshot.source_marker >= generation
        and snapshot.computed_at >= now - max_age()
        and (snapshot.data or {}).get("format") == snapshot_data.FORMAT
    )


@dataclass
class ServedReport:
    """A snapshot ready to render: its figures, when they were computed, and whether a newer
    one is on its way (``updating``) or could not be queued (``queue_error``)."""

    survey: Survey
    figures: SnapshotReport
    snapshot_id: int
    computed_at: datetime
    updating: bool
    queue_error: str = ""


def _served(survey: Survey, snapshot: ReportSnapshot, *, updating: bool, error: str = ""):
    return ServedReport(
        survey=survey,
        figures=snapshot_data.decode(snapshot.data),
        snapshot_id=snapshot.pk,
        computed_at=snapshot.computed_at,
        updating=updating,
        queue_error=error,
    )


def report_serve(
    *, survey: Survey, version_id: int | None = None, method: str = estimate.DEFAULT_METHOD
) -> ServedReport:
    """The report the page shows, from a snapshot.

    One query when a fresh snapshot exists. A stale one is served as it is ("as of"), and a
    refresh is queued (one more UPDATE; at most one queued per snapshot at a time). With no
    snapshot for the survey (or none for an asked-for version that scored it), the figures are
    computed inline once and stored: the only path that runs the aggregates in the request."""
    now = timezone.now()
    snapshot = selectors.report_snapshot_lookup(
        survey_id=survey.pk, version_id=version_id, method=method
    )
    usable = snapshot is not None and (snapshot.data or {}).get("format") == snapshot_data.FORMAT
    if usable and version_id is not None and snapshot.model_version_id != version_id:
        # Only the default snapshot was found: fine when the asked-for version never scored the
        # survey (the report falls back to the default one), not when it did.
        versions = {v["id"] for v in snapshot.data.get("versions", [])}
        usable = version_id not in versions
    if not usable:
        fresh = report_refresh(survey_id=survey.pk, version_id=version_id, force=True)
        return _served(survey, fresh[method], updating=False)
    generation = snapshot.generation or 0
    if snapshot_is_fresh(snapshot, generation=generation, now=now):
        return _served(survey, snapshot, updating=False)
    error = report_refresh_request(snapshot=snapshot, now=now)
    return _served(survey, snapshot, updating=not error, error=error)


def report_refresh_request(*, snapshot: ReportSnapshot, now: datetime | None = None) -> str:
    """Queue ``results.refresh_report`` for a stale snapshot unless a refresh of it is queued
    already (debounce: a conditional UPDATE claims it, so concurrent page views queue one task).
    The task is sent after the request's transaction commits, with a short countdown. Returns an
    error message when the broker refused it (the page says so; nothing runs inline instead)."""
    from results.tasks import refresh_report

    now = now or timezone.now()
    claimed = (
        ReportSnapshot.objects.filter(pk=snapshot.pk)
        .filter(
            Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lt=now - requeue_after())
        )
        .update(refresh_requested_at=now)
    )
    if not claimed:
        return ""
    version_id = None if snapshot.is_default else snapshot.model_version_id
    errors: list[str] = []

    def send() -> None:
        try:
            refresh_report.apply_async(
                args=[snapshot.survey_id],
                kwargs={"version_id": version_id},
                countdown=refresh_delay_s(),
            )
        except Exception as exc:  # the broker is down: say so, and let the next view retry
            log.exception(
                "could not queue results.refresh_report for survey %s", snapshot.survey_id
            )
            ReportSnapshot.objects.filter(pk=snapshot.pk).update(refresh_requested_at=None)
            errors.append(f"{type(exc).__name__}: {exc}")

    transaction.on_commit(send)
    return errors[0] if errors else ""


def report_refresh(
    *, survey_id: int, version_id: int | None = None, force: bool = False
) -> dict[str, ReportSnapshot]:
    """Recompute and store the report snapshots (one per estimate method) of a survey for one
    model version (``None``: the version the page shows by default), unless they are all fresh
    (``force`` recomputes anyway). Returns them by method; ``{}`` when the survey is gone.

    Safe to run twice: the second run finds fresh snapshots and writes nothing. The aggregates
    run outside any transaction; the write holds the survey's marker row lock and never replaces
    a snapshot computed from a newer generation."""
    survey = Survey.objects.filter(pk=survey_id).first()
    if survey is None:
        log.info("report refresh: survey %s no longer exists", survey_id)
        return {}
    # Read the generation before the aggregates: a change committed during the computation
    # makes the new snapshot stale at once, never wrongly fresh.
    generation = survey_generation(survey_id=survey_id)
    started = timezone.now()
    if not force:
        existing = _snapshots_for(survey_id, version_id)
        if len(existing) == len(estimate.METHODS) and all(
            snapshot_is_fresh(s, generation=generation, now=started) for s in existing.values()
        ):
            ReportSnapshot.objects.filter(
                pk__in=[s.pk for s in existing.values()], refresh_requested_at__isnull=False
            ).update(refresh_requested_at=None)
            return existing
    t0 = time.perf_counter()
    report = selectors.survey_report(survey=survey, version_id=version_id, with_frames=False)
    compute_ms = int((time.perf_counter() - t0) * 1000)
    vid = None if report.version is None else report.version.pk
    is_default = vid == snapshot_data.default_version_id(report.versions)
    datas = {m: snapshot_data.encode(report, m) for m in estimate.METHODS}
    out: dict[str, ReportSnapshot] = {}
    with transaction.atomic():
        # The marker row exists from now on, so a later bump (even of every survey) reaches it.
        SurveyChange.objects.select_for_update().get_or_create(survey_id=survey_id)
        current = {
            s.method: s
            for s in ReportSnapshot.objects.filter(survey_id=survey_id, model_version_id=vid)
        }
        if is_default:
            ReportSnapshot.objects.filter(survey_id=survey_id, is_default=True).exclude(
                pk__in=[s.pk for s in current.values()]
            ).update(is_default=False)
        for method, data in datas.items():
            row = current.get(method)
            if row is not None and row.source_marker > generation:
                out[method] = row  # a computation from newer data got there first
                continue
            if row is None:
                row = ReportSnapshot(survey_id=survey_id, model_version_id=vid, method=method)
            row.is_default = is_default
            row.data = data
            row.computed_at = started
            row.compute_ms = compute_ms
            row.source_marker = generation
            row.refresh_requested_at = None
            row.save()
            out[method] = row
    log.info(
        "report snapshot of survey %s, version %s: %d ms (%s)",
        survey_id,
        vid,
        compute_ms,
        "forced" if force else "stale or missing",
    )
    return out


def _snapshots_for(survey_id: int, version_id: int | None) -> dict[str, ReportSnapshot]:
    qs = ReportSnapshot.objects.filter(survey_id=survey_id)
    qs = (
        qs.filter(is_default=True) if version_id is None else qs.filter(model_version_id=version_id)
    )
    return {s.method: s for s in qs}


def report_refresh_survey(*, survey_id: int, force: bool = False) -> int:
    """Refresh the default snapshot of a survey and those of every other version someone looked
    at (they have a snapshot). Returns how many snapshots were written."""
    keys: list[int | None] = [None]
    keys += sorted(
        set(
            ReportSnapshot.objects.filter(survey_id=survey_id, is_default=False)
            .exclude(model_version__isnull=True)
            .values_list("model_version_id", flat=True)
        )
    )
    written = 0
    for key in keys:
        before = {s.pk: s.computed_at for s in _snapshots_for(survey_id, key).values()}
        after = report_refresh(survey_id=survey_id, version_id=key, force=force)
        written += sum(1 for s in after.values() if before.get(s.pk) != s.computed_at)
    return written
