"""Streamed exports of a survey's results: CSV and GeoJSON of detections, COCO of labelled tiles.

Every export is a generator of text chunks over ``.iterator(chunk_size=...)`` querysets, so memory
does not grow with the survey: rows are read in chunks from one cursor and written as they come.
The only things held whole are the confirmed bears (sparse) and the model registry's names.

What a *detection* row is (CSV and GeoJSON share them, :data:`COLUMNS`):

- every candidate of the report's model version (whatever people answered: ``consensus`` says),
  placed at the model's detection centre unless people marked the bear;
- every bear people confirmed, in any queue and by any version's item, at the point they marked.
  One row per bear (``bear_id``): the same bear shown in two tiles is one row.

Positions: ``x``, ``y`` are frame pixels (EXIF-oriented frame). ``latitude``/``longitude`` are the
frame's GPS position (its centre, camera pointing straight down): the animal's own coordinates
are not computed, because the heading (which way is north in the frame) is not known.
``location_uncertainty_m`` says how far off that can be: half the frame footprint's diagonal.

Naming: each CSV row carries ``model_version`` and ``exported_at`` columns (a leading comment line
would load as a bogus data row in spreadsheet tools); GeoJSON has them in its top-level
``properties`` (a foreign member, which QGIS ignores) and in every feature; COCO in ``info``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime

from django.db.models import Count, OuterRef, Q, Subquery

from inference.models import ModelVersion
from labeling.models import LabelItem, QueueKind, Survey, Vote
from results import selectors

CHUNK = 1000  # rows per fetch from the cursor: the bound on an export's memory
COLUMNS = [
    "survey",
    "frame_file",
    "captured_at",
    "latitude",
    "longitude",
    "x",
    "y",
    "position_source",
    "score",
    "model_version",
    "model_version_id",
    "queue",
    "status",
    "consensus",
    "votes",
    "votes_bear",
    "votes_no_bear",
    "bear_id",
    "item_id",
    "frame_id",
    "location_source",
    "location_uncertainty_m",
    "exported_at",
]
CATEGORY = {"id": 1, "name": "polar_bear", "supercategory": "animal"}
BEAR = LabelItem.Answer.BEAR
NO_BEAR = LabelItem.Answer.NO_BEAR
USABLE = LabelItem.Answer.USABLE


def version_label(version: ModelVersion | None) -> str:
    return "none" if version is None else f"{version.name} (#{version.pk})"


def export_filename(survey: Survey, version: ModelVersion | None, what: str, when: datetime) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in survey.name).strip("-")
    v = f"v{version.pk}" if version is not None else "v-none"
    return f"{safe or 'survey'}-{what}-{v}-{when.strftime('%Y%m%dT%H%M%SZ')}"


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Detection rows -------------------------------------------------------------------------------


def detection_rows(
    *,
    survey: Survey,
    version: ModelVersion | None,
    exported_at: datetime,
    confirmed_only: bool = False,
) -> Iterator[dict]:
    """The detections of a survey as dicts keyed by :data:`COLUMNS`, frame by frame in capture
    order. Invariant: a confirmed bear appears in one row only."""
    bears = selectors.survey_bears(survey=survey)
    by_item = bears.by_item()
    names = dict(ModelVersion.objects.values_list("pk", "name"))
    gsd_m = (survey.effective_gsd_cm or 0) / 100.0
    wanted = Q(consensus=BEAR)
    if version is not None and not confirmed_only:
        wanted |= Q(kind=QueueKind.CANDIDATES, model_version_id=version.pk)
    # Answers to gold items are judged against the known answer and never form a consensus.
    counting = Q(votes__undone_at__isnull=True, votes__is_gold_answer=False)
    qs = (
        LabelItem.objects.filter(survey=survey, image__isnull=False, kind__in=selectors.TILE_KINDS)
        .filter(wanted)
        .annotate(
            n_votes=Count("votes", filter=counting),
            n_bear=Count("votes", filter=counting & Q(votes__answer=BEAR)),
            n_no_bear=Count("votes", filter=counting & Q(votes__answer=NO_BEAR)),
        )
        .order_by("image__captured_at", "image__original_name", "image_id", "pk")
        .values(
            "pk",
            "image_id",
            "kind",
            "status",
            "consensus",
            "score",
            "model_version_id",
            "x0",
            "y0",
            "x1",
            "y1",
            "centre_x",
            "centre_y",
            "consensus_points",
            "n_votes",
            "n_bear",
            "n_no_bear",
            "image__original_name",
            "image__captured_at",
            "image__latitude",
            "image__longitude",
            "image__width",
            "image__height",
        )
    )
    emitted: set[str] = set()
    stamp = _iso(exported_at)
    for row in qs.iterator(chunk_size=CHUNK):
        base = {
            "survey": survey.name,
            "frame_file": row["image__original_name"],
            "captured_at": _iso(row["image__captured_at"]),
            "latitude": row["image__latitude"],
            "longitude": row["image__longitude"],
            "score": None if row["score"] is None else round(row["score"], 6),
            "model_version": names.get(row["model_version_id"], ""),
            "model_version_id": row["model_version_id"],
            "queue": row["kind"],
            "status": row["status"],
            "consensus": row["consensus"],
            "votes": row["n_votes"],
            "votes_bear": row["n_bear"],
            "votes_no_bear": row["n_no_bear"],
            "item_id": row["pk"],
            "frame_id": row["image_id"],
            "location_source": "frame centre (GPS)" if row["image__latitude"] is not None else "",
            "location_uncertainty_m": (
                round(math.hypot(row["image__width"], row["image__height"]) / 2 * gsd_m, 1)
                if gsd_m and row["image__latitude"] is not None
                else None
            ),
            "exported_at": stamp,
        }
        if row["consensus"] == BEAR:
            for bear in by_item.get(row["pk"], []):
                key = bears.key(bear)
                if key in emitted:
                    continue
                emitted.add(key)
                point = next(p for p in bear.points if p.item_id == row["pk"])
                yield base | {
                    "x": round(point.x, 1),
                    "y": round(point.y, 1),
                    "position_source": "people",
                    "bear_id": key,
                }
            continue
        x, y = selectors.item_points({**row, "consensus_points": []})[0]
        yield base | {
            "x": round(x, 1),
            "y": round(y, 1),
            "position_source": "model" if row["centre_x"] is not None else "tile centre",
            "bear_id": "",
        }


# Text a spreadsheet would run as a formula (a frame named "=HYPERLINK(...)" on upload): such
# cells get a leading apostrophe, which spreadsheet tools hide (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = ("survey", "frame_file", "model_version")


def _csv_safe(row: dict) -> dict:
    out = {k: "" if v is None else v for k, v in row.items()}
    for key in _TEXT_COLUMNS:
        value = out.get(key)
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            out[key] = "'" + value
    return out


class _Echo:
    """A file-like object whose ``write`` returns what it was given (csv writes one row)."""

    def write(self, value: str) -> str:
        return value


def csv_stream(
    *,
    survey: Survey,
    version: ModelVersion | None,
    exported_at: datetime,
    confirmed_only: bool = False,
) -> Iterator[str]:
    """The detections as CSV (RFC 4180, UTF-8, header row, ISO 8601 UTC times)."""
    writer = csv.DictWriter(_Echo(), fieldnames=COLUMNS, extrasaction="ignore")
    yield writer.writeheader()
    for row in detection_rows(
        survey=survey, version=version, exported_at=exported_at, confirmed_only=confirmed_only
    ):
        yield writer.writerow(_csv_safe(row))


def geojson_stream(
    *,
    survey: Survey,
    version: ModelVersion | None,
    exported_at: datetime,
    confirmed_only: bool = False,
) -> Iterator[str]:
    """The detections as an RFC 7946 FeatureCollection of points (longitude, latitude, WGS 84).
    Detections in frames without GPS have no point and are left out; their number is given in
    ``skipped_without_gps`` at the end."""
    head = {
        "type": "FeatureCollection",
        "name": f"{survey.name} detections",
        "properties": {
            "survey": survey.name,
            "model_version": version_label(version),
            "model_version_id": None if version is None else version.pk,
            "exported_at": _iso(exported_at),
            "location": "frame centre from the frame's GPS; the bear lies within "
            "location_uncertainty_m of it",
        },
    }
    yield json.dumps(head)[:-1] + ', "features": ['
    skipped = 0
    first = True
    for row in detection_rows(
        survey=survey, version=version, exported_at=exported_at, confirmed_only=confirmed_only
    ):
        if row["latitude"] is None or row["longitude"] is None:
            skipped += 1
            continue
        feature = {
            "type": "Feature",
            "id": f"{row['item_id']}-{row['bear_id'] or 'c'}",
            "geometry": {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]},
            "properties": {k: row.get(k) for k in COLUMNS},
        }
        yield ("" if first else ",\n") + json.dumps(feature)
        first = False
    yield f'], "skipped_without_gps": {skipped}}}\n'


# --- COCO -----------------------------------------------------------------------------------------


def _tile_boxes(row: dict, animal_px: float) -> list[list[float]]:
    """COCO boxes ``[x, y, w, h]`` in tile pixels: one animal length square around each bear
    point, clipped to the tile; points whose box misses the tile are dropped."""
    if row["consensus"] != BEAR:
        return []
    x0, y0, x1, y1 = row["x0"], row["y0"], row["x1"], row["y1"]
    half = animal_px / 2
    out = []
    for px, py in selectors.item_points(row):
        bx0, by0 = max(px - half, x0), max(py - half, y0)
        bx1, by1 = min(px + half, x1), min(py + half, y1)
        if bx1 - bx0 >= 1 and by1 - by0 >= 1:
            out.append(
                [round(bx0 - x0, 1), round(by0 - y0, 1), round(bx1 - bx0, 1), round(by1 - by0, 1)]
            )
    return out


def _web_boxes(row: dict) -> list[list[float]]:
    raw = row["consensus_boxes"] or row["vote_boxes"] or []
    out = []
    for b in raw:
        try:
            bx0, by0, bx1, by1 = (float(v) for v in b[:4])
        except (TypeError, ValueError):
            continue
        bx0, bx1 = sorted((max(bx0, 0), min(bx1, row["web_image__width"])))
        by0, by1 = sorted((max(by0, 0), min(by1, row["web_image__height"])))
        if bx1 - bx0 >= 1 and by1 - by0 >= 1:
            out.append([round(bx0, 1), round(by0, 1), round(bx1 - bx0, 1), round(by1 - by0, 1)])
    return out


def _coco_sources(survey: Survey, include_web: bool):
    tiles = (
        LabelItem.objects.filter(
            survey=survey,
            image__isnull=False,
            kind__in=selectors.TILE_KINDS,
            status=LabelItem.Status.RETIRED,
            consensus__in=[BEAR, NO_BEAR],
        )
        .order_by("pk")
        .values(
            "pk",
            "image_id",
            "kind",
            "consensus",
            "model_version_id",
            "x0",
            "y0",
            "x1",
            "y1",
            "centre_x",
            "centre_y",
            "consensus_points",
            "tile_crop",
            "score",
            "image__original_name",
        )
    )
    web = None
    if include_web:
        last_boxes = (
            Vote.objects.filter(item=OuterRef("pk"), undone_at__isnull=True, answer=USABLE)
            .order_by("-is_review", "-created_at", "-pk")
            .values("boxes")[:1]
        )
        web = (
            LabelItem.objects.filter(kind=QueueKind.WEB, web_image__isnull=False)
            .filter(Q(consensus=USABLE) | Q(web_image__curation="usable"))
            .annotate(vote_boxes=Subquery(last_boxes))
            .order_by("pk")
            .values(
                "pk",
                "web_image_id",
                "consensus_boxes",
                "vote_boxes",
                "web_image__file",
                "web_image__original_name",
                "web_image__width",
                "web_image__height",
                "web_image__source_url",
                "web_image__licence",
                "web_image__author",
            )
        )
    return tiles, web


def coco_stream(
    *,
    survey: Survey,
    version: ModelVersion | None,
    exported_at: datetime,
    include_web: bool = True,
) -> Iterator[str]:
    """Labelled survey tiles (bear and no-bear answers, so the negative images are there, with no
    annotations) and usable Web images with their boxes, as COCO detection JSON.

    Image ids are the label items' ids (unique across tiles and Web images). Two passes over the
    same ordered querysets (images, then annotations) keep memory flat; ``_tile_boxes`` and
    ``_web_boxes`` are deterministic, so both passes agree on which images have boxes. A tile
    answered "bear" whose points all miss it, and a Web image without a box, are left out (they
    are neither a clean positive nor a negative); their count is in ``skipped`` at the end."""
    animal_px = survey.animal_length_px or selectors.DEFAULT_MERGE_RADIUS_PX * 2
    info = {
        "description": f"bearsite: labelled tiles of survey {survey.name} and Web image boxes",
        "version": "1.0",
        "year": exported_at.year,
        "contributor": "bearsite",
        "url": "",
        "date_created": _iso(exported_at),
        "survey": survey.name,
        "model_version": version_label(version),
        "model_version_id": None if version is None else version.pk,
        "exported_at": _iso(exported_at),
        "tiles": "survey tiles people labelled (any queue, any model version); each image's "
        "model_version_id names the model that queued it",
        "annotation_boxes": f"survey tiles: a square of one animal length ({animal_px:.0f} px) "
        "centred on each point people marked, clipped to the tile; Web "
        "images: the boxes people drew",
    }
    head = {"info": info, "licenses": [], "categories": [CATEGORY]}
    yield json.dumps(head)[:-1] + ', "images": ['
    first = True
    skipped = 0
    tiles, web = _coco_sources(survey, include_web)
    for row in tiles.iterator(chunk_size=CHUNK):
        boxes = _tile_boxes(row, animal_px)
        if row["consensus"] == BEAR and not boxes:
            skipped += 1
            continue
        image = {
            "id": row["pk"],
            "file_name": row["tile_crop"]
            or f"tiles/{row['image_id']}/{row['x0']}_{row['y0']}_{row['x1']}_{row['y1']}.png",
            "width": row["x1"] - row["x0"],
            "height": row["y1"] - row["y0"],
            "source": "survey",
            "frame_file": row["image__original_name"],
            "frame_id": row["image_id"],
            "frame_box": [row["x0"], row["y0"], row["x1"], row["y1"]],
            "queue": row["kind"],
            "consensus": row["consensus"],
            "model_version_id": row["model_version_id"],
            "score": row["score"],
        }
        yield ("" if first else ",\n") + json.dumps(image)
        first = False
    if web is not None:
        for row in web.iterator(chunk_size=CHUNK):
            if not _web_boxes(row):
                skipped += 1
                continue
            image = {
                "id": row["pk"],
                "file_name": row["web_image__file"],
                "width": row["web_image__width"],
                "height": row["web_image__height"],
                "source": "web",
                "original_name": row["web_image__original_name"],
                "web_image_id": row["web_image_id"],
                "source_url": row["web_image__source_url"],
                "licence": row["web_image__licence"],
                "author": row["web_image__author"],
            }
            yield ("" if first else ",\n") + json.dumps(image)
            first = False
    yield '], "annotations": ['
    ann_id = 0
    first = True

    def annotation(image_id: int, box: list[float]) -> str:
        nonlocal ann_id, first
        ann_id += 1
        x, y, w, h = box
        text = json.dumps(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": CATEGORY["id"],
                "bbox": box,
                "area": round(w * h, 2),
                "iscrowd": 0,
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            }
        )
        out = ("" if first else ",\n") + text
        first = False
        return out

    tiles, web = _coco_sources(survey, include_web)
    for row in tiles.iterator(chunk_size=CHUNK):
        for box in _tile_boxes(row, animal_px):
            yield annotation(row["pk"], box)
    if web is not None:
        for row in web.iterator(chunk_size=CHUNK):
            for box in _web_boxes(row):
                yield annotation(row["pk"], box)
    yield f'], "skipped": {skipped}}}\n'


# --- HTTP -----------------------------------------------------------------------------------------

FORMATS = {
    # name: (stream function, content type, file suffix)
    "csv": (csv_stream, "text/csv; charset=utf-8", "detections.csv"),
    "geojson": (geojson_stream, "application/geo+json", "detections.geojson"),
    "coco": (coco_stream, "application/json", "coco.json"),
}


def export_response(
    *,
    survey: Survey,
    fmt: str,
    version_id: int | None = None,
    confirmed_only: bool = False,
    include_web: bool = True,
):
    """A ``StreamingHttpResponse`` (an attachment named after the survey, model version and time)
    for the page and the API alike. The version is chosen as on the report page."""
    from django.http import StreamingHttpResponse
    from django.utils import timezone

    stream, content_type, suffix = FORMATS[fmt]
    versions, _active, objects = selectors.survey_versions(survey=survey)
    version = selectors.report_version(versions=versions, objects=objects, requested=version_id)
    now = timezone.now().replace(microsecond=0)
    kwargs = {"survey": survey, "version": version, "exported_at": now}
    if fmt == "coco":
        kwargs["include_web"] = include_web
    else:
        kwargs["confirmed_only"] = confirmed_only
    response = StreamingHttpResponse(stream(**kwargs), content_type=content_type)
    name = export_filename(survey, version, suffix.split(".")[0], now) + "." + suffix.split(".")[1]
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Model-Version"] = version_label(version)
    response["X-Exported-At"] = _iso(now)
    return response
