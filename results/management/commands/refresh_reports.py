"""Recompute the survey reports' snapshots (all surveys, or one), so the next page view is fast.

python manage.py refresh_reports               # every survey: stale or missing snapshots
python manage.py refresh_reports --survey 3    # one survey
python manage.py refresh_reports --force       # recompute even fresh ones
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Survey
from results import services


class Command(BaseCommand):
    help = "Recompute the survey report snapshots that are stale or missing (--force: all)."

    def add_arguments(self, parser):
        parser.add_argument("--survey", type=int, help="only this survey (id)")
        parser.add_argument(
            "--force", action="store_true", help="recompute even snapshots that are fresh"
        )

    def handle(self, *args, survey=None, force=False, **options):
        surveys = Survey.objects.order_by("pk")
        if survey is not None:
            surveys = surveys.filter(pk=survey)
            if not surveys.exists():
                raise CommandError(f"no survey with id {survey}")
        total = 0
        for s in surveys.only("pk", "name"):
            t0 = time.perf_counter()
            written = services.report_refresh_survey(survey_id=s.pk, force=force)
            total += written
            what = (
                f"{written} snapshot{'s' if written != 1 else ''} written" if written else "fresh"
            )
            self.stdout.write(
                f"survey {s.pk} ({s.name}): {what} in {time.perf_counter() - t0:.2f} s"
            )
        self.stdout.write(self.style.SUCCESS(f"{total} report snapshots written"))
