"""Reads for the survey report: counts, the miss-rate estimate, the map, plots and the frame table.

Everything here is computed with SQL aggregates over ``FrameScore``, ``LabelItem``, ``Vote`` and
``SurveyImage`` (one query each, grouped where a plot needs bins), so the number of queries of
the report does not depend on the number of frames or tiles. The only rows loaded one by one are
the items people confirmed as bears (sparse by nature: about one bear per thousand frames) and
one page of the frame table.

The report is made for one *model version* (``report_version``): the active model when it has
scored frames of the survey, else the version that scored the most. Confirmed bears do not depend
on the version (they are people's answers); candidates, tiles, the audit sample and the estimate do.

These aggregates still scan the survey's rows (about 0.3 s at 10 000 frames, seconds at 100 000),
so the page and the API do not run them per request: ``survey_report`` feeds a stored snapshot
(``results.services``, ``results.snapshot_data``), and only :func:`frame_page` (one page of the
frame table) and :func:`report_snapshot_lookup` run per view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import (
    Case,
    Count,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Floor, Trunc

from inference.models import FrameError, FrameScore, InferenceJob, ModelVersion
from labeling.models import LabelItem, QueueKind, Survey, SurveyImage, Vote
from results import estimate
from results.estimate import AuditTally, Bear, BearPoint, MissEstimate
from results.models import ReportSnapshot, SurveyChange

TILE_KINDS = (QueueKind.CANDIDATES, QueueKind.UNCERTAIN, QueueKind.AUDIT)
BEAR = LabelItem.Answer.BEAR
NO_BEAR = LabelItem.Answer.NO_BEAR
UNSURE = LabelItem.Answer.UNSURE
RETIRED = LabelItem.Status.RETIRED
# Without a ground sample distance, bears closer than this are taken as one (about half a bear
# at 2.4 cm/px, the survey style the project was built for).
DEFAULT_MERGE_RADIUS_PX = 40.0
FRAME_SORTS = {
    "score": ("-max_score", "max_score"),
    "candidates": ("-n_candidates", "n_candidates"),
    "confirmed": ("-confirmed", "confirmed"),
    "name": ("original_name", "-original_name"),
    "time": ("captured_at", "-captured_at"),
}
FRAME_COLUMNS = (
    "pk",
    "original_name",
    "captured_at",
    "latitude",
    "longitude",
    "max_score",
    "n_candidates",
    "confirmed",
)
MAP_CELLS = 150  # map bins along its longer side
HIST_BINS = 20


# --- Model versions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionChoice:
    id: int
    name: str
    status: str
    frames: int
    is_active: bool


def version_score_stats(*, survey: Survey) -> dict[int, dict]:
    """Per model version that scored the survey: frames (``n``), tiles, tiles at or above the
    threshold, detections, the top score and the frames per max-score bin (``h0``..``h19``).
    One scan of the survey's score rows, grouped by version."""
    bins = {
        f"h{i}": Count(
            "pk", filter=Q(max_score__gte=i / HIST_BINS, max_score__lt=(i + 1) / HIST_BINS)
        )
        for i in range(HIST_BINS - 1)
    }
    bins[f"h{HIST_BINS - 1}"] = Count("pk", filter=Q(max_score__gte=(HIST_BINS - 1) / HIST_BINS))
    rows = (
        FrameScore.objects.filter(image__survey=survey)
        .values("model_version_id")
        .annotate(
            n=Count("pk"),
            tiles=Sum(F("rows") * F("cols")),
            above=Sum("n_tiles_above"),
            detections=Sum("n_candidates"),
            top=Max("max_score"),
            **bins,
        )
        .order_by()
    )
    return {row["model_version_id"]: row for row in rows}


def survey_versions(
    *, survey: Survey, stats: dict[int, dict] | None = None
) -> tuple[list[VersionChoice], ModelVersion | None, dict]:
    """The versions that scored frames of the survey (most frames first), the active model
    (``None`` if none), and ``{id: ModelVersion}`` for both. Two queries, one if ``stats``
    (from :func:`version_score_stats`) is given."""
    if stats is not None:
        counts = {vid: row["n"] for vid, row in stats.items()}
    else:
        counts = dict(
            FrameScore.objects.filter(image__survey=survey)
            .values("model_version_id")
            .annotate(n=Count("pk"))
            .values_list("model_version_id", "n")
            .order_by()
        )
    objects = {
        v.pk: v
        for v in ModelVersion.objects.filter(
            Q(pk__in=list(counts)) | Q(status=ModelVersion.Status.ACTIVE)
        )
    }
    active = next((v for v in objects.values() if v.status == ModelVersion.Status.ACTIVE), None)
    choices = [
        VersionChoice(
            id=vid,
            name=objects[vid].name,
            status=objects[vid].status,
            frames=n,
            is_active=objects[vid].status == ModelVersion.Status.ACTIVE,
        )
        for vid, n in counts.items()
        if vid in objects
    ]
    choices.sort(key=lambda c: (-c.frames, -c.id))
    return choices, active, objects


