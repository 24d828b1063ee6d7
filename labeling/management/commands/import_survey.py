"""Import a server folder of survey frames: streaming, resumable, skipping what is already in.

Files are visited in a stable order; a file whose relative path is already a frame of the
survey is skipped without being read, and the ingest itself skips exact duplicates by SHA-256,
so a second run after an interruption picks up where the first stopped.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import services
from labeling.models import BatchItem, IngestBatch, Survey, SurveyImage

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def iter_frames(root: Path, include_all: bool):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if include_all or path.suffix.lower() in FRAME_SUFFIXES:
                yield path


class Command(BaseCommand):
    help = "Import survey frames from a folder on this server (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("survey", help="survey name or id")
        parser.add_argument("folder")
        parser.add_argument(
            "--all-files", action="store_true",
            help="also try files without an image suffix (each fails alone if not an image)",
        )
        parser.add_argument(
            "--queue", action="store_true",
            help="hand the files to the cpu workers instead of ingesting in this process",
        )

    def handle(self, *args, survey, folder, all_files, queue, **options):
        root = Path(folder)
        if not root.is_dir():
            raise CommandError(f"{folder} is not a folder")
        lookup = {"pk": int(survey)} if survey.isdigit() else {"name": survey}
        try:
            target = Survey.objects.get(**lookup)
        except Survey.DoesNotExist:
            raise CommandError(f"no survey {survey!r}") from None

        known = set(SurveyImage.objects.filter(survey=target).values_list("original_name", flat=True))
        paths = [p for p in iter_frames(root, all_files)]
        todo = [p for p in paths if str(p.relative_to(root)) not in known]
        self.stdout.write(
            f"{len(paths)} files in {root}; {len(paths) - len(todo)} already in survey "
            f"{target.name!r}; importing {len(todo)}."
        )
        if not todo:
            return
        batch = services.batch_create(
            target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.FOLDER, survey=target,
            note=str(root), enqueue=False,
        )
        for path in tqdm(todo, unit="frame"):
            with path.open("rb") as fh:
                item = services.batch_add_file(
                    batch=batch,
                    incoming=services.IncomingFile(
                        name=str(path.relative_to(root)), fileobj=fh, size=path.stat().st_size
                    ),
                )
            if not queue:
                services.item_ingest(item_id=item.pk)
        if queue:
            services.batch_enqueue(batch=batch)
        else:
            services.batch_finish_if_done(batch_id=batch.pk)
        counts = {s: batch.items.filter(status=s).count() for s in BatchItem.Status.values}
        self.stdout.write(self.style.SUCCESS(
            f"batch {batch.pk}: {counts['ingested']} ingested, {counts['duplicate']} duplicates, "
            f"{counts['failed']} failed" + (f", {counts['pending']} queued" if queue else "")
        ))
        for item in batch.items.filter(status=BatchItem.Status.FAILED):
            self.stdout.write(self.style.WARNING(f"  {item.name}: {item.error}"))
