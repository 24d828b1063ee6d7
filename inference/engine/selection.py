"""From a frame's score grid to what people are asked about (numpy only, no torch).

Three kinds of queued tile, each with a rule a reviewer can check:

- candidates (:func:`merge_detections`): tiles scoring at or above the review threshold. Tiles that
  show the same animal overlap each other, so they are merged into one :class:`Detection` and the
  animal is asked about once.
- uncertain (:func:`select_uncertain`): the ``n`` tiles below the threshold nearest to it, the
  ones a better model would most likely flip. Tiles at or above the threshold are excluded: they
  are already candidates.
- audit (:func:`audit_sample`): a seeded uniform random sample of the tiles below the threshold,
  each included independently with probability ``rate``, which is recorded with the tile so the
  miss rate (bears among tiles nobody was asked about) can be estimated without bias later.

A tile may be both uncertain and audited; :func:`plan_review` asks about it once and keeps it in
the audit sample (whose statistics need every sampled tile).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .predictor import FrameScores
from .tiling import Box, TileGrid


@dataclass
class Detection:
    """One animal (or one group of animals close together), merged from candidate tiles.

    ``x, y``: estimated position in frame pixels (oriented frame), the score-weighted mean of the
    merged tiles' centres. ``box``: the best tile's box ``(left, top, right, bottom)`` - the tile a
    person is shown at full resolution. ``extent``: the union of the merged tiles' boxes.
    ``score``: the best tile's score. ``tiles``: the merged ``(row, col)`` tiles, best first.
    """

    x: float
    y: float
    box: Box
    score: float
    tiles: list[tuple[int, int]]
    extent: Box = (0, 0, 0, 0)
    tile_scores: list[float] = field(default_factory=list)


def _touch(a: Box, b: Box) -> bool:
    """Boxes that overlap or share an edge or corner (half-open boxes)."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def merge_detections(scores: FrameScores, threshold: float) -> list[Detection]:
    """Candidate tiles (score >= ``threshold``) merged into detections, best first.

    Rule: the best unmerged candidate founds a detection and takes every unmerged candidate whose
    box overlaps or touches its own. Tiles that show one animal all contain it, so they overlap the
    best of them and merge; yet a long run of candidates (say, an ice ridge) is split into
    detections no wider than three tiles, so no single question covers half a frame.
    Deterministic: ties are broken by (row, col).
    """
    grid, tiles = scores.grid, scores.tiles
    rows, cols = np.nonzero(grid >= threshold)
    if rows.size == 0:
        return []
    vals = grid[rows, cols]
    # Stable order: score descending, then row, then column.
    order = np.lexsort((cols, rows, -vals.astype(np.float64)))
    cand = [(int(rows[i]), int(cols[i]), float(vals[i])) for i in order]
    taken = [False] * len(cand)
    detections: list[Detection] = []
    for i, (r, c, s) in enumerate(cand):
        if taken[i]:
            continue
        seed_box = tiles.box(r, c)
        members = [(r, c, s)]
        taken[i] = True
        for j in range(i + 1, len(cand)):
            if not taken[j] and _touch(seed_box, tiles.box(cand[j][0], cand[j][1])):
                taken[j] = True
                members.append(cand[j])
        detections.append(_detection(tiles, members))
    return detections


def _detection(tiles: TileGrid, members: list[tuple[int, int, float]]) -> Detection:
    weights = np.array([s for _, _, s in members], dtype=np.float64)
    centres = np.array([tiles.centre(r, c) for r, c, _ in members], dtype=np.float64)
    x, y = (centres * weights[:, None]).sum(axis=0) / weights.sum()
    boxes = np.array([tiles.box(r, c) for r, c, _ in members])
    extent = (
        int(boxes[:, 0].min()),
        int(boxes[:, 1].min()),
        int(boxes[:, 2].max()),
        int(boxes[:, 3].max()),
    )
    r0, c0, s0 = members[0]
    return Detection(
        x=float(x),
        y=float(y),
        box=tiles.box(r0, c0),
        score=s0,
        tiles=[(r, c) for r, c, _ in members],
        extent=extent,
        tile_scores=[s for _, _, s in members],
    )


def select_uncertain(scores: FrameScores, threshold: float, n: int) -> list[tuple[int, int, float]]:
    """The ``n`` tiles below ``threshold`` closest to it, as ``(row, col, score)``, closest first
    (ties by row, col). Fewer if the frame has fewer tiles below the threshold."""
    if n <= 0:
        return []
    grid = scores.grid
    rows, cols = np.nonzero(grid < threshold)
    if rows.size == 0:
        return []
    gap = threshold - grid[rows, cols].astype(np.float64)
    order = np.lexsort((cols, rows, gap))[:n]
    return [(int(rows[i]), int(cols[i]), float(grid[rows[i], cols[i]])) for i in order]


def audit_sample(
    scores: FrameScores, threshold: float, rate: float, seed: int
) -> list[tuple[int, int, float, float]]:
    """A uniform random sample of tiles below ``threshold`` as ``(row, col, score, probability)``.

    Each tile below the threshold is included independently with probability ``rate`` (recorded
    as ``probability``), so ``1 / rate`` is its weight in a miss-rate estimate. The same ``seed``
    and grid shape give the same draws; one uniform number is drawn per tile of the grid, whatever
    its score, so whether a tile is sampled does not depend on the other tiles' scores. Use
    :func:`frame_seed` to derive a per-frame seed that is stable across processes.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"audit rate must be between 0 and 1, not {rate}")
    grid = scores.grid
    draws = np.random.Generator(np.random.PCG64(seed)).random(grid.shape)
    rows, cols = np.nonzero((grid < threshold) & (draws < rate))
    return [
        (int(r), int(c), float(grid[r, c]), float(rate)) for r, c in zip(rows, cols, strict=True)
    ]


def frame_seed(base: int, key: str) -> int:
    """A 63-bit seed for one frame from a job's ``base`` seed and a stable frame key (for example
    the image's id or checksum). Uses SHA-256, not ``hash()``, which differs between processes."""
    digest = hashlib.sha256(f"{base}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class ReviewPlan:
    """What to queue for one frame; no tile appears twice across the three lists."""

    detections: list[Detection]
    uncertain: list[tuple[int, int, float]]
    audit: list[tuple[int, int, float, float]]


def plan_review(
    scores: FrameScores,
    *,
    threshold: float,
    uncertain: int,
    audit_rate: float,
    seed: int,
) -> ReviewPlan:
    """Candidates, uncertain tiles and the audit sample of one frame, each tile asked once.

    Tiles below the threshold are never in a detection, so only uncertain and audit can meet;
    a tile in both stays in the audit sample (its inclusion probability must hold for every
    sampled tile) and leaves the uncertain list, which is then topped up to ``uncertain`` tiles.
    """
    audit = audit_sample(scores, threshold, audit_rate, seed)
    audited = {(r, c) for r, c, _, _ in audit}
    pool = select_uncertain(scores, threshold, uncertain + len(audited))
    unc = [t for t in pool if (t[0], t[1]) not in audited][: max(uncertain, 0)]
    return ReviewPlan(detections=merge_detections(scores, threshold), uncertain=unc, audit=audit)