def report_version(
    *, versions: list[VersionChoice], objects: dict, requested: int | None = None
) -> ModelVersion | None:
    """The requested version if it scored the survey; else the active one if it did; else the
    one that scored most frames (newest on a tie); ``None`` when nothing is scored."""
    ids = [c.id for c in versions]
    if requested in ids:
        return objects[requested]
    for c in versions:
        if c.is_active:
            return objects[c.id]
    return objects[ids[0]] if ids else None


# --- Confirmed bears ------------------------------------------------------------------------------


def merge_radius_px(survey: Survey) -> float:
    length = survey.animal_length_px
    return length / 2.0 if length else DEFAULT_MERGE_RADIUS_PX


def item_points(row: dict) -> list[tuple[float, float]]:
    """Where the bears of one labelled item are (frame pixels): the points people marked, else
    the model's detection centre, else the tile centre."""
    points: list[tuple[float, float]] = []
    for p in row.get("consensus_points") or []:
        if isinstance(p, dict) and "x" in p and "y" in p:
            points.append((float(p["x"]), float(p["y"])))
        elif isinstance(p, (list, tuple)) and len(p) >= 2:
            points.append((float(p[0]), float(p[1])))
    if points:
        return points
    if row.get("centre_x") is not None and row.get("centre_y") is not None:
        return [(float(row["centre_x"]), float(row["centre_y"]))]
    return [((row["x0"] + row["x1"]) / 2.0, (row["y0"] + row["y1"]) / 2.0)]


@dataclass
class FrameFacts:
    name: str
    latitude: float | None
    longitude: float | None
    captured_at: datetime | None
    width: int
    height: int


