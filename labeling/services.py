"""Writes for surveys, batches and images (HackSoft style: keyword-only, one function per action).

Locking and idempotency: every ingest step starts from a ``BatchItem`` id, re-reads the row in a
transaction and does nothing unless it is still ``pending``; the expensive work (reading and
decoding the file) happens outside the transaction, and the outcome is recorded in one
transaction, so a worker killed at any point leaves the item ``pending`` and a redelivery
finishes it. The database enforces one frame per (survey, SHA-256).
"""

from __future__ import annotations

import csv
import io
import logging
import posixpath
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import IO
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from labeling.ingest.fetch import FetchError, fetch_image
from labeling.ingest.probe import IngestError, hamming, probe_image
from labeling.models import (
    BatchItem,
    IngestBatch,
    LabelItem,
    Lease,
    QueueKind,
    Survey,
    SurveyImage,
    WebImage,
)

log = logging.getLogger(__name__)

INGEST_CHUNK = 25
ARCHIVE_SUFFIXES = (".zip",)
# Archive entries that are never frames: macOS resource forks, hidden files, folders.
_ARCHIVE_JUNK_PREFIXES = ("__MACOSX/", ".")


@dataclass(frozen=True)
class IncomingFile:
    name: str
    fileobj: IO[bytes]
    size: int | None = None
    # Provenance of a Web image (from a CSV beside an upload, or the demo data).
    source_url: str = ""
    source_page: str = ""
    licence: str = ""
    author: str = ""


# --- Surveys ------------------------------------------------------------------------------------


def survey_create(*, created_by=None, **fields) -> Survey:
    survey = Survey(created_by=created_by, **fields)
    survey.full_clean()
    survey.save()
    return survey


def survey_archive(*, survey: Survey) -> Survey:
    """Archive a survey: it leaves the volunteers' lists and queues (its items are no longer
    served; the leases held on them are released at once). Its frames, votes and results are
    kept. Archiving an archived survey changes nothing."""
    with transaction.atomic():
        Survey.objects.filter(pk=survey.pk).update(archived=True)
        Lease.objects.filter(item__survey=survey).delete()
    survey.archived = True
    return survey


def survey_unarchive(*, survey: Survey) -> Survey:
    """Bring an archived survey back: its open items are served again."""
    Survey.objects.filter(pk=survey.pk).update(archived=False)
    survey.archived = False
    return survey


# --- Batches ------------------------------------------------------------------------------------


def _batch_folder(batch: IngestBatch) -> str:
    if batch.target == IngestBatch.Target.SURVEY:
        return f"surveys/{batch.survey_id}/batches/{batch.pk}"
    return f"web/batches/{batch.pk}"


def _safe_name(name: str) -> str:
    base = posixpath.basename(name.replace("\\", "/")) or "file"
    return get_valid_filename(base)[:180] or "file"


def batch_create(
    *,
    target: str,
    source: str,
    files: Iterable[IncomingFile] = (),
    survey: Survey | None = None,
    created_by=None,
    note: str = "",
    enqueue: bool = True,
) -> IngestBatch:
    """Store the files of a new batch and queue their ingest after commit.

    Files over the size limit are recorded as failed items at once, with the limit in the
    reason; every other file is stored untouched and judged by the ingest worker.
    """
    if target == IngestBatch.Target.SURVEY and survey is None:
        raise ValueError("a survey batch needs a survey")
    with transaction.atomic():
        batch = IngestBatch.objects.create(
            target=target, source=source, survey=survey, created_by=created_by, note=note
        )
    folder = _batch_folder(batch)
    BatchItem.objects.bulk_create([_store_incoming(batch, folder, f) for f in files])
    if enqueue:
        batch_enqueue(batch=batch)
    return batch


