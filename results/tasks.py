from celery import shared_task

from results import services


@shared_task(name="results.refresh_report")
def refresh_report(survey_id: int, version_id: int | None = None, force: bool = False) -> None:
    """Recompute a survey's report snapshot unless a fresh one exists (idempotent, cheap to
    call twice: the second run finds it fresh)."""
    services.report_refresh(survey_id=survey_id, version_id=version_id, force=force)
