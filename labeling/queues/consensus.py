"""Consensus, retirement and gold rules: pure functions, no Django, no database.

An item's counting votes (``VoteIn``) and its queue's rules (``QueueRules``) go in; a ``Decision``
comes out. The services call ``decide`` after every vote and every undo, so the decision is always
a function of the votes that count: undoing a vote recomputes it, nothing is patched by hand.

Rules, checked in this order:

1. A reviewer's answer (``is_review``) is final: the latest review decides.
2. Quick "no bear": when ``no_bear_below`` is set and the model score is below it, one "no bear"
   vote retires the item, provided nobody said "bear" or "unsure".
3. Agreement: ``agree`` votes with the same answer retire the item. Bear votes agree only when
   their points agree (same number of points, each matched within ``point_tolerance_px``; a bear
   vote without points means "a bear somewhere in this tile" and agrees with any bear vote).
   "Usable" votes on a Web image agree when their boxes match (IoU >= ``box_iou``). "Unsure"
   never agrees with anything. Two answers both reaching ``agree`` is a disagreement.
4. Once ``votes_needed`` votes are in and nothing above retired the item: with
   ``weighted_majority`` set, an answer whose share of the voters' weights (their gold accuracy)
   reaches it retires the item; otherwise the item goes to adjudication (a reviewer).
5. Otherwise the item stays open for more votes.

``agree`` may exceed ``votes_needed`` on purpose: the audit queue needs one vote, and only the
quick "no bear" rule can retire an audit tile on it, so a bear found in an audit tile always
reaches a reviewer.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

BEAR = "bear"
NO_BEAR = "no_bear"
UNSURE = "unsure"
USABLE = "usable"
UNUSABLE = "unusable"

OPEN = "open"
ADJUDICATION = "adjudication"
RETIRED = "retired"

Point = tuple[float, float]
Box = tuple[float, float, float, float]

# Exact matching of points is brute force over permutations; beyond this many points per vote
# (a herd, never seen in one tile of polar bears) a greedy nearest-pair matching is used.
_EXACT_MATCH_MAX = 6


@dataclass(frozen=True)
class VoteIn:
    answer: str
    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()
    reason: str = ""
    weight: float = 1.0
    is_review: bool = False


@dataclass(frozen=True)
class QueueRules:
    votes_needed: int = 2
    agree: int = 2
    no_bear_below: float | None = None
    point_tolerance_px: float = 40.0
    box_iou: float = 0.5
    weighted_majority: float | None = None


@dataclass(frozen=True)
class Decision:
    status: str
    answer: str = ""
    points: list[list[float]] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    reason: str = ""
    why: str = ""


# --- Matching -----------------------------------------------------------------------------------


def _distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _assign(a: Sequence, b: Sequence, ok, cost) -> list[int] | None:
    """A one-to-one assignment of ``b`` to ``a`` (``result[i]`` is the index in ``b`` matched to
    ``a[i]``) where every pair is ``ok``, with the lowest total ``cost``; None if there is none
    or the counts differ."""
    if len(a) != len(b):
        return None
    n = len(a)
    if n <= _EXACT_MATCH_MAX:
        best, best_cost = None, math.inf
        for perm in itertools.permutations(range(n)):
            if all(ok(a[i], b[perm[i]]) for i in range(n)):
                total = sum(cost(a[i], b[perm[i]]) for i in range(n))
                if total < best_cost:
                    best, best_cost = list(perm), total
        return best
    pairs = sorted((cost(a[i], b[j]), i, j) for i in range(n) for j in range(n))
    result: list[int | None] = [None] * n
    used: set[int] = set()
    for _, i, j in pairs:
        if result[i] is None and j not in used and ok(a[i], b[j]):
            result[i] = j
            used.add(j)
    return None if any(r is None for r in result) else result  # type: ignore[return-value]


def points_match(a: Sequence[Point], b: Sequence[Point], tolerance: float) -> bool:
    """Two sets of bear points agree: same count, each paired within ``tolerance``. An empty set
    ("a bear somewhere here") agrees with any."""
    if not a or not b:
        return True
    return _assign(a, b, lambda p, q: _distance(p, q) <= tolerance, _distance) is not None


def boxes_match(a: Sequence[Box], b: Sequence[Box], min_iou: float) -> bool:
    if not a or not b:
        return not a and not b
    return _assign(a, b, lambda p, q: iou(p, q) >= min_iou, lambda p, q: 1 - iou(p, q)) is not None


def _largest_group(votes: list[VoteIn], attr: str, match) -> tuple[list[VoteIn], VoteIn | None]:
    """The largest set of votes that agree with one reference vote; votes without geometry join
    any group. Returns (group, reference); the reference is None when no vote has geometry."""
    placed = [v for v in votes if getattr(v, attr)]
    loose = [v for v in votes if not getattr(v, attr)]
    if not placed:
        return list(votes), None
    best: list[VoteIn] = []
    best_ref = placed[0]
    for ref in placed:
        group = [v for v in placed if match(getattr(ref, attr), getattr(v, attr))]
        if len(group) > len(best):
            best, best_ref = group, ref
    return best + loose, best_ref


def _merge(group: list[VoteIn], ref: VoteIn | None, attr: str, ok, cost) -> list[list[float]]:
    """Average each geometry of the reference with its partners in the other votes."""
    if ref is None:
        return []
    base = getattr(ref, attr)
    sums = [list(map(float, g)) for g in base]
    counts = [1] * len(base)
    for v in group:
        if v is ref or not getattr(v, attr):
            continue
        perm = _assign(base, getattr(v, attr), ok, cost)
        if perm is None:
            continue
        for i, j in enumerate(perm):
            other = getattr(v, attr)[j]
            sums[i] = [s + float(o) for s, o in zip(sums[i], other, strict=True)]
            counts[i] += 1
    return [[round(s / counts[i], 1) for s in sums[i]] for i in range(len(base))]


# --- The decision -------------------------------------------------------------------------------


def _bear_group(votes: list[VoteIn], rules: QueueRules) -> tuple[list[VoteIn], list[list[float]]]:
    bears = [v for v in votes if v.answer == BEAR]
    if not bears:
        return [], []
    tol = rules.point_tolerance_px
    group, ref = _largest_group(bears, "points", lambda a, b: points_match(a, b, tol))
    merged = _merge(group, ref, "points", lambda p, q: _distance(p, q) <= tol, _distance)
    return group, merged


def _usable_group(votes: list[VoteIn], rules: QueueRules) -> tuple[list[VoteIn], list[list[float]]]:
    usable = [v for v in votes if v.answer == USABLE]
    if not usable:
        return [], []
    group, ref = _largest_group(usable, "boxes", lambda a, b: boxes_match(a, b, rules.box_iou))
    merged = _merge(
        group, ref, "boxes", lambda p, q: iou(p, q) >= rules.box_iou, lambda p, q: 1 - iou(p, q)
    )
    return group, merged


def _common_reason(votes: list[VoteIn]) -> str:
    reasons = Counter(v.reason for v in votes if v.reason)
    return reasons.most_common(1)[0][0] if reasons else ""


def decide(votes: Sequence[VoteIn], rules: QueueRules, *, score: float | None = None) -> Decision:
    """The state of an item given every vote that counts (undone votes and gold answers are
    left out by the caller), in the order they were cast."""
    votes = list(votes)
    reviews = [v for v in votes if v.is_review]
    if reviews:
        final = reviews[-1]
        return Decision(
            RETIRED,
            final.answer,
            [list(map(float, p)) for p in final.points],
            [list(map(float, b)) for b in final.boxes],
            final.reason,
            "a reviewer's answer is final",
        )
    if not votes:
        return Decision(OPEN, why="no votes yet")
    answers = Counter(v.answer for v in votes)

    if (
        rules.no_bear_below is not None
        and score is not None
        and score < rules.no_bear_below
        and answers[NO_BEAR] >= 1
        and answers[BEAR] == 0
        and answers[UNSURE] == 0
    ):
        return Decision(
            RETIRED,
            NO_BEAR,
            why=f"one 'no bear' vote and a model score below {rules.no_bear_below:g}",
        )

    bear_group, bear_points = _bear_group(votes, rules)
    usable_group, usable_boxes = _usable_group(votes, rules)
    reached: list[Decision] = []
    if len(bear_group) >= rules.agree:
        reached.append(
            Decision(RETIRED, BEAR, bear_points, why=f"{len(bear_group)} agreeing bear votes")
        )
    if answers[NO_BEAR] >= rules.agree:
        reached.append(
            Decision(RETIRED, NO_BEAR, why=f"{answers[NO_BEAR]} agreeing 'no bear' votes")
        )
    if len(usable_group) >= rules.agree:
        reached.append(
            Decision(
                RETIRED,
                USABLE,
                boxes=usable_boxes,
                why=f"{len(usable_group)} agreeing 'usable' votes",
            )
        )
    if answers[UNUSABLE] >= rules.agree:
        unusable = [v for v in votes if v.answer == UNUSABLE]
        reached.append(
            Decision(
                RETIRED,
                UNUSABLE,
                reason=_common_reason(unusable),
                why=f"{answers[UNUSABLE]} agreeing 'unusable' votes",
            )
        )
    if len(reached) == 1:
        return reached[0]
    if len(reached) > 1:
        return Decision(ADJUDICATION, why="two answers each have enough votes")

    if len(votes) < rules.votes_needed:
        return Decision(OPEN, why=f"{len(votes)} of {rules.votes_needed} votes")

    if rules.weighted_majority is not None:
        settled = _weighted(votes, rules, bear_group, bear_points, usable_group, usable_boxes)
        if settled is not None:
            return settled
    return Decision(ADJUDICATION, why="the votes disagree")


def _weighted(votes, rules, bear_group, bear_points, usable_group, usable_boxes) -> Decision | None:
    total = sum(v.weight for v in votes)
    if total <= 0:
        return None
    options = [
        (sum(v.weight for v in bear_group), Decision(RETIRED, BEAR, bear_points)),
        (sum(v.weight for v in votes if v.answer == NO_BEAR), Decision(RETIRED, NO_BEAR)),
        (sum(v.weight for v in usable_group), Decision(RETIRED, USABLE, boxes=usable_boxes)),
        (
            sum(v.weight for v in votes if v.answer == UNUSABLE),
            Decision(
                RETIRED, UNUSABLE, reason=_common_reason([v for v in votes if v.answer == UNUSABLE])
            ),
        ),
    ]
    weight, best = max(options, key=lambda o: o[0])
    share = weight / total
    if share >= rules.weighted_majority:
        return Decision(
            best.status,
            best.answer,
            best.points,
            best.boxes,
            best.reason,
            f"weighted majority {share:.0%} of the voters' gold accuracy",
        )
    return None


# --- Gold ---------------------------------------------------------------------------------------


def smoothed_accuracy(*, answered: int, correct: int) -> float:
    """Gold accuracy with one imagined right and one imagined wrong answer (Laplace): a newcomer
    is 0.5, never 0 or 1 on a handful of answers."""
    return (correct + 1) / (answered + 2)


def gold_rate(
    *,
    answered: int,
    correct: int,
    start: float = 0.4,
    floor: float = 0.1,
    ramp: int = 20,
    trusted: float = 0.9,
) -> float:
    """Probability that the next item handed to a volunteer is a gold item.

    ``start`` for a newcomer; falls linearly with the number of gold answers (reaching the end of
    the ramp after ``ramp`` answers) times how reliable they are (0 at a smoothed accuracy of 0.5,
    1 at ``trusted``), so only a volunteer who has answered many gold items well gets ``floor``.
    Monotone: never rises with more correct answers."""
    proof = min(1.0, answered / ramp) if ramp > 0 else 1.0
    acc = smoothed_accuracy(answered=answered, correct=correct)
    skill = min(1.0, max(0.0, (acc - 0.5) / max(trusted - 0.5, 1e-9)))
    return start - (start - floor) * proof * skill


@dataclass(frozen=True)
class GoldVerdict:
    correct: bool
    message: str
    answer: str
    points: list[list[float]]


_SAID = {
    BEAR: "a bear",
    NO_BEAR: "no bear",
    UNSURE: "unsure",
    USABLE: "usable",
    UNUSABLE: "unusable",
}


def gold_verdict(
    *,
    answer: str,
    points: Sequence[Point],
    gold_answer: str,
    gold_points: Sequence[Point],
    tolerance: float,
) -> GoldVerdict:
    """Judge an answer to a gold item and word the feedback the volunteer sees at once."""
    gold = [list(map(float, p)) for p in gold_points]
    if gold_answer == BEAR:
        if answer != BEAR:
            return GoldVerdict(False, "There was a bear here.", gold_answer, gold)
        if not points_match(points, gold_points, tolerance):
            return GoldVerdict(
                False, "There was a bear here, but not where you marked it.", gold_answer, gold
            )
        return GoldVerdict(True, "Right: there was a bear here.", gold_answer, gold)
    if gold_answer == NO_BEAR:
        if answer == NO_BEAR:
            return GoldVerdict(True, "Right: there was no bear here.", gold_answer, gold)
        return GoldVerdict(False, "There was no bear here.", gold_answer, gold)
    # Web images: the answer only (a gold item records a known answer, not known boxes).
    ok = answer == gold_answer
    said = _SAID.get(gold_answer, gold_answer)
    return GoldVerdict(
        ok, f"Right: {said}." if ok else f"The answer was: {said}.", gold_answer, gold
    )