def _store_incoming(batch: IngestBatch, folder: str, incoming: IncomingFile) -> BatchItem:
    is_archive = incoming.name.lower().endswith(ARCHIVE_SUFFIXES)
    limit = settings.BEARSITE_MAX_ZIP_BYTES if is_archive else settings.BEARSITE_MAX_UPLOAD_FILE_BYTES
    item = BatchItem(
        batch=batch,
        name=incoming.name[:500],
        # For an upload the URL is provenance only: a stored file is never fetched again.
        url=incoming.source_url[:2000],
        source_page=incoming.source_page[:2000],
        licence=incoming.licence[:200],
        author=incoming.author[:200],
    )
    if incoming.size is not None and incoming.size > limit:
        item.status = BatchItem.Status.FAILED
        item.error_code = "file_too_large"
        item.error = (
            f"The file is {incoming.size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB "
            f"per {'archive' if is_archive else 'file'} (setting "
            f"{'BEARSITE_MAX_ZIP_BYTES' if is_archive else 'BEARSITE_MAX_UPLOAD_FILE_BYTES'})."
        )
        item.finished_at = timezone.now()
        return item
    item.stored_file = default_storage.save(
        f"{folder}/{_safe_name(incoming.name)}", File(incoming.fileobj, name=incoming.name)
    )
    return item


def batch_add_file(*, batch: IngestBatch, incoming: IncomingFile) -> BatchItem:
    """Store one more file in an open batch (the folder import streams files this way)."""
    item = _store_incoming(batch, _batch_folder(batch), incoming)
    item.save()
    return item


def batch_create_from_url_csv(*, csv_text: str, created_by=None) -> IngestBatch:
    """A Web image batch from a CSV with a ``url`` column and optional ``source_page``,
    ``licence`` and ``author`` columns. Rows without a URL become failed items. A CSV without
    rows, or with a URL that is not http(s) (a mistake in the file, never fetched), is refused
    (``ValueError``) and nothing is stored."""
    reader = csv.DictReader(io.StringIO(csv_text))
    fields = {f.strip().lower() for f in (reader.fieldnames or [])}
    if "url" not in fields:
        raise ValueError("The CSV needs a header row with a 'url' column.")
    with transaction.atomic():
        batch = IngestBatch.objects.create(
            target=IngestBatch.Target.WEB, source=IngestBatch.Source.URLS, created_by=created_by
        )
        items, bad = [], []
        for n, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            url = row.get("url", "")
            item = BatchItem(
                batch=batch,
                name=url[:500] or f"row {n}",
                url=url[:2000],
                source_page=row.get("source_page", "")[:2000],
                licence=row.get("licence", row.get("license", ""))[:200],
                author=row.get("author", "")[:200],
            )
            if not url:
                item.status = BatchItem.Status.FAILED
                item.error_code = "no_url"
                item.error = f"Row {n} has no URL."
                item.finished_at = timezone.now()
            elif urlsplit(url).scheme.lower() not in ("http", "https"):
                bad.append(f"row {n} ({url[:80]})")
            items.append(item)
        if bad:  # the transaction rolls back: no batch
            raise ValueError(
                "Only http and https URLs can be imported; not " + ", ".join(bad[:5])
                + (f" and {len(bad) - 5} more" if len(bad) > 5 else "") + "."
            )
        if not items:
            raise ValueError("The CSV has a 'url' column but no rows.")
        BatchItem.objects.bulk_create(items)
        batch_enqueue(batch=batch)
    return batch


def batch_enqueue(*, batch: IngestBatch) -> None:
    """Queue the batch's pending items in chunks, after the transaction commits."""
    from labeling.tasks import ingest_items

    def send() -> None:
        ids = list(
            batch.items.filter(status=BatchItem.Status.PENDING).values_list("pk", flat=True)
        )
        if not ids:
            batch_finish_if_done(batch_id=batch.pk)
        for start in range(0, len(ids), INGEST_CHUNK):
            ingest_items.delay(ids[start : start + INGEST_CHUNK])

    transaction.on_commit(send)


