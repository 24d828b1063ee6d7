"""Training tiles from consensus labels (the Django side of the dataset).

Three steps, kept apart so that a run can be reproduced from its snapshot alone:

1. **Plan** (:func:`plan_from_labels`, :func:`plan_from_ground_truth`): rows -> a list of
   :class:`TileSpec`, each saying which pixels make one tile (a frame and a box, or a Web photo,
   its curated box, a rotation and a target length), its label, its split and its group. No
   pixel is read.
2. **Cut** (:func:`materialise`): every spec -> a PNG in the tile cache
   (``DATA_DIR/training/tiles``), named by a hash of the source file and the spec, so a resumed
   or later run re-uses them. Each frame is decoded once for all of its tiles.
3. **Samples** (:func:`samples_for`): cached PNGs -> ``training.loop.data.TileSample``.

What goes in (the issue's "Training data"):

- positives: survey tiles whose consensus is "bear", cut around each consensus point with a
  jitter so the bear is not always centred (it stays at least half a bear length inside the
  tile, as the inference tiling guarantees for one of the overlapping tiles); the training side
  gets ``BEARSITE_CROPS_PER_BEAR`` differently jittered crops per bear, the validation side one,
  so each bear counts once in recall. Edited Web images: the curated box, rotated freely and
  rescaled so the bear's length matches the survey's expected length in pixels, in a tile.
- negatives: rejected candidates (hard negatives), audit and uncertain tiles labelled empty,
  and background tiles drawn from survey frames away from any confirmed bear and from any
  candidate nobody has cleared yet.

The validation split (invariants):

- by frame, never by tile: a frame is on the validation side when
  ``sha256(salt + ":" + frame.sha256) % 100 < BEARSITE_VAL_PERCENT``. It depends on the frame's
  content only, so it is the same in every run (models compare on the same frames) and new
  labelled frames join it at the fixed rate.
- Web images are training data only. The validation figures (recall, false positives per
  frame) are about survey imagery, the thing the model is deployed on; an edited Web photo is an
  imitation, and as its own "frame" it would inflate recall and distort false positives per
  frame. They are still grouped by source (the photographer, else the site), recorded in the
  snapshot.
- every tile's pixels are a deterministic function of its spec; jitter and background
  positions are seeded by the item or frame, never by the run, so the validation tiles of two
  runs are the same tiles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q
from PIL import Image

from labeling.models import LabelItem, QueueKind, Survey, SurveyImage, WebImage

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "bearsite-training-snapshot/1"

BEAR = "bear"
WEB = "web"
HARD_NEGATIVE = "hard_negative"
EMPTY_AUDIT = "audit_negative"
EMPTY_UNCERTAIN = "uncertain_negative"
BACKGROUND = "background"
SOURCES = (BEAR, WEB, HARD_NEGATIVE, EMPTY_AUDIT, EMPTY_UNCERTAIN, BACKGROUND)

TRAIN, VAL = "train", "val"


class DatasetError(ValueError):
    """The labels cannot make a training set; the message says what to label."""


@dataclass(frozen=True)
class TileSpec:
    """One tile, fully determined by its fields.

    Survey tiles: ``box`` is the frame box to cut (frame coordinates, inside the frame, any size;
    the loop resizes to its tile size). Web tiles: ``box`` is the curated bear box in the photo,
    ``angle`` the rotation in degrees and ``length_px`` the bear's length in the ``out``-pixel tile.
    """

    key: str
    label: int
    split: str
    group: str
    source: str
    box: tuple[int, int, int, int]
    file_sha: str
    image_id: int | None = None
    web_image_id: int | None = None
    item_id: int | None = None
    angle: float = 0.0
    length_px: float = 0.0
    out: int = 224
    # Web tiles: the survey background tile the bear is placed on (a training-side frame).
    bg_image_id: int | None = None
    bg_box: tuple[int, int, int, int] | None = None
    bg_sha: str | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        if self.bg_box is not None:
            d["bg_box"] = list(self.bg_box)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> TileSpec:
        d = {**d, "box": tuple(int(v) for v in d["box"])}
        if d.get("bg_box") is not None:
            d["bg_box"] = tuple(int(v) for v in d["bg_box"])
        return cls(**d)

    @property
    def cache_name(self) -> str:
        recipe = [
            self.file_sha,
            self.source == WEB,
            list(self.box),
            round(self.angle, 3),
            round(self.length_px, 3),
            self.out,
        ]
        if self.bg_sha:
            recipe += [self.bg_sha, list(self.bg_box or ())]
        digest = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()
        return f"{digest[:2]}/{digest}.png"

    def background(self) -> TileSpec | None:
        """The survey tile a Web bear is placed on, as a spec of its own (cached like one)."""
        if self.bg_image_id is None or self.bg_box is None or self.bg_sha is None:
            return None
        return TileSpec(
            key=f"{self.key}:bg",
            label=0,
            split=self.split,
            group=self.group,
            source=BACKGROUND,
            box=self.bg_box,
            file_sha=self.bg_sha,
            image_id=self.bg_image_id,
            out=self.out,
        )


@dataclass
class Plan:
    """The planned tiles and what was left out, with the reasons."""

    specs: list[TileSpec]
    kind: str  # "labels" | "demo"
    labels_used: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def split(self, which: str) -> list[TileSpec]:
        return [s for s in self.specs if s.split == which]


# --- The split -----------------------------------------------------------------------------------


def val_percent() -> int:
    return int(settings.BEARSITE_VAL_PERCENT)


def frame_split(frame_sha256: str, *, percent: int | None = None, salt: str | None = None) -> str:
    """``"val"`` or ``"train"`` for a frame, from its content hash alone (see the module doc)."""
    percent = val_percent() if percent is None else percent
    salt = settings.BEARSITE_VAL_SALT if salt is None else salt
    h = int(hashlib.sha256(f"{salt}:{frame_sha256}".encode()).hexdigest(), 16)
    return VAL if h % 100 < percent else TRAIN


def web_source(web: WebImage) -> str:
    """The unit a Web image is grouped by: its photographer (one photographer's shots of one
    bear are near-duplicates), else the site it came from, else the image itself."""
    if web.author.strip():
        return "author:" + web.author.strip().lower()
    for url in (web.source_page, web.source_url):
        host = urlparse(url).hostname if url else None
        if host:
            return "site:" + host.lower()
    return f"image:{web.pk}"


# --- Geometry ------------------------------------------------------------------------------------


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def frame_tile(
    frame: SurveyImage,
    key: str,
    label: int,
    split: str,
    source: str,
    box: Sequence[float],
    *,
    item_id: int | None = None,
) -> TileSpec:
    """A tile cut from a survey frame; the frame is its group (the unit of the split)."""
    return TileSpec(
        key=key,
        label=label,
        split=split,
        group=f"frame:{frame.pk}",
        source=source,
        box=tuple(int(v) for v in box),
        file_sha=frame.sha256,
        image_id=frame.pk,
        item_id=item_id,
    )


def jittered_box(
    x: float,
    y: float,
    *,
    tile: int,
    width: int,
    height: int,
    length_px: float,
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """A ``tile``-sized box holding (x, y) at least half a bear length from its edges, at a
    random offset from the centre, kept inside the frame."""
    reach = max(0.0, tile / 2 - max(length_px, 1.0) / 2)
    dx, dy = rng.uniform(-reach, reach, size=2)
    return clamp_box(x + dx - tile / 2, y + dy - tile / 2, tile=tile, width=width, height=height)


def clamp_box(
    x0: float, y0: float, *, tile: int, width: int, height: int
) -> tuple[int, int, int, int]:
    x0 = int(round(min(max(x0, 0), max(width - tile, 0))))
    y0 = int(round(min(max(y0, 0), max(height - tile, 0))))
    return (x0, y0, min(x0 + tile, width), min(y0 + tile, height))


def _near(box: Sequence[float], x: float, y: float, margin: float) -> bool:
    return box[0] - margin <= x < box[2] + margin and box[1] - margin <= y < box[3] + margin


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def background_boxes(
    frame: SurveyImage,
    *,
    count: int,
    tile: int,
    avoid_points: Sequence[tuple[float, float]],
    avoid_boxes: Sequence[Sequence[float]],
    margin: float,
    tries: int = 30,
) -> list[tuple[int, int, int, int]]:
    """Up to ``count`` tile boxes in ``frame`` no closer than ``margin`` to any avoided point
    and overlapping no avoided box. Seeded by the frame's content: the same every run."""
    rng = _rng("background", frame.sha256, tile)
    out: list[tuple[int, int, int, int]] = []
    if frame.width < tile or frame.height < tile:
        return out
    for _ in range(count * tries):
        if len(out) == count:
            break
        x0 = int(rng.integers(0, frame.width - tile + 1))
        y0 = int(rng.integers(0, frame.height - tile + 1))
        box = (x0, y0, x0 + tile, y0 + tile)
        if any(_near(box, px, py, margin) for px, py in avoid_points):
            continue
        if any(_overlap(box, b) for b in avoid_boxes):
            continue
        out.append(box)
    return out


