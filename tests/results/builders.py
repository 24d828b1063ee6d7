"""Small surveys with scores and labels, built straight with the ORM (bulk where it matters).

Import as ``from tests.results.builders import ...``. Frames are 1200 x 900 px, tiled like
``inference.engine.tiling`` does (224 px tiles, stride 141 px for an 83 px bear), so a frame has
8 x 6 = 48 tiles. Score grids are float16 like the real ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from inference.models import FrameError, FrameScore, InferenceJob, ModelVersion
from labeling.models import LabelItem, QueueKind, Survey, SurveyImage, Vote

WIDTH, HEIGHT, TILE, OVERLAP = 1200, 900, 224, 83
START = datetime(2026, 4, 12, 10, 0, tzinfo=UTC)


def origins(length: int, tile: int = TILE, overlap: int = OVERLAP) -> list[int]:
    out = list(range(0, length - tile, tile - overlap))
    out.append(length - tile)
    return out


XS, YS = origins(WIDTH), origins(HEIGHT)


def tile_box(r: int, c: int) -> tuple[int, int, int, int]:
    return (XS[c], YS[r], XS[c] + TILE, YS[r] + TILE)


def make_version(
    name: str = "resnet50-v1",
    *,
    status: str = ModelVersion.Status.ACTIVE,
    threshold: float = 0.5,
    metrics: dict | None = None,
) -> ModelVersion:
    return ModelVersion.objects.create(
        name=name,
        checkpoint=f"models/{name}.pt",
        sha256=name.ljust(64, "0")[:64],
        class_names=["background", "bear"],
        init=ModelVersion.Init.FINETUNED,
        review_threshold=threshold,
        status=status,
        metrics=metrics
        if metrics is not None
        else {
            "pr_curve": {
                "precision": [1.0, 0.9, 0.7, 0.4],
                "recall": [0.2, 0.6, 0.85, 0.97],
                "thresholds": [0.9, 0.7, 0.5, 0.3],
            },
            "ap": 0.81,
            "recall": 0.85,
            "precision": 0.7,
            "threshold": threshold,
        },
    )


def make_frames(
    survey: Survey,
    n: int,
    *,
    gps: int | None = None,
    start: datetime = START,
    prefix: str = "frame",
) -> list[SurveyImage]:
    """``n`` frames, one every 2 s; the first ``gps`` (default: all) have a position along a
    track near 71.0 N, 141.0 W."""
    gps = n if gps is None else gps
    frames = [
        SurveyImage(
            survey=survey,
            file=f"frames/{prefix}_{i:05d}.jpg",
            original_name=f"{prefix}_{i:05d}.jpg",
            sha256=hashlib.sha256(f"{survey.pk}-{prefix}-{i}".encode()).hexdigest(),
            size_bytes=1000,
            format="JPEG",
            width=WIDTH,
            height=HEIGHT,
            captured_at=start + timedelta(seconds=2 * i),
            latitude=71.0 + 0.001 * i if i < gps else None,
            longitude=-141.0 + 0.0004 * (i % 50) if i < gps else None,
        )
        for i in range(n)
    ]
    SurveyImage.objects.bulk_create(frames)
    return list(SurveyImage.objects.filter(survey=survey).order_by("pk"))


def make_job(survey: Survey, version: ModelVersion, *, audit_rate: float = 0.1) -> InferenceJob:
    return InferenceJob.objects.create(
        survey=survey,
        model_version=version,
        review_threshold=version.review_threshold,
        audit_rate=audit_rate,
        status=InferenceJob.Status.SUCCEEDED,
    )


def score_frames(
    frames: list[SurveyImage],
    version: ModelVersion,
    job: InferenceJob | None = None,
    *,
    hot: dict[int, list[tuple[int, int, float]]] | None = None,
    seed: int = 0,
    candidates: dict[int, int] | None = None,
) -> list[FrameScore]:
    """A float16 grid per frame: low background scores, plus ``hot[frame_index]`` tiles
    ``(row, col, score)``. ``n_tiles_above`` follows the version's threshold."""
    rng = np.random.default_rng(seed)
    hot = hot or {}
    candidates = candidates or {}
    rows = []
    for i, frame in enumerate(frames):
        grid = (rng.random((len(YS), len(XS))) * 0.2).astype(np.float32)
        for r, c, s in hot.get(i, []):
            grid[r, c] = s
        above = int((grid >= version.review_threshold).sum())
        rows.append(
            FrameScore(
                image=frame,
                model_version=version,
                job=job,
                tile=TILE,
                rows=len(YS),
                cols=len(XS),
                ys=YS,
                xs=XS,
                grid=grid.astype(np.float16).tobytes(),
                max_score=float(grid.max()),
                n_candidates=candidates.get(i, 1 if above else 0),
                n_tiles_above=above,
            )
        )
    return FrameScore.objects.bulk_create(rows)