def batches_requeue_unfinished() -> int:
    """Queue again the pending items of every unfinished batch (idempotent tasks)."""
    batches = list(IngestBatch.objects.exclude(status=IngestBatch.Status.DONE))
    for batch in batches:
        batch_enqueue(batch=batch)
    return len(batches)


def batch_finish_if_done(*, batch_id: int) -> None:
    with transaction.atomic():
        batch = IngestBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == IngestBatch.Status.DONE:
            return
        if batch.items.filter(status=BatchItem.Status.PENDING).exists():
            if batch.status == IngestBatch.Status.PENDING:
                batch.status = IngestBatch.Status.RUNNING
                batch.save(update_fields=["status"])
            return
        batch.status = IngestBatch.Status.DONE
        batch.finished_at = timezone.now()
        batch.save(update_fields=["status", "finished_at"])


# --- Ingest -------------------------------------------------------------------------------------


def items_ingest(*, item_ids: list[int]) -> None:
    """Ingest a chunk of items; each is finished or failed on its own."""
    batch_ids = set()
    for item_id in item_ids:
        batch_id = item_ingest(item_id=item_id)
        if batch_id is not None:
            batch_ids.add(batch_id)
    for batch_id in batch_ids:
        batch_finish_if_done(batch_id=batch_id)


def item_ingest(*, item_id: int) -> int | None:
    """Ingest one item; returns its batch id, or None when there was nothing to do."""
    item = (
        BatchItem.objects.select_related("batch", "batch__survey").filter(pk=item_id).first()
    )
    if item is None:
        log.warning("batch item %s is gone; nothing to ingest", item_id)
        return None
    if item.status != BatchItem.Status.PENDING:
        return None
    batch = item.batch
    if batch.status == IngestBatch.Status.PENDING:
        IngestBatch.objects.filter(pk=batch.pk, status=IngestBatch.Status.PENDING).update(
            status=IngestBatch.Status.RUNNING
        )
    try:
        if item.name.lower().endswith(ARCHIVE_SUFFIXES) and item.stored_file:
            _expand_archive(item)
        elif batch.target == IngestBatch.Target.SURVEY:
            _ingest_survey_frame(item)
        else:
            _ingest_web_image(item)
    except (IngestError, FetchError) as exc:
        _item_fail(item, exc.code, exc.message)
    except Exception as exc:  # one bad file must never stop the batch
        log.exception("ingest of item %s failed", item_id)
        _item_fail(item, "internal_error", f"Unexpected error while ingesting: {exc}")
    return batch.pk


def _item_fail(item: BatchItem, code: str, message: str) -> None:
    BatchItem.objects.filter(pk=item.pk, status=BatchItem.Status.PENDING).update(
        status=BatchItem.Status.FAILED,
        error_code=code[:40],
        error=message,
        finished_at=timezone.now(),
    )


def _probe_stored(name: str, *, min_side: int):
    with default_storage.open(name, "rb") as fh:
        return probe_image(
            fh,
            max_pixels=settings.BEARSITE_MAX_IMAGE_PIXELS,
            min_side=min_side,
            thumb_size=settings.BEARSITE_THUMBNAIL_SIZE,
        )


def _save_thumbnail(sha256: str, data: bytes) -> str:
    # Named by content, so a retry overwrites rather than piling up copies.
    name = f"thumbs/{sha256[:2]}/{sha256}.jpg"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    return name