def busyness(pixels: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> list[float]:
    """Share of each box's pixels far from the frame's median colour (summed absolute RGB
    difference > 60): plain snow scores near 0; blocks, shadows, stains and water score high."""
    median = np.median(pixels.reshape(-1, 3)[::97], axis=0)
    odd = (np.abs(pixels.astype(np.int16) - median.astype(np.int16)).sum(axis=2) > 60).astype(
        np.int32
    )
    integral = np.pad(odd.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    out = []
    for x0, y0, x1, y1 in boxes:
        count = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        out.append(float(count) / max(1, (x1 - x0) * (y1 - y0)))
    return out


def _busiest_first(frame: SurveyImage, boxes, *, hard: int, total: int):
    """``hard`` busiest of the candidate boxes, then plain draws, ``total`` in all."""
    scores = busyness(_decode_stored(frame.file.name), boxes)
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    chosen = order[:hard]
    rest = [i for i in range(len(boxes)) if i not in set(chosen)]
    return [boxes[i] for i in chosen + rest[: max(0, total - hard)]]


def _dedupe_points(
    points: Iterable[tuple[float, float]], min_distance: float
) -> list[tuple[float, float]]:
    """Points of one frame closer than ``min_distance`` are one bear (two overlapping candidate
    tiles may both have been marked)."""
    kept: list[tuple[float, float]] = []
    for x, y in points:
        if all(math.hypot(x - kx, y - ky) >= min_distance for kx, ky in kept):
            kept.append((x, y))
    return kept


def web_target_length(surveys: Iterable[Survey], tile: int) -> float:
    """The bear length (px) Web bears are scaled to: the median expected length of the surveys
    being trained on, else the fallback setting; never more than 60 % of the tile."""
    lengths = sorted(s.animal_length_px for s in surveys if s.animal_length_px)
    length = lengths[len(lengths) // 2] if lengths else settings.BEARSITE_FALLBACK_ANIMAL_LENGTH_PX
    return float(min(length, 0.6 * tile))


def _survey_length(survey: Survey | None, tile: int) -> float:
    length = survey.animal_length_px if survey is not None else None
    return float(min(length or settings.BEARSITE_FALLBACK_ANIMAL_LENGTH_PX, 0.9 * tile))


# --- Planning from consensus labels ---------------------------------------------------------------


def consensus_labels() -> Q:
    """Items whose consensus is a usable label (retired, and not "unsure")."""
    return Q(status=LabelItem.Status.RETIRED) & ~Q(consensus__in=["", LabelItem.Answer.UNSURE])


def count_consensus_labels(*, since=None) -> int:
    qs = LabelItem.objects.filter(consensus_labels())
    if since is not None:
        qs = qs.filter(retired_at__gt=since)
    return qs.count()


def plan_from_labels(*, tile: int) -> Plan:
    """Every consensus label as tile specs, plus background tiles (see the module docstring)."""
    plan = Plan(specs=[], kind="labels")
    items = list(
        LabelItem.objects.filter(consensus_labels())
        .select_related("image", "survey", "web_image", "image__survey")
        .order_by("pk")
    )
    plan.labels_used = len(items)
    per_bear = max(1, int(settings.BEARSITE_CROPS_PER_BEAR))
    bears_by_frame: dict[int, list[tuple[float, float]]] = defaultdict(list)
    frames: dict[int, SurveyImage] = {}
    surveys: dict[int, Survey] = {}
    bear_items: dict[int, list[LabelItem]] = defaultdict(list)

    for item in items:
        if item.web_image_id:
            _plan_web_item(plan, item)
            continue
        if not item.image_id:
            plan.skipped["item without a frame"] += 1
            continue
        frame = item.image
        frames[frame.pk] = frame
        surveys[frame.survey_id] = frame.survey
        split = frame_split(frame.sha256)
        if item.consensus == LabelItem.Answer.BEAR:
            bear_items[frame.pk].append(item)
        elif item.consensus == LabelItem.Answer.NO_BEAR:
            source = {
                "candidates": HARD_NEGATIVE,
                "audit": EMPTY_AUDIT,
                "uncertain": EMPTY_UNCERTAIN,
            }.get(item.kind, HARD_NEGATIVE)
            plan.specs.append(
                frame_tile(frame, f"item:{item.pk}", 0, split, source, item.box, item_id=item.pk)
            )
        else:
            plan.skipped[f"consensus {item.consensus!r} on a survey tile"] += 1

    for frame_id, its in bear_items.items():
        frame = frames[frame_id]
        length = _survey_length(frame.survey, tile)
        points = []
        for item in its:
            pts = [(float(p[0]), float(p[1])) for p in (item.consensus_points or [])]
            if not pts:
                # "A bear somewhere in this tile": the model's estimate, else the tile centre.
                if item.centre_x is not None and item.centre_y is not None:
                    pts = [(item.centre_x, item.centre_y)]
                else:
                    pts = [((item.x0 + item.x1) / 2, (item.y0 + item.y1) / 2)]
            points.extend((x, y, item.pk) for x, y in pts)
        kept = _dedupe_points([(x, y) for x, y, _ in points], length / 2)
        bears_by_frame[frame_id] = kept
        split = frame_split(frame.sha256)
        for n, (x, y) in enumerate(kept):
            item_id = next(i for px, py, i in points if (px, py) == (x, y))
            _add_bear(
                plan,
                frame,
                x,
                y,
                n=n,
                split=split,
                length=length,
                tile=tile,
                copies=per_bear if split == TRAIN else 1,
                item_id=item_id,
            )

    _plan_background(
        plan, frames=_background_frames(frames, surveys), bears=bears_by_frame, tile=tile
    )
    _finish_web(plan, surveys.values(), tile)
    return plan


def _add_bear(
    plan: Plan,
    frame: SurveyImage,
    x: float,
    y: float,
    *,
    n: int,
    split: str,
    length: float,
    tile: int,
    copies: int,
    item_id: int | None = None,
    key_prefix: str = "bear",
) -> None:
    for c in range(copies):
        rng = _rng("bear", frame.sha256, round(x, 1), round(y, 1), c)
        box = jittered_box(
            x, y, tile=tile, width=frame.width, height=frame.height, length_px=length, rng=rng
        )
        key = f"{key_prefix}:{frame.pk}:{n}:{c}"
        plan.specs.append(frame_tile(frame, key, 1, split, BEAR, box, item_id=item_id))


def _plan_web_item(plan: Plan, item: LabelItem) -> None:
    web = item.web_image
    if item.consensus != LabelItem.Answer.USABLE:
        plan.skipped["Web image judged unusable"] += 1
        return
    boxes = [b for b in (item.consensus_boxes or []) if len(b) == 4 and b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        plan.skipped["usable Web image without a bear box"] += 1
        return
    _add_web(plan, web, boxes, item_id=item.pk)


def _add_web(
    plan: Plan,
    web: WebImage,
    boxes: Sequence[Sequence[float]],
    *,
    item_id: int | None,
    copies: int | None = None,
) -> None:
    copies = max(1, int(settings.BEARSITE_WEB_COPIES if copies is None else copies))
    for b, box in enumerate(boxes):
        box = tuple(int(round(v)) for v in box)
        for c in range(copies):
            angle = float(_rng("web-angle", web.sha256, b, c).uniform(0, 360))
            plan.specs.append(
                TileSpec(
                    key=f"web:{web.pk}:{b}:{c}",
                    label=1,
                    split=TRAIN,
                    group="web:" + web_source(web),
                    source=WEB,
                    box=box,
                    file_sha=web.sha256,
                    web_image_id=web.pk,
                    item_id=item_id,
                    angle=angle,
                )
            )


def _finish_web(plan: Plan, surveys: Iterable[Survey], tile: int) -> None:
    """Once the surveys and the background tiles are known, each Web tile gets the survey's bear
    length, the tile size, and a training-side survey background tile to be placed on (chosen by
    the Web tile's key, so the same every run)."""
    surveys = list(surveys) or list(Survey.objects.filter(archived=False))
    length = web_target_length(surveys, tile)
    grounds = [s for s in plan.specs if s.source == BACKGROUND and s.split == TRAIN]
    out = []
    for s in plan.specs:
        if s.source == WEB:
            extra: dict = {"length_px": length, "out": tile}
            if grounds:
                g = grounds[int(hashlib.sha256(s.key.encode()).hexdigest(), 16) % len(grounds)]
                extra |= {"bg_image_id": g.image_id, "bg_box": g.box, "bg_sha": g.file_sha}
            s = TileSpec(**{**asdict(s), **extra})
        out.append(s)
    plan.specs = out


def _background_frames(
    frames: dict[int, SurveyImage], surveys: dict[int, Survey]
) -> list[SurveyImage]:
    """The frames people have labelled tiles of, plus a fixed sample of each of their surveys'
    other frames (chosen by content hash, so the same ones every run)."""
    chosen = dict(frames)
    per_survey = int(settings.BEARSITE_BACKGROUND_FRAMES_PER_SURVEY)
    for survey_id in surveys:
        others = SurveyImage.objects.filter(survey_id=survey_id).exclude(pk__in=list(frames))
        ranked = sorted(
            others.only("pk", "sha256", "width", "height", "survey_id"),
            key=lambda f: hashlib.sha256(f"bg:{f.sha256}".encode()).hexdigest(),
        )
        for f in ranked[
            : max(0, per_survey - sum(1 for x in frames.values() if x.survey_id == survey_id))
        ]:
            chosen[f.pk] = f
    return sorted(chosen.values(), key=lambda f: f.pk)


def _plan_background(
    plan: Plan,
    *,
    frames: list[SurveyImage],
    bears: dict[int, list[tuple[float, float]]],
    tile: int,
    per_frame: int | None = None,
    extra_avoid: dict[int, list[Sequence[float]]] | None = None,
    hard_per_frame: int = 0,
) -> None:
    per_frame = int(settings.BEARSITE_BACKGROUND_PER_FRAME) if per_frame is None else per_frame
    if per_frame <= 0 or not frames:
        return
    unresolved: dict[int, list[Sequence[float]]] = defaultdict(list)
    if extra_avoid is None:
        # Tiles the model flagged that nobody has cleared may hold a bear: never "background".
        for image_id, *box in (
            LabelItem.objects.filter(image_id__in=[f.pk for f in frames])
            .exclude(consensus_labels() & Q(consensus=LabelItem.Answer.NO_BEAR))
            .values_list("image_id", "x0", "y0", "x1", "y1")
        ):
            unresolved[image_id].append(box)
    else:
        unresolved.update(extra_avoid)
    surveys = Survey.objects.in_bulk({f.survey_id for f in frames})
    for frame in frames:
        length = _survey_length(surveys.get(frame.survey_id), tile)
        split = frame_split(frame.sha256)
        hard = hard_per_frame if split == TRAIN else 0
        boxes = background_boxes(
            frame,
            count=per_frame + (5 * hard if hard else 0),
            tile=tile,
            avoid_points=bears.get(frame.pk, []),
            avoid_boxes=unresolved.get(frame.pk, []),
            margin=1.5 * length,
        )
        if hard:
            boxes = _busiest_first(frame, boxes, hard=hard, total=per_frame)
        for n, box in enumerate(boxes):
            plan.specs.append(frame_tile(frame, f"bg:{frame.pk}:{n}", 0, split, BACKGROUND, box))


# --- Planning from the demo survey's ground truth --------------------------------------------------


def plan_from_ground_truth(
    *,
    survey: Survey,
    ground_truth_dir: str | os.PathLike,
    tile: int,
    background_per_frame: int,
    crops_per_bear: int | None = None,
    web_copies: int | None = None,
    hard_fraction: float = 0.0,
    rejected_from_versions: Sequence[int] = (),
) -> Plan:
    """The demo's simulated curated labels (no volunteer has labelled anything at first start):
    positives from the ground truth of the *training* frames' bears, edited Web images from the
    demo photos with their generator boxes as the curated boxes, negatives from background tiles
    away from every bear (and its shadow) in the training frames. Held-out (validation) frames
    give the validation split: their bears and background, never trained on.

    ``hard_fraction`` of each training frame's background tiles are the "busiest" of many
    candidate places (most pixels far from the frame's typical colour: ice blocks and their
    shadows, stains, seals, open water), standing in for the rejected candidates that people
    would supply: still background by the ground truth, just the kind a model confuses. The
    validation frames' background stays a plain random sample, so the figures are not tilted.

    ``rejected_from_versions``: simulated review rounds. The candidates those model versions put
    in the review queue on the *training* frames, where the ground truth has no bear in the
    tile, become hard negatives, exactly as volunteers' "no bear" answers would (see
    ``plan_from_labels``); candidates holding a bear are already covered by the bear crops.
    Candidates on held-out frames are never used."""
    from labeling.demo.synth import load_manifest

    manifest = load_manifest(Path(ground_truth_dir))
    plan = Plan(specs=[], kind="demo")
    plan.notes.append(
        "Labels simulated from the demo survey's ground truth (ground_truth.json): no volunteer "
        "has labelled anything yet. Bears of the held-out frames are used for validation only."
    )
    frames = {f.original_name: f for f in survey.images.all().select_related("survey")}
    missing = [name for name in manifest.frames if name not in frames]
    if missing:
        raise DatasetError(
            f"{len(missing)} ground-truth frames are not in {survey.name!r} (e.g. {missing[0]})"
        )
    per_bear = max(
        1, int(settings.BEARSITE_CROPS_PER_BEAR if crops_per_bear is None else crops_per_bear)
    )
    bears: dict[int, list[tuple[float, float]]] = defaultdict(list)
    avoid: dict[int, list[Sequence[float]]] = defaultdict(list)
    held_out = []
    for name in manifest.frames:
        frame = frames[name]
        split = frame_split(frame.sha256)
        for bear in manifest.bears_in(name):
            bears[frame.pk].append((bear.x, bear.y))
            m = bear.shadow_margin_px
            avoid[frame.pk].append(
                (bear.box[0] - m, bear.box[1] - m, bear.box[2] + m, bear.box[3] + m)
            )
        if split == VAL:
            held_out.append(frame)
            _plan_val_grid(plan, frame, manifest.bears_in(name), avoid[frame.pk], tile=tile)
            continue
        for n, bear in enumerate(manifest.bears_in(name)):
            _add_bear(
                plan,
                frame,
                bear.x,
                bear.y,
                n=n,
                split=split,
                length=bear.length_px,
                tile=tile,
                copies=per_bear,
                key_prefix="gt-bear",
            )
    plan.labels_used = len(manifest.bears)
    if held_out:
        plan.notes.append(
            f"Validation tiles are the {len(held_out)} held-out frames' own inference tiles: for "
            "each bear the tiles that hold it (found when any is), and every tile clear of bears "
            "and their shadows, so validation false positives per frame count whole frames."
        )
    hard = int(round(background_per_frame * hard_fraction))
    _plan_background(
        plan,
        frames=[frames[n] for n in manifest.frames if frames[n] not in held_out],
        bears=bears,
        tile=tile,
        per_frame=background_per_frame,
        extra_avoid=avoid,
        hard_per_frame=hard,
    )
    if hard:
        plan.notes.append(
            f"{hard} of the {background_per_frame} background tiles of each training frame are "
            "the busiest places away from bears (blocks, shadows, stains), standing in for "
            "rejected candidates."
        )
    if rejected_from_versions:
        rejected = _simulated_rejections(
            plan,
            frames=[frames[n] for n in manifest.frames],
            bears=bears,
            version_ids=list(rejected_from_versions),
        )
        names = ", ".join(f"#{v}" for v in rejected_from_versions)
        plan.notes.append(
            f"Simulated review of the candidates of model version(s) {names} on the training "
            f"frames: {rejected} without a bear (by the ground truth) are hard negatives."
        )
    webs = {w.original_name: w for w in WebImage.objects.all()}
    for photo in manifest.web:
        if not photo.is_bear or photo.box is None:
            continue
        web = webs.get(photo.file)
        if web is None:
            plan.skipped["demo Web photo not ingested"] += 1
            continue
        _add_web(plan, web, [photo.box], item_id=None, copies=web_copies)
    _finish_web(plan, [survey], tile)
    return plan


def _plan_val_grid(
    plan: Plan,
    frame: SurveyImage,
    bears: Sequence,
    avoid: Sequence[Sequence[float]],
    *,
    tile: int,
) -> None:
    """A held-out frame as inference sees it: its tiles on the survey's grid (same overlap).
    Each bear: the grid tiles holding its whole box (else the one nearest), one positive
    instance that counts as found when any of them is flagged, as in inference. Every grid
    tile overlapping no bear nor its shadow: a negative. Tiles that hold part of a bear are
    neither (a person might answer either way)."""
    from inference.engine.tiling import plan_tiles

    if frame.width < tile or frame.height < tile:
        return
    grid = plan_tiles(
        frame.height, frame.width, tile=tile, min_overlap=frame.survey.min_tile_overlap_px
    )
    boxes = [grid.box(r, c) for r in range(grid.rows) for c in range(grid.cols)]

    def key(box, bear):
        inside = (
            box[0] <= bear.box[0]
            and bear.box[2] <= box[2]
            and box[1] <= bear.box[1]
            and bear.box[3] <= box[3]
        )
        off = abs((box[0] + box[2]) / 2 - bear.x) + abs((box[1] + box[3]) / 2 - bear.y)
        return (not inside, off)

    for n, bear in enumerate(bears):
        ranked = sorted(boxes, key=lambda b: key(b, bear))
        holding = [b for b in ranked if not key(b, bear)[0]] or ranked[:1]
        # Every grid tile holding the bear, one instance: found when any of them is flagged.
        for k, box in enumerate(holding):
            name = f"gt-bear-grid:{frame.pk}:{n}~{k}"
            plan.specs.append(frame_tile(frame, name, 1, VAL, BEAR, box))
    for n, box in enumerate(boxes):
        if not any(_overlap(box, a) for a in avoid):
            plan.specs.append(frame_tile(frame, f"grid:{frame.pk}:{n}", 0, VAL, BACKGROUND, box))


def _simulated_rejections(
    plan: Plan,
    *,
    frames: list[SurveyImage],
    bears: dict[int, list[tuple[float, float]]],
    version_ids: list[int],
) -> int:
    """Candidates of ``version_ids`` on training frames whose tile holds no true bear, as the
    hard negatives volunteers would have made of them (a tile two models raised, once).
    Returns how many."""
    train_frames = {f.pk: f for f in frames if frame_split(f.sha256) == TRAIN}
    items = LabelItem.objects.filter(
        kind=QueueKind.CANDIDATES,
        model_version_id__in=version_ids,
        image_id__in=list(train_frames),
    ).order_by("pk")
    count = 0
    seen: set[tuple] = set()
    for item in items:
        frame = train_frames[item.image_id]
        if (item.image_id, item.box) in seen:
            continue
        seen.add((item.image_id, item.box))
        # A tile showing part of a bear would be answered "bear": half a bear length of margin.
        margin = _survey_length(frame.survey, item.x1 - item.x0) / 2
        if any(_near(item.box, x, y, margin) for x, y in bears.get(frame.pk, [])):
            continue
        key = f"rejected:{item.pk}"
        plan.specs.append(
            frame_tile(frame, key, 0, TRAIN, HARD_NEGATIVE, item.box, item_id=item.pk)
        )
        count += 1
    return count


# --- Checks and the snapshot --------------------------------------------------------------------


def check_plan(plan: Plan) -> None:
    """Refuse a set the loop cannot learn or be measured on, saying what to label."""
    problems = []
    train, val = plan.split(TRAIN), plan.split(VAL)
    if not any(s.label == 1 for s in train):
        problems.append(
            "the training side holds no bear (confirm bears in candidates, or curate Web images)"
        )
    if not any(s.label == 0 for s in train):
        problems.append("the training side holds no background tiles")
    if not any(s.label == 1 for s in val):
        problems.append(
            f"no confirmed bear lies in a validation frame (about {val_percent()} % of frames are "
            "held out), so recall cannot be measured: label more bears"
        )
    if problems:
        raise DatasetError("Cannot train yet: " + "; ".join(problems) + ".")


def summarise(plan: Plan) -> dict:
    counts: dict[str, dict[str, int]] = {TRAIN: Counter(), VAL: Counter()}
    frames: dict[str, set] = {TRAIN: set(), VAL: set()}
    for s in plan.specs:
        counts[s.split][s.source] += 1
        if s.image_id is not None:
            frames[s.split].add(s.image_id)
    return {
        "kind": plan.kind,
        "labels_used": plan.labels_used,
        "tiles": {k: dict(v) for k, v in counts.items()},
        "train_tiles": len(plan.split(TRAIN)),
        "val_tiles": len(plan.split(VAL)),
        "train_positives": sum(1 for s in plan.split(TRAIN) if s.label == 1),
        "val_positives": sum(1 for s in plan.split(VAL) if s.label == 1),
        "frames": {TRAIN: len(frames[TRAIN]), VAL: len(frames[VAL])},
        "val_frame_ids": sorted(frames[VAL])[:500],
        "val_percent": val_percent(),
        "val_salt": settings.BEARSITE_VAL_SALT,
        "skipped": dict(plan.skipped),
        "notes": list(plan.notes),
    }


def snapshot_document(plan: Plan, summary: dict) -> dict:
    return {
        "format": SNAPSHOT_FORMAT,
        "summary": summary,
        "items": [s.as_dict() for s in plan.specs],
    }


def specs_from_document(doc: dict) -> list[TileSpec]:
    if doc.get("format") != SNAPSHOT_FORMAT:
        raise DatasetError(f"not a training snapshot (format {doc.get('format')!r})")
    return [TileSpec.from_dict(d) for d in doc["items"]]


# --- Cutting tiles --------------------------------------------------------------------------------


def tile_cache_dir() -> Path:
    return Path(settings.BEARSITE_TRAINING_DIR) / "tiles"


def edit_web_photo(
    photo: np.ndarray,
    box: Sequence[float],
    *,
    length_px: float,
    angle_deg: float,
    out: int,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """The curated box of a Web photo made to look like a survey tile: rescaled so the bear's
    length (the box's longer side) is ``length_px``, rotated by ``angle_deg``, centred in an
    ``out`` x ``out`` tile.

    With a ``background`` (a survey tile, ``out`` px square) the bear, with a little of its own
    surroundings, is placed on it through a feathered elliptical mask: the tile is survey ice
    with a Web bear on it, so nothing but the bear tells it from a background tile (a photo's
    sky, or a mirrored copy of the bear, would be a shortcut the network could learn). Without
    one, the photo's own surroundings fill the tile (mirrored where the photo ends)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = length_px / max(x1 - x0, y1 - y0, 1.0)
    if background is not None:
        return _place_on_background(photo, (x0, y0, x1, y1), scale, angle_deg, background, out)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # Source half-width that covers the output tile at any rotation (half its diagonal).
    half = int(math.ceil(out / scale * math.sqrt(2) / 2)) + 2
    crop = _crop_padded(photo, int(cx) - half, int(cy) - half, int(cx) + half, int(cy) + half)
    side = max(out, int(round(2 * half * scale)))
    img = Image.fromarray(crop).resize((side, side), Image.Resampling.LANCZOS)
    img = img.rotate(angle_deg, resample=Image.Resampling.BILINEAR)
    left = (side - out) // 2
    return np.asarray(img.crop((left, left, left + out, left + out)).convert("RGB"))


def _crop_padded(photo: np.ndarray, ix0: int, iy0: int, ix1: int, iy1: int) -> np.ndarray:
    h, w = photo.shape[:2]
    crop = photo[max(iy0, 0) : min(iy1, h), max(ix0, 0) : min(ix1, w)]
    pads = ((max(0, -iy0), max(0, iy1 - h)), (max(0, -ix0), max(0, ix1 - w)), (0, 0))
    if any(p for pair in pads for p in pair):
        crop = np.pad(crop, pads, mode="reflect" if min(crop.shape[:2]) > 1 else "edge")
    return np.ascontiguousarray(crop)


def _place_on_background(photo, box, scale, angle_deg, background, out) -> np.ndarray:
    from PIL import ImageDraw, ImageFilter

    x0, y0, x1, y1 = box
    # The box grown by 15 % keeps the bear's outline and a rim of its own ground to blend.
    gx, gy = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    ix0, iy0 = int(math.floor(x0 - gx)), int(math.floor(y0 - gy))
    ix1, iy1 = int(math.ceil(x1 + gx)), int(math.ceil(y1 + gy))
    crop = _crop_padded(photo, ix0, iy0, ix1, iy1)
    w = max(2, int(round(crop.shape[1] * scale)))
    h = max(2, int(round(crop.shape[0] * scale)))
    bear = Image.fromarray(crop).convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, w - 1, h - 1), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.06 * min(w, h))))
    bear = bear.rotate(angle_deg, resample=Image.Resampling.BILINEAR, expand=True)
    mask = mask.rotate(angle_deg, resample=Image.Resampling.BILINEAR, expand=True)
    ground = Image.fromarray(np.ascontiguousarray(background)).convert("RGB")
    if ground.size != (out, out):
        ground = ground.resize((out, out), Image.Resampling.BILINEAR)
    ground.paste(bear, ((out - bear.width) // 2, (out - bear.height) // 2), mask)
    return np.asarray(ground)


def _write_png(array: np.ndarray, path: Path) -> None:
    """Atomic: a worker killed mid-write leaves no half tile in the cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(np.ascontiguousarray(array)).save(fh, format="PNG", compress_level=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decode_stored(name: str) -> np.ndarray:
    from inference.engine.decode import decode_frame

    with default_storage.open(name, "rb") as fh:
        return decode_frame(fh, name=name)


def materialise(specs: Sequence[TileSpec], *, cache_dir: Path | None = None) -> dict[str, Path]:
    """Cut every spec's tile into the cache (skipping those already there); key -> PNG path.

    Each frame (or Web photo) is decoded once for all of its missing tiles and dropped before
    the next, so memory holds one frame at a time. Survey tiles are cut first: a Web tile is
    placed on a survey background tile read back from the cache."""
    cache = cache_dir or tile_cache_dir()
    paths = {s.key: cache / s.cache_name for s in specs}
    grounds = {
        s.key: s.background() for s in specs if s.source == WEB and s.background() is not None
    }
    _cut([g for g in grounds.values() if not (cache / g.cache_name).exists()], cache)
    _cut([s for s in specs if not paths[s.key].exists()], cache, grounds)
    return paths


def _cut(
    specs: Sequence[TileSpec], cache: Path, grounds: dict[str, TileSpec] | None = None
) -> None:
    todo: dict[tuple[str, int], list[TileSpec]] = defaultdict(list)
    for s in specs:
        todo[("web", s.web_image_id) if s.source == WEB else ("frame", s.image_id)].append(s)
    for (kind, pk), group in sorted(todo.items(), key=lambda kv: kv[0][0] == "web"):
        obj = (WebImage if kind == "web" else SurveyImage).objects.filter(pk=pk).first()
        if obj is None:
            raise DatasetError(f"{kind} {pk} of the training set no longer exists")
        pixels = _decode_stored(obj.file.name)
        for s in group:
            if s.source == WEB:
                ground = (grounds or {}).get(s.key)
                background = None
                if ground is not None:
                    with Image.open(cache / ground.cache_name) as im:
                        background = np.asarray(im.convert("RGB"))
                tile = edit_web_photo(
                    pixels,
                    s.box,
                    length_px=s.length_px,
                    angle_deg=s.angle,
                    out=s.out,
                    background=background,
                )
            else:
                x0, y0, x1, y1 = s.box
                tile = pixels[max(y0, 0) : y1, max(x0, 0) : x1]
            _write_png(tile, cache / s.cache_name)
        del pixels


def samples_for(specs: Sequence[TileSpec], paths: dict[str, Path]) -> list:
    from training.loop.data import file_sample

    return [file_sample(paths[s.key], label=s.label, group=s.group, key=s.key) for s in specs]