def item(
    frame: SurveyImage,
    version: ModelVersion | None,
    kind: str,
    box,
    *,
    score: float = 0.1,
    consensus: str = "",
    points=None,
    centre=None,
    p: float | None = None,
    votes_count: int = 0,
) -> LabelItem:
    retired = bool(consensus)
    return LabelItem.objects.create(
        kind=kind,
        survey_id=frame.survey_id,
        image=frame,
        x0=box[0],
        y0=box[1],
        x1=box[2],
        y1=box[3],
        score=score,
        model_version_id=None if version is None else version.pk,
        centre_x=None if centre is None else centre[0],
        centre_y=None if centre is None else centre[1],
        sampling_probability=p,
        status=LabelItem.Status.RETIRED if retired else LabelItem.Status.OPEN,
        consensus=consensus,
        consensus_points=points or [],
        votes_count=votes_count,
        tile_crop=f"crops/{frame.pk}/{kind}-{box[0]}-{box[1]}-tile.png",
    )


def vote(
    item_: LabelItem, user, answer: str, *, points=None, boxes=None, ms: int = 3000, **kw
) -> Vote:
    return Vote.objects.create(
        item=item_,
        user=user,
        answer=answer,
        points=points or [],
        boxes=boxes or [],
        duration_ms=ms,
        **kw,
    )


@dataclass
class DemoSurvey:
    """A small survey whose every count is known (see :func:`demo_survey`)."""

    survey: Survey
    version: ModelVersion
    frames: list[SurveyImage]
    items: dict[str, LabelItem] = field(default_factory=dict)
    users: list = field(default_factory=list)


def demo_survey(
    django_user_model,
    *,
    n_frames: int = 8,
    gps: int = 6,
    audit_labels: bool = True,
    name: str = "Beaufort 2026",
) -> DemoSurvey:
    """8 frames (6 with GPS, the last 2 without; frame 7 failed), scored by the active model.

    - frame 0: a candidate people confirmed as one bear at (500, 400) (2 bear votes), and a second
      candidate tile that shows the same bear (confirmed too): one bear, not two;
    - frame 1: a candidate answered "no bear"; frame 2: a candidate still open;
    - frame 3: an uncertain tile (below the threshold) where people found a bear at (300, 300);
    - audit: 10 tiles drawn at p = 0.1, 8 labelled (one bear at (150, 150) in frame 4's tile
      (0, 0), inside that tile's cell), 1 "unsure", 1 open. Without ``audit_labels`` none is
      labelled.
    """
    survey = Survey.objects.create(name=name, gsd_cm=2.4, animal_length_m=2.0)
    version = (
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first() or make_version()
    )
    job = make_job(survey, version)
    frames = make_frames(survey, n_frames, gps=gps)
    hot = {0: [(2, 3, 0.97), (2, 2, 0.8)], 1: [(1, 1, 0.7)], 2: [(4, 6, 0.66)]}
    score_frames(frames[: n_frames - 1], version, job, hot=hot)
    FrameError.objects.create(job=job, image=frames[n_frames - 1], message="truncated JPEG")
    users = [
        django_user_model.objects.create(username=f"{name[:10]}-vol{i}")  # no password: fast
        for i in range(3)
    ]
    d = DemoSurvey(survey=survey, version=version, frames=frames, users=users)
    C = QueueKind.CANDIDATES
    d.items["bear"] = item(
        frames[0],
        version,
        C,
        (410, 282, 634, 506),
        score=0.97,
        consensus="bear",
        points=[[500, 400]],
        centre=(505, 395),
        votes_count=2,
    )
    d.items["bear_dup"] = item(
        frames[0],
        version,
        C,
        (282, 282, 506, 506),
        score=0.8,
        consensus="bear",
        points=[[503, 404]],
        centre=(480, 390),
        votes_count=1,
    )
    d.items["no_bear"] = item(
        frames[1],
        version,
        C,
        tile_box(1, 1),
        score=0.7,
        consensus="no_bear",
        centre=(253, 253),
        votes_count=2,
    )
    d.items["open"] = item(frames[2], version, C, tile_box(4, 6), score=0.66, centre=(958, 676))
    d.items["uncertain"] = item(
        frames[3],
        version,
        QueueKind.UNCERTAIN,
        tile_box(1, 1),
        score=0.45,
        consensus="bear",
        points=[[300, 300]],
        votes_count=2,
    )
    for u in users[:2]:
        vote(d.items["bear"], u, "bear", points=[[500, 400]])
        vote(d.items["no_bear"], u, "no_bear")
        vote(d.items["uncertain"], u, "bear", points=[[300, 300]])
    vote(d.items["bear_dup"], users[2], "bear", points=[[503, 404]])
    A = QueueKind.AUDIT
    for j in range(10):
        frame = frames[4 + j % 3]
        r, c = divmod(j, len(XS))
        if not audit_labels or j == 9:
            consensus, points = "", []
        elif j == 0:
            consensus, points = "bear", [[150, 150]]
        elif j == 8:
            consensus, points = "unsure", []
        else:
            consensus, points = "no_bear", []
        it = item(
            frame,
            version,
            A,
            tile_box(r, c),
            score=0.05,
            consensus=consensus,
            points=points,
            p=0.1,
            votes_count=1 if consensus else 0,
        )
        d.items[f"audit{j}"] = it
        if consensus:
            vote(it, users[j % 3], consensus, points=points, ms=2000)
    return d