def _ingest_survey_frame(item: BatchItem) -> None:
    if not item.stored_file:
        raise IngestError("missing_file", "The uploaded file was not stored.")
    facts, thumb = _probe_stored(item.stored_file, min_side=settings.BEARSITE_MIN_FRAME_SIDE)
    thumb_name = _save_thumbnail(facts.sha256, thumb)
    survey = item.batch.survey
    with transaction.atomic():
        locked = BatchItem.objects.select_for_update().get(pk=item.pk)
        if locked.status != BatchItem.Status.PENDING:
            return
        existing = SurveyImage.objects.filter(survey=survey, sha256=facts.sha256).first()
        if existing is None:
            try:
                with transaction.atomic():
                    image = SurveyImage.objects.create(
                        survey=survey,
                        file=item.stored_file,
                        original_name=item.name,
                        sha256=facts.sha256,
                        size_bytes=facts.size_bytes,
                        format=facts.format,
                        width=facts.width,
                        height=facts.height,
                        orientation=facts.orientation,
                        captured_at=_aware(facts.captured_at),
                        latitude=facts.latitude,
                        longitude=facts.longitude,
                        altitude_m=facts.altitude_m,
                        camera=(facts.camera or "")[:200],
                        thumbnail=thumb_name,
                        batch=item.batch,
                    )
            except IntegrityError:
                existing = SurveyImage.objects.get(survey=survey, sha256=facts.sha256)
        if existing is not None:
            locked.status = BatchItem.Status.DUPLICATE
            locked.error_code = "duplicate"
            locked.error = (
                f"Same content (SHA-256) as {existing.original_name}, already in this survey; "
                "skipped."
            )
            locked.survey_image = existing
            stored = item.stored_file
            if stored != existing.file.name:
                transaction.on_commit(lambda: default_storage.delete(stored))
        else:
            locked.status = BatchItem.Status.INGESTED
            locked.survey_image = image
        locked.finished_at = timezone.now()
        locked.save()


def _ingest_web_image(item: BatchItem) -> None:
    if item.url and not item.stored_file:
        fetched = fetch_image(
            item.url,
            allowed_hosts=tuple(settings.BEARSITE_FETCH_ALLOWED_HOSTS),
            timeout=(5.0, settings.BEARSITE_FETCH_TIMEOUT_S),
            max_bytes=settings.BEARSITE_FETCH_MAX_BYTES,
            max_redirects=settings.BEARSITE_FETCH_MAX_REDIRECTS,
        )
        name = _safe_name(posixpath.basename(fetched.final_url.split("?")[0]) or "image")
        stored = default_storage.save(
            f"{_batch_folder(item.batch)}/{item.pk}-{name}", ContentFile(fetched.content)
        )
        BatchItem.objects.filter(pk=item.pk).update(stored_file=stored)
        item.stored_file = stored
    if not item.stored_file:
        raise IngestError("missing_file", "The uploaded file was not stored.")
    facts, thumb = _probe_stored(item.stored_file, min_side=32)
    phash = facts.phash
    thumb_name = _save_thumbnail(facts.sha256, thumb)
    near = _nearest_web_image(phash)
    with transaction.atomic():
        locked = BatchItem.objects.select_for_update().get(pk=item.pk)
        if locked.status != BatchItem.Status.PENDING:
            return
        existing = WebImage.objects.filter(sha256=facts.sha256).first()
        if existing is None:
            try:
                with transaction.atomic():
                    image = WebImage.objects.create(
                        file=item.stored_file,
                        original_name=item.name,
                        sha256=facts.sha256,
                        phash=phash,
                        format=facts.format,
                        width=facts.width,
                        height=facts.height,
                        thumbnail=thumb_name,
                        source_url=item.url,
                        source_page=item.source_page,
                        licence=item.licence,
                        author=item.author,
                        near_duplicate_of=near,
                        batch=item.batch,
                        imported_by=item.batch.created_by,
                    )
            except IntegrityError:
                existing = WebImage.objects.get(sha256=facts.sha256)
        if existing is not None:
            locked.status = BatchItem.Status.DUPLICATE
            locked.error_code = "duplicate"
            locked.error = f"Same content (SHA-256) as Web image {existing.original_name}; skipped."
            locked.web_image = existing
            stored = item.stored_file
            if stored != existing.file.name:
                transaction.on_commit(lambda: default_storage.delete(stored))
        else:
            locked.status = BatchItem.Status.INGESTED
            locked.web_image = image
            # Every new Web photo enters the curation queue (usable? where is the bear?).
            LabelItem.objects.get_or_create(
                kind=QueueKind.WEB, web_image=image,
                defaults={"votes_needed": settings.BEARSITE_DEFAULT_VOTES.get(QueueKind.WEB, 1)},
            )
            if near is not None:
                locked.error_code = "near_duplicate"
                locked.error = f"Looks like Web image {near.original_name} (perceptual hash)."
        locked.finished_at = timezone.now()
        locked.save()