@dataclass
class SurveyBears:
    """The survey's confirmed bears (people's answers, deduplicated) and the frames they lie in.

    ``bears`` keeps the order of the items (candidates first, then by id), and every bear has
    a stable ``key`` (``<frame id>-<n>``) used in the exports."""

    bears: list[Bear]
    frames: dict[int, FrameFacts]
    rows: dict[int, dict]
    keys: dict[int, str] = field(default_factory=dict)  # id(bear) -> key

    def per_frame(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for b in self.bears:
            counts[b.image_id] = counts.get(b.image_id, 0) + 1
        return counts

    def key(self, bear: Bear) -> str:
        return self.keys[id(bear)]

    def by_item(self) -> dict[int, list[Bear]]:
        """The bears of each item, in the order of the item's points."""
        out: dict[int, list[Bear]] = {}
        for b in self.bears:
            for p in b.points:
                out.setdefault(p.item_id, []).append(b)
        return out


def survey_bears(*, survey: Survey) -> SurveyBears:
    """Every tile item people answered "bear", as bears. One query."""
    kind_order = Case(
        When(kind=QueueKind.CANDIDATES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    rows = list(
        LabelItem.objects.filter(survey=survey, consensus=BEAR, image__isnull=False)
        .annotate(kind_order=kind_order)
        .order_by("kind_order", "pk")
        .values(
            "pk",
            "image_id",
            "kind",
            "model_version_id",
            "x0",
            "y0",
            "x1",
            "y1",
            "centre_x",
            "centre_y",
            "consensus_points",
            "score",
            "votes_count",
            "image__original_name",
            "image__latitude",
            "image__longitude",
            "image__captured_at",
            "image__width",
            "image__height",
        )
    )
    points = []
    frames: dict[int, FrameFacts] = {}
    for row in rows:
        frames.setdefault(
            row["image_id"],
            FrameFacts(
                name=row["image__original_name"],
                latitude=row["image__latitude"],
                longitude=row["image__longitude"],
                captured_at=row["image__captured_at"],
                width=row["image__width"],
                height=row["image__height"],
            ),
        )
        for x, y in item_points(row):
            points.append(
                BearPoint(
                    image_id=row["image_id"],
                    x=x,
                    y=y,
                    item_id=row["pk"],
                    kind=row["kind"],
                    model_version_id=row["model_version_id"],
                )
            )
    bears = estimate.cluster_bears(points, merge_radius_px(survey))
    keys: dict[int, str] = {}
    seen: dict[int, int] = {}
    for b in bears:
        seen[b.image_id] = seen.get(b.image_id, 0) + 1
        keys[id(b)] = f"{b.image_id}-{seen[b.image_id]}"
    return SurveyBears(bears=bears, frames=frames, rows={r["pk"]: r for r in rows}, keys=keys)


# --- The report -----------------------------------------------------------------------------------


@dataclass
class Counts:
    frames_total: int = 0
    frames_gps: int = 0
    frames_scored: int = 0
    frames_failed: int = 0
    tiles_scored: int = 0
    tiles_above: int = 0
    tiles_below: int = 0
    detections: int = 0  # merged model detections (candidate items made)
    confirmed_bears: int = 0
    frames_with_bears: int = 0
    candidates_total: int = 0
    candidates_waiting: int = 0
    candidates_bear: int = 0
    candidates_no_bear: int = 0
    candidates_unsure: int = 0
    items_queued: int = 0
    items_seen: int = 0
    votes: int = 0
    volunteers: int = 0
    hours: float = 0.0
    max_score: float | None = None
    frames_by_max_score: list[int] = field(default_factory=list)

    @property
    def minutes(self) -> float:
        return self.hours * 60

    @property
    def frames_without_gps(self) -> int:
        return self.frames_total - self.frames_gps

    @property
    def frames_unscored(self) -> int:
        return max(self.frames_total - self.frames_scored - self.frames_failed, 0)

    @property
    def share_looked_at(self) -> float | None:
        """Share of the scored tiles that people were (or will be) asked about."""
        return self.items_queued / self.tiles_scored if self.tiles_scored else None

    @property
    def workload_saved(self) -> float | None:
        share = self.share_looked_at
        return None if share is None else 1.0 - share


@dataclass
class EstimateBlock:
    """The miss-rate estimate with what it rests on and why it may be missing."""

    tally: AuditTally | None
    result: MissEstimate | None
    method: str
    threshold: float | None
    thresholds_differ: bool = False
    rates_differ: bool = False
    cell_fallback: bool = False
    detected: int = 0
    found_below: int = 0
    reason: str = ""


@dataclass
class MapData:
    """Frames binned on an equirectangular grid of the survey's bounding box.

    ``cells``: (col, row, frames); ``candidates``: (col, row, open candidates); ``bears``:
    (lon, lat, frame id, label). ``lon_shift``: 360 when the survey crosses the antimeridian
    and longitudes are drawn in 0..360. Rows count from the south."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    ncols: int
    nrows: int
    lon_shift: float
    cells: list[tuple[int, int, int]]
    candidates: list[tuple[int, int, int]]
    bears: list[tuple[float, float, int, str]]


@dataclass
class Bin:
    start: datetime
    frames: int
    candidates: int
    bears: int


@dataclass
class Timeline:
    unit: str
    bins: list[Bin]
    frames_without_time: int


@dataclass
class Histogram:
    """Counts per score bin ``[i / bins, (i + 1) / bins)``; a score of 1.0 falls in the last."""

    bins: int
    frames: list[int]
    bear: list[int]
    no_bear: list[int]
    threshold: float | None


@dataclass
class PRCurve:
    name: str
    version_id: int
    precision: list[float]
    recall: list[float]
    thresholds: list[float]
    ap: float | None
    operating: tuple[float, float] | None  # (recall, precision) at the version's threshold
    threshold: float | None


@dataclass
class FramePage:
    rows: list[dict]
    page: object  # django.core.paginator.Page
    sort: str
    descending: bool


@dataclass
class Report:
    survey: Survey
    version: ModelVersion | None
    versions: list[VersionChoice]
    active: ModelVersion | None
    counts: Counts
    estimate: EstimateBlock
    map: MapData | None
    timeline: Timeline | None
    histogram: Histogram | None
    pr_curves: list[PRCurve]
    no_gps: list[dict]
    frames: FramePage | None
    bears: SurveyBears


def survey_report(
    *,
    survey: Survey,
    version_id: int | None = None,
    method: str = estimate.DEFAULT_METHOD,
    sort: str = "score",
    descending: bool = True,
    page: int | str | None = 1,
    per_page: int = 50,
    with_frames: bool = True,
) -> Report:
    """Everything the report page shows, in a number of queries that does not grow with the
    survey (about 20)."""
    stats = version_score_stats(survey=survey)
    versions, active, objects = survey_versions(survey=survey, stats=stats)
    version = report_version(versions=versions, objects=objects, requested=version_id)
    bears = survey_bears(survey=survey)
    counts = Counts(confirmed_bears=len(bears.bears), frames_with_bears=len(bears.per_frame()))

    frame_agg = SurveyImage.objects.filter(survey=survey).aggregate(
        n=Count("pk"),
        gps=Count("pk", filter=Q(latitude__isnull=False, longitude__isnull=False)),
        lat_min=Min("latitude"),
        lat_max=Max("latitude"),
        lon_min=Min("longitude"),
        lon_max=Max("longitude"),
        lon360_min=Min(_lon360_of("")),
        lon360_max=Max(_lon360_of("")),
        t_min=Min("captured_at"),
        t_max=Max("captured_at"),
        no_time=Count("pk", filter=Q(captured_at__isnull=True)),
    )
    counts.frames_total = frame_agg["n"]
    counts.frames_gps = frame_agg["gps"]

    vote_agg = Vote.objects.filter(item__survey=survey, undone_at__isnull=True).aggregate(
        n=Count("pk"), people=Count("user_id", distinct=True), ms=Sum("duration_ms")
    )
    counts.votes = vote_agg["n"]
    counts.volunteers = vote_agg["people"]
    counts.hours = (vote_agg["ms"] or 0) / 3_600_000

    block = EstimateBlock(tally=None, result=None, method=method, threshold=None)
    histogram = timeline = None
    if version is not None:
        _version_counts(survey, version, counts, stats[version.pk])
        block = _estimate_block(survey, version, bears, method, counts.tiles_below)
        histogram = _histogram(survey, version, block.threshold, counts.frames_by_max_score)
        timeline = _timeline(survey, version, bears, frame_agg)
    else:
        block.reason = "No frame of this survey has been scored by a model yet."
    map_data = _map(survey, version, bears, frame_agg)
    no_gps = list(
        SurveyImage.objects.filter(survey=survey)
        .filter(Q(latitude__isnull=True) | Q(longitude__isnull=True))
        .order_by("captured_at", "original_name", "pk")
        .values("pk", "original_name", "captured_at")[:100]
    )
    curves = []
    for v in (active, version):
        if v is not None and all(c.version_id != v.pk for c in curves):
            curve = pr_curve(v)
            if curve is not None:
                curves.append(curve)
    frames = (
        frame_page(
            survey=survey,
            version_id=None if version is None else version.pk,
            per_frame=bears.per_frame(),
            sort=sort,
            descending=descending,
            page=page,
            per_page=per_page,
            count=counts.frames_total,
            scored=counts.frames_scored,
        )
        if with_frames
        else None
    )
    return Report(
        survey=survey,
        version=version,
        versions=versions,
        active=active,
        counts=counts,
        estimate=block,
        map=map_data,
        timeline=timeline,
        histogram=histogram,
        pr_curves=curves,
        no_gps=no_gps,
        frames=frames,
        bears=bears,
    )


def _version_counts(survey: Survey, version: ModelVersion, counts: Counts, fs: dict) -> None:
    counts.frames_by_max_score = [fs[f"h{i}"] for i in range(HIST_BINS)]
    counts.frames_scored = fs["n"]
    counts.tiles_scored = fs["tiles"] or 0
    counts.tiles_above = fs["above"] or 0
    counts.tiles_below = counts.tiles_scored - counts.tiles_above
    counts.detections = fs["detections"] or 0
    counts.max_score = fs["top"]
    counts.frames_failed = (
        FrameError.objects.filter(job__survey=survey, job__model_version=version)
        .exclude(image__scores__model_version=version)
        .values("image_id")
        .distinct()
        .count()
    )
    mine = Q(model_version_id=version.pk)
    cand = mine & Q(kind=QueueKind.CANDIDATES)
    items = LabelItem.objects.filter(survey=survey).aggregate(
        cand=Count("pk", filter=cand),
        waiting=Count("pk", filter=cand & ~Q(status=RETIRED)),
        bear=Count("pk", filter=cand & Q(consensus=BEAR)),
        no_bear=Count("pk", filter=cand & Q(consensus=NO_BEAR)),
        unsure=Count("pk", filter=cand & Q(consensus=UNSURE)),
        queued=Count("pk", filter=mine & Q(kind__in=TILE_KINDS)),
        seen=Count("pk", filter=mine & Q(kind__in=TILE_KINDS, votes_count__gt=0)),
    )
    counts.candidates_total = items["cand"]
    counts.candidates_waiting = items["waiting"]
    counts.candidates_bear = items["bear"]
    counts.candidates_no_bear = items["no_bear"]
    counts.candidates_unsure = items["unsure"]
    counts.items_queued = items["queued"]
    counts.items_seen = items["seen"]


def _estimate_block(
    survey: Survey, version: ModelVersion, bears: SurveyBears, method: str, tiles_below: int
) -> EstimateBlock:
    """The audit tally for ``version`` and the estimate from it. Four queries."""
    jobs = InferenceJob.objects.filter(survey=survey, model_version=version).aggregate(
        t_min=Min("review_threshold"),
        t_max=Max("review_threshold"),
    )
    threshold = jobs["t_min"] if jobs["t_min"] is not None else version.review_threshold
    block = EstimateBlock(
        tally=None,
        result=None,
        method=method,
        threshold=threshold,
        thresholds_differ=jobs["t_min"] is not None and jobs["t_min"] != jobs["t_max"],
    )
    audit = Q(kind=QueueKind.AUDIT, model_version_id=version.pk)
    agg = LabelItem.objects.filter(survey=survey).aggregate(
        drawn=Count("pk", filter=audit),
        labelled=Count("pk", filter=audit & Q(status=RETIRED, consensus__in=[BEAR, NO_BEAR])),
        unsure=Count("pk", filter=audit & Q(status=RETIRED, consensus=UNSURE)),
        p_min=Min("sampling_probability", filter=audit),
        p_max=Max("sampling_probability", filter=audit),
    )
    block.rates_differ = agg["p_min"] is not None and agg["p_min"] != agg["p_max"]

    # Which confirmed bears the version's candidates cover: a point from one of its candidate
    # items, or a point inside one of its candidate tiles (the model flagged the spot even if
    # people answered elsewhere). Boxes are loaded for the frames with bears only.
    bear_frames = {b.image_id for b in bears.bears}
    boxes: dict[int, list[tuple[int, int, int, int]]] = {}
    for row in LabelItem.objects.filter(
        kind=QueueKind.CANDIDATES, model_version_id=version.pk, image_id__in=bear_frames
    ).values_list("image_id", "x0", "y0", "x1", "y1"):
        boxes.setdefault(row[0], []).append(row[1:])

    def covered(bear: Bear) -> bool:
        for p in bear.points:
            if p.kind == QueueKind.CANDIDATES and p.model_version_id == version.pk:
                return True
            for x0, y0, x1, y1 in boxes.get(bear.image_id, ()):
                if x0 <= p.x < x1 and y0 <= p.y < y1:
                    return True
        return False

    audit_frames = {
        p.image_id
        for b in bears.bears
        for p in b.points
        if p.kind == QueueKind.AUDIT and p.model_version_id == version.pk
    }
    origins = {
        image_id: (xs, ys)
        for image_id, xs, ys in FrameScore.objects.filter(
            model_version=version, image_id__in=audit_frames
        ).values_list("image_id", "xs", "ys")
    }
    k_bears = 0
    positive_items: set[int] = set()
    for bear in bears.bears:
        if covered(bear):
            block.detected += 1
            continue
        block.found_below += 1
        for p in bear.points:
            if p.kind != QueueKind.AUDIT or p.model_version_id != version.pk:
                continue
            row = bears.rows[p.item_id]
            xs, ys = origins.get(bear.image_id, (None, None))
            box = (row["x0"], row["y0"], row["x1"], row["y1"])
            if not (xs and ys and box[0] in xs and box[1] in ys):
                block.cell_fallback = True
            frame = bears.frames[bear.image_id]
            if estimate.point_in_tile_cell(
                p.x, p.y, box=box, xs=xs, ys=ys, width=frame.width, height=frame.height
            ):
                k_bears += 1
                positive_items.add(p.item_id)
                break  # a bear counts once, whatever the number of audit tiles showing it
    block.tally = AuditTally(
        drawn=agg["drawn"],
        labelled=agg["labelled"],
        unsure=agg["unsure"],
        bears=k_bears,
        tiles_with_bears=len(positive_items),
        tiles_below=tiles_below,
        sampling_probability=agg["p_min"],
    )
    if agg["drawn"] == 0:
        block.reason = (
            "No audit sample was drawn for this model version (audit rate 0, or the inference "
            "job predates it), so the miss rate cannot be estimated."
        )
    elif agg["labelled"] == 0:
        block.reason = (
            f"No audit tile is labelled yet ({agg['drawn']} drawn). The miss rate is estimated "
            "once volunteers have answered some of them."
        )
    else:
        block.result = estimate.estimate_missed(
            block.tally,
            detected=block.detected,
            found_outside_candidates=block.found_below,
            method=method,
        )
    return block


def _histogram(
    survey: Survey, version: ModelVersion, threshold: float | None, frames: list[int]
) -> Histogram:
    """Frames by max score (counted with the version's other figures), and labelled tiles by
    score and answer (one query)."""

    def binned(field_name: str):
        return Floor(F(field_name) * HIST_BINS)

    bear, no_bear = [0] * HIST_BINS, [0] * HIST_BINS
    for b, consensus, n in (
        LabelItem.objects.filter(
            survey=survey,
            model_version_id=version.pk,
            kind__in=TILE_KINDS,
            consensus__in=[BEAR, NO_BEAR],
            score__isnull=False,
        )
        .annotate(b=binned("score"))
        .values("b", "consensus")
        .annotate(n=Count("pk"))
        .values_list("b", "consensus", "n")
    ):
        target = bear if consensus == BEAR else no_bear
        target[min(max(int(b), 0), HIST_BINS - 1)] += n
    return Histogram(
        bins=HIST_BINS, frames=list(frames), bear=bear, no_bear=no_bear, threshold=threshold
    )


def _timeline(
    survey: Survey, version: ModelVersion, bears: SurveyBears, frame_agg: dict
) -> Timeline | None:
    t0, t1 = frame_agg["t_min"], frame_agg["t_max"]
    if t0 is None:
        return None
    span = t1 - t0
    # At most a few hundred bins, at least a handful for a short flight.
    if span <= timedelta(minutes=3):
        unit = "second"
    elif span <= timedelta(hours=4):
        unit = "minute"
    else:
        unit = "hour" if span <= timedelta(days=8) else "day"
    frames = (
        SurveyImage.objects.filter(survey=survey, captured_at__isnull=False)
        .annotate(bucket=Trunc("captured_at", unit, tzinfo=UTC))
        .values("bucket")
        .annotate(n=Count("pk"))
        .values_list("bucket", "n")
        .order_by()
    )
    # A detection is one candidate item (the worker queues one per merged detection), so the
    # few candidate rows give the detections per bin without joining every frame's scores.
    detections = (
        LabelItem.objects.filter(
            survey=survey,
            kind=QueueKind.CANDIDATES,
            model_version_id=version.pk,
            image__captured_at__isnull=False,
        )
        .annotate(bucket=Trunc("image__captured_at", unit, tzinfo=UTC))
        .values("bucket")
        .annotate(n=Count("pk"))
        .values_list("bucket", "n")
        .order_by()
    )
    step = {
        "second": timedelta(seconds=1),
        "minute": timedelta(minutes=1),
        "hour": timedelta(hours=1),
        "day": timedelta(days=1),
    }[unit]
    # Every bin from the first to the last, empty ones too, so gaps in the flight show as gaps.
    index: dict[datetime, Bin] = {}
    when, last = _truncate(t0, unit), _truncate(t1, unit)
    while when <= last:
        index[when] = Bin(start=when, frames=0, candidates=0, bears=0)
        when += step
    for bucket, n in frames:
        b = index.get(_truncate(bucket, unit))
        if b is not None:
            b.frames = n
    for bucket, n in detections:
        b = index.get(_truncate(bucket, unit))
        if b is not None:
            b.candidates = n
    bins = list(index.values())
    for bear in bears.bears:
        when = bears.frames[bear.image_id].captured_at
        if when is not None and _truncate(when, unit) in index:
            index[_truncate(when, unit)].bears += 1
    return Timeline(unit=unit, bins=bins, frames_without_time=frame_agg["no_time"])


def _truncate(when: datetime, unit: str) -> datetime:
    when = when.astimezone(UTC)
    if unit == "second":
        return when.replace(microsecond=0)
    if unit == "minute":
        return when.replace(second=0, microsecond=0)
    if unit == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def _map(
    survey: Survey, version: ModelVersion | None, bears: SurveyBears, frame_agg: dict
) -> MapData | None:
    if not frame_agg["gps"]:
        return None
    lat_min, lat_max = frame_agg["lat_min"], frame_agg["lat_max"]
    lon_min, lon_max, shift = frame_agg["lon_min"], frame_agg["lon_max"], 0.0
    # A survey across the antimeridian spans less in 0..360 than in -180..180.
    if frame_agg["lon360_max"] - frame_agg["lon360_min"] < lon_max - lon_min:
        lon_min, lon_max, shift = frame_agg["lon360_min"], frame_agg["lon360_max"], 360.0
    # Equirectangular: a degree of longitude is cos(latitude) of a degree of latitude. Extents
    # are in degrees of latitude; pad by 5 % and keep at least ~500 m across.
    cos_mid = max(math.cos(math.radians((lat_min + lat_max) / 2)), 0.05)
    c_lat, c_lon = (lat_min + lat_max) / 2, (lon_min + lon_max) / 2
    half_w, half_h = (lon_max - lon_min) * cos_mid / 2, (lat_max - lat_min) / 2
    pad = max(half_w, half_h) * 0.05
    half_w, half_h = max(half_w + pad, 0.0025), max(half_h + pad, 0.0025)
    lat_min, lat_max = c_lat - half_h, c_lat + half_h
    lon_min, lon_max = c_lon - half_w / cos_mid, c_lon + half_w / cos_mid
    if half_w >= half_h:
        ncols, nrows = MAP_CELLS, max(1, round(MAP_CELLS * half_h / half_w))
    else:
        nrows, ncols = MAP_CELLS, max(1, round(MAP_CELLS * half_w / half_h))
    dlon = (lon_max - lon_min) / ncols
    dlat = (lat_max - lat_min) / nrows

    def grid(qs, prefix: str = ""):
        lon = _lon360_of(prefix) if shift else F(f"{prefix}longitude")
        return (
            qs.annotate(
                gx=Floor((lon - Value(lon_min)) / Value(dlon)),
                gy=Floor((F(f"{prefix}latitude") - Value(lat_min)) / Value(dlat)),
            )
            .values("gx", "gy")
            .annotate(n=Count("pk"))
            .values_list("gx", "gy", "n")
        )

    located = Q(latitude__isnull=False, longitude__isnull=False)
    cells = [
        (min(max(int(gx), 0), ncols - 1), min(max(int(gy), 0), nrows - 1), n)
        for gx, gy, n in grid(SurveyImage.objects.filter(located, survey=survey))
    ]
    candidates = []
    if version is not None:
        open_candidates = LabelItem.objects.filter(
            survey=survey,
            kind=QueueKind.CANDIDATES,
            model_version_id=version.pk,
            image__latitude__isnull=False,
            image__longitude__isnull=False,
        ).exclude(status=RETIRED)
        candidates = [
            (min(max(int(gx), 0), ncols - 1), min(max(int(gy), 0), nrows - 1), n)
            for gx, gy, n in grid(open_candidates, "image__")
        ]
    points = []
    for bear in bears.bears:
        frame = bears.frames[bear.image_id]
        if frame.latitude is None or frame.longitude is None:
            continue
        lon = frame.longitude + (360.0 if shift and frame.longitude < 0 else 0.0)
        points.append((lon, frame.latitude, bear.image_id, frame.name))
    return MapData(
        lat_min=lat_min,
        lat_max=lat_max,
        lon_min=lon_min,
        lon_max=lon_max,
        ncols=ncols,
        nrows=nrows,
        lon_shift=shift,
        cells=cells,
        candidates=candidates,
        bears=points,
    )


def _lon360_of(prefix: str):
    field_name = f"{prefix}longitude"
    return Case(
        When(**{f"{field_name}__lt": 0}, then=F(field_name) + 360.0),
        default=F(field_name),
        output_field=FloatField(),
    )


def pr_curve(version: ModelVersion) -> PRCurve | None:
    """The version's precision-recall curve from its training metrics, if recorded."""
    metrics = version.metrics or {}
    curve = metrics.get("pr_curve") or {}
    try:
        precision = [float(v) for v in curve.get("precision") or []]
        recall = [float(v) for v in curve.get("recall") or []]
        thresholds = [float(v) for v in curve.get("thresholds") or []]
    except (TypeError, ValueError):
        return None
    if not precision or len(precision) != len(recall):
        return None
    operating = None
    if metrics.get("recall") is not None and metrics.get("precision") is not None:
        try:
            operating = (float(metrics["recall"]), float(metrics["precision"]))
        except (TypeError, ValueError):
            operating = None
    ap = metrics.get("ap")
    return PRCurve(
        name=version.name,
        version_id=version.pk,
        precision=precision,
        recall=recall,
        thresholds=thresholds,
        ap=float(ap) if isinstance(ap, (int, float)) else None,
        operating=operating,
        threshold=metrics.get("threshold", version.review_threshold),
    )


def frame_page(
    *,
    survey: Survey,
    version_id: int | None,
    per_frame: dict[int, int],
    sort: str = "score",
    descending: bool = True,
    page: int | str | None = 1,
    per_page: int = 50,
    count: int | None = None,
    scored: int | None = None,
) -> FramePage:
    """One page of the per-frame table, sorted in SQL (one query when ``count`` is given, else
    two: count and page). ``version_id``: the model version whose scores fill the score and
    candidate columns (``None``: nothing scored); ``scored``: how many frames it scored, if known.

    ``per_frame`` (confirmed bears per frame id, from the deduplicated bears: a report snapshot
    holds it) is injected as a CASE over the few frames that have bears, so sorting by it stays
    in SQL.

    Sorted by score or candidates, the frames the version scored come first (unscored ones sort
    last), so a page that lies within the first ``scored`` frames is the same page of an INNER
    JOIN with the scores, which PostgreSQL reads in the order of the ``(model_version,
    max_score)`` index: about 1 ms instead of sorting every frame of the survey (170 ms at
    100 000 frames). Other pages, and other sorts, run the LEFT JOIN."""
    from django.core.paginator import Paginator

    if sort not in FRAME_SORTS:
        sort = "score"
    by_count: dict[int, list[int]] = {}
    for image_id, n in per_frame.items():
        by_count.setdefault(n, []).append(image_id)
    confirmed = Case(
        *[When(pk__in=ids, then=Value(n)) for n, ids in sorted(by_count.items())],
        default=Value(0),
        output_field=IntegerField(),
    )
    qs = SurveyImage.objects.filter(survey=survey)
    if version_id is not None:
        qs = qs.annotate(
            fs=FilteredRelation("scores", condition=Q(scores__model_version_id=version_id))
        ).annotate(max_score=F("fs__max_score"), n_candidates=F("fs__n_candidates"))
    else:
        qs = qs.annotate(
            max_score=Value(None, output_field=FloatField()),
            n_candidates=Value(None, output_field=IntegerField()),
        )
    qs = qs.annotate(confirmed=confirmed)
    key = FRAME_SORTS[sort][0 if descending else 1]
    name = key.lstrip("-")
    order = F(name).desc(nulls_last=True) if key.startswith("-") else F(name).asc(nulls_last=True)
    qs = qs.order_by(order, "pk").values(*FRAME_COLUMNS)
    paginator = Paginator(qs, per_page)
    if count is not None:
        # The report counted the frames already; spare the paginator its COUNT(*) over the join.
        paginator.__dict__["count"] = count
    current = paginator.get_page(page)
    bottom = (current.number - 1) * per_page
    if (
        version_id is not None
        and name in ("max_score", "n_candidates")
        and scored is not None
        and bottom + per_page <= scored
    ):
        # No NULLs in an inner join: plain DESC (NULLS FIRST in PostgreSQL) orders the same
        # rows and matches a backward index scan.
        inner_order = F(name).desc() if key.startswith("-") else F(name).asc()
        inner = (
            SurveyImage.objects.filter(survey=survey, scores__model_version_id=version_id)
            .annotate(
                max_score=F("scores__max_score"),
                n_candidates=F("scores__n_candidates"),
                confirmed=confirmed,
            )
            .order_by(inner_order, "pk")
            .values(*FRAME_COLUMNS)
        )
        rows = list(inner[bottom : bottom + per_page])
    else:
        rows = list(current.object_list)
    return FramePage(rows=rows, page=current, sort=sort, descending=descending)


# --- Snapshots ------------------------------------------------------------------------------------


def report_snapshot_lookup(
    *, survey_id: int, version_id: int | None, method: str
) -> ReportSnapshot | None:
    """The stored report for the page: the asked-for version's snapshot, else the survey's
    default one (``None`` if neither exists). One query (an index lookup); the survey's current
    data generation is annotated as ``generation`` (``None``: no change recorded yet)."""
    qs = ReportSnapshot.objects.filter(survey_id=survey_id, method=method).annotate(
        generation=Subquery(
            SurveyChange.objects.filter(survey_id=OuterRef("survey_id")).values("generation")[:1]
        )
    )
    if version_id is None:
        return qs.filter(is_default=True).first()
    mine_first = Case(
        When(model_version_id=version_id, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        qs.filter(Q(is_default=True) | Q(model_version_id=version_id))
        .order_by(mine_first, "pk")
        .first()
    )