def _nearest_web_image(phash: str) -> WebImage | None:
    """The closest existing Web image within the near-duplicate distance, if any. A linear scan
    over the hashes: Web image sets are thousands, not millions."""
    best, best_d = None, settings.BEARSITE_NEAR_DUPLICATE_BITS + 1
    for pk, other in WebImage.objects.values_list("pk", "phash").iterator():
        d = hamming(phash, other)
        if d < best_d:
            best, best_d = pk, d
    return WebImage.objects.get(pk=best) if best is not None else None


def _expand_archive(item: BatchItem) -> None:
    """Unpack a zip into new pending items of the same batch, in one transaction with marking
    the archive done, so a retry never unpacks twice. Entries are stored under names we choose
    (no path traversal), and sizes are checked before extraction (zip bombs)."""
    folder = f"{_batch_folder(item.batch)}/{item.pk}"
    new_items = []
    with default_storage.open(item.stored_file, "rb") as fh:
        try:
            archive = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise IngestError(
                "bad_archive", "The zip archive cannot be read (corrupt or not a zip)."
            ) from None
        with archive:
            members = [
                m for m in archive.infolist()
                if not m.is_dir() and not posixpath.basename(m.filename).startswith(".")
                and not m.filename.startswith(_ARCHIVE_JUNK_PREFIXES)
            ]
            total = sum(m.file_size for m in members)
            if total > settings.BEARSITE_MAX_ZIP_BYTES:
                raise IngestError(
                    "archive_too_large",
                    f"The archive unpacks to {total / 1e9:.1f} GB; the limit is "
                    f"{settings.BEARSITE_MAX_ZIP_BYTES / 1e9:.1f} GB.",
                )
            for n, member in enumerate(members):
                entry = BatchItem(batch=item.batch, name=f"{item.name}:{member.filename}"[:500])
                if member.file_size > settings.BEARSITE_MAX_UPLOAD_FILE_BYTES:
                    entry.status = BatchItem.Status.FAILED
                    entry.error_code = "file_too_large"
                    entry.error = (
                        f"The file is {member.file_size / 1e6:.1f} MB; the limit is "
                        f"{settings.BEARSITE_MAX_UPLOAD_FILE_BYTES / 1e6:.0f} MB per file."
                    )
                    entry.finished_at = timezone.now()
                else:
                    with archive.open(member) as src:
                        entry.stored_file = default_storage.save(
                            f"{folder}/{n:06d}-{_safe_name(member.filename)}", File(src)
                        )
                new_items.append(entry)
    with transaction.atomic():
        locked = BatchItem.objects.select_for_update().get(pk=item.pk)
        if locked.status != BatchItem.Status.PENDING:
            for entry in new_items:
                if entry.stored_file:
                    default_storage.delete(entry.stored_file)
            return
        BatchItem.objects.bulk_create(new_items)
        locked.status = BatchItem.Status.UNPACKED
        locked.error = f"Archive unpacked: {len(new_items)} files."
        locked.finished_at = timezone.now()
        locked.save()
        batch_enqueue(batch=item.batch)
    default_storage.delete(item.stored_file)


def _aware(value):
    if value is None or timezone.is_aware(value):
        return value
    # EXIF time without an offset: survey cameras are set to UTC by convention; recorded as such.
    return value.replace(tzinfo=UTC)
