"""The consensus and retirement rules, as a table of cases (pure functions, no database)."""

from __future__ import annotations

import random

import pytest

from labeling.queues.consensus import (
    ADJUDICATION,
    BEAR,
    NO_BEAR,
    OPEN,
    RETIRED,
    UNSURE,
    UNUSABLE,
    USABLE,
    QueueRules,
    VoteIn,
    decide,
    gold_rate,
    gold_verdict,
    points_match,
)

CANDIDATES = QueueRules(votes_needed=2, agree=2, point_tolerance_px=40)
AUDIT = QueueRules(votes_needed=1, agree=2, no_bear_below=0.5, point_tolerance_px=40)
QUICK = QueueRules(votes_needed=2, agree=2, no_bear_below=0.3, point_tolerance_px=40)
THREE = QueueRules(votes_needed=3, agree=2, point_tolerance_px=40)
WEB = QueueRules(votes_needed=1, agree=1)
WEB2 = QueueRules(votes_needed=2, agree=2)
WEIGHTED = QueueRules(votes_needed=2, agree=2, point_tolerance_px=40, weighted_majority=0.75)


def bear(*points, w=1.0):
    return VoteIn(BEAR, points=tuple(points), weight=w)


def no(w=1.0):
    return VoteIn(NO_BEAR, weight=w)


UNS = VoteIn(UNSURE)


def usable(*boxes):
    return VoteIn(USABLE, boxes=tuple(boxes))


def unusable(reason):
    return VoteIn(UNUSABLE, reason=reason)


def review(answer, *points):
    return VoteIn(answer, points=tuple(points), is_review=True)


CASES = [
    # (name, rules, score, votes, status, answer)
    ("no votes: open", CANDIDATES, 0.9, [], OPEN, ""),
    ("one bear of two: open", CANDIDATES, 0.9, [bear((10, 10))], OPEN, ""),
    (
        "two bears, points agree: bear",
        CANDIDATES,
        0.9,
        [bear((100, 100)), bear((120, 110))],
        RETIRED,
        BEAR,
    ),
    (
        "two bears, points far apart: adjudication",
        CANDIDATES,
        0.9,
        [bear((100, 100)), bear((200, 200))],
        ADJUDICATION,
        "",
    ),
    (
        "two bears, different counts: adjudication",
        CANDIDATES,
        0.9,
        [bear((100, 100)), bear((100, 100), (150, 150))],
        ADJUDICATION,
        "",
    ),
    (
        "bear without points agrees with any bear",
        CANDIDATES,
        0.9,
        [bear(), bear((50, 50))],
        RETIRED,
        BEAR,
    ),
    ("two no: no bear", CANDIDATES, 0.9, [no(), no()], RETIRED, NO_BEAR),
    ("bear and no: adjudication", CANDIDATES, 0.9, [bear((1, 1)), no()], ADJUDICATION, ""),
    ("unsure and no: adjudication", CANDIDATES, 0.9, [UNS, no()], ADJUDICATION, ""),
    ("two unsure never agree: adjudication", CANDIDATES, 0.9, [UNS, UNS], ADJUDICATION, ""),
    ("quick rule: one no below the bound retires", QUICK, 0.1, [no()], RETIRED, NO_BEAR),
    ("quick rule: one no above the bound waits", QUICK, 0.6, [no()], OPEN, ""),
    ("quick rule: not when someone said bear", QUICK, 0.1, [bear((5, 5)), no()], ADJUDICATION, ""),
    ("quick rule: not when someone was unsure", QUICK, 0.1, [UNS, no()], ADJUDICATION, ""),
    ("quick rule: unknown score waits", QUICK, None, [no()], OPEN, ""),
    ("audit: one no retires (score below 0.5)", AUDIT, 0.05, [no()], RETIRED, NO_BEAR),
    ("audit: a bear found goes to a reviewer", AUDIT, 0.05, [bear((3, 3))], ADJUDICATION, ""),
    ("audit: unsure goes to a reviewer", AUDIT, 0.05, [UNS], ADJUDICATION, ""),
    (
        "three needed: bear, no, bear retires bear",
        THREE,
        0.9,
        [bear((10, 10)), no(), bear((12, 9))],
        RETIRED,
        BEAR,
    ),
    ("three needed: bear, no waits for a third", THREE, 0.9, [bear((10, 10)), no()], OPEN, ""),
    (
        "three needed: bear, no, unsure: adjudication",
        THREE,
        0.9,
        [bear((10, 10)), no(), UNS],
        ADJUDICATION,
        "",
    ),
    (
        "reviewer is final over agreement",
        CANDIDATES,
        0.9,
        [no(), no(), review(BEAR, (7, 7))],
        RETIRED,
        BEAR,
    ),
    (
        "reviewer is final alone",
        CANDIDATES,
        0.9,
        [bear((1, 1)), no(), review(NO_BEAR)],
        RETIRED,
        NO_BEAR,
    ),
    ("latest review wins", CANDIDATES, 0.9, [review(NO_BEAR), review(BEAR)], RETIRED, BEAR),
    ("web: one usable vote with a box", WEB, None, [usable((0, 0, 50, 40))], RETIRED, USABLE),
    ("web: one unusable vote", WEB, None, [unusable("watermark")], RETIRED, UNUSABLE),
    (
        "web: two usable, boxes overlap",
        WEB2,
        None,
        [usable((0, 0, 100, 100)), usable((5, 5, 100, 100))],
        RETIRED,
        USABLE,
    ),
    (
        "web: two usable, boxes elsewhere",
        WEB2,
        None,
        [usable((0, 0, 100, 100)), usable((200, 200, 300, 300))],
        ADJUDICATION,
        "",
    ),
    (
        "web: usable and unusable",
        WEB2,
        None,
        [usable((0, 0, 100, 100)), unusable("too_small")],
        ADJUDICATION,
        "",
    ),
    (
        "weights: reliable bear beats unreliable no",
        WEIGHTED,
        0.9,
        [bear((5, 5), w=0.95), no(w=0.2)],
        RETIRED,
        BEAR,
    ),
    (
        "weights: even split still goes to a reviewer",
        WEIGHTED,
        0.9,
        [bear((5, 5), w=0.6), no(w=0.6)],
        ADJUDICATION,
        "",
    ),
    ("weights: unsure majority never decides", WEIGHTED, 0.9, [UNS, no(w=0.1)], ADJUDICATION, ""),
]


@pytest.mark.parametrize(
    "rules, score, votes, status, answer", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_consensus_table(rules, score, votes, status, answer):
    decision = decide(votes, rules, score=score)
    assert (decision.status, decision.answer) == (status, answer), decision.why
    assert decision.why


def test_agreed_bear_points_are_merged_by_averaging():
    decision = decide(
        [bear((100, 100), (300, 300)), bear((310, 290), (110, 104))], CANDIDATES, score=0.9
    )
    assert decision.status == RETIRED
    assert sorted(decision.points) == [[105.0, 102.0], [305.0, 295.0]]


def test_bear_group_ignores_the_outlier_when_three_vote():
    decision = decide([bear((10, 10)), bear((400, 400)), bear((20, 14))], THREE, score=0.9)
    assert (decision.status, decision.points) == (RETIRED, [[15.0, 12.0]])


def test_unusable_consensus_keeps_the_commonest_reason():
    decision = decide(
        [unusable("watermark"), unusable("too_small"), unusable("watermark")],
        QueueRules(votes_needed=3, agree=3),
        score=None,
    )
    assert (decision.answer, decision.reason) == (UNUSABLE, "watermark")


def test_points_match_pairs_points_one_to_one():
    assert points_match([(0, 0), (100, 0)], [(101, 1), (1, 1)], 10)
    assert not points_match([(0, 0), (100, 0)], [(1, 1), (2, 2)], 10)
    # Greedy matching for herds larger than the exact search handles.
    herd = [(i * 100.0, 0.0) for i in range(9)]
    shuffled = herd[:]
    random.Random(1).shuffle(shuffled)
    assert points_match(herd, [(x + 3, y - 3) for x, y in shuffled], 10)


def test_gold_rate_falls_from_start_to_floor_only_for_reliable_volunteers():
    assert gold_rate(answered=0, correct=0) == pytest.approx(0.4)
    assert gold_rate(answered=20, correct=20) == pytest.approx(0.1)
    assert gold_rate(answered=100, correct=100) == pytest.approx(0.1)
    sloppy = gold_rate(answered=40, correct=24)  # 60 % right
    assert 0.3 < sloppy < 0.4
    # Monotone: more right answers never raise the rate.
    rates = [gold_rate(answered=n, correct=n) for n in range(0, 30)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))


@pytest.mark.parametrize(
    "answer, points, gold, gold_points, correct, message",
    [
        (NO_BEAR, [], BEAR, [(50, 50)], False, "There was a bear here."),
        (UNSURE, [], BEAR, [(50, 50)], False, "There was a bear here."),
        (BEAR, [(55, 52)], BEAR, [(50, 50)], True, "Right: there was a bear here."),
        (
            BEAR,
            [(150, 150)],
            BEAR,
            [(50, 50)],
            False,
            "There was a bear here, but not where you marked it.",
        ),
        (BEAR, [], BEAR, [(50, 50)], True, "Right: there was a bear here."),
        (BEAR, [(5, 5)], NO_BEAR, [], False, "There was no bear here."),
        (NO_BEAR, [], NO_BEAR, [], True, "Right: there was no bear here."),
        (USABLE, [], USABLE, [], True, "Right: usable."),
        (UNUSABLE, [], USABLE, [], False, "The answer was: usable."),
    ],
)
def test_gold_feedback(answer, points, gold, gold_points, correct, message):
    verdict = gold_verdict(
        answer=answer, points=points, gold_answer=gold, gold_points=gold_points, tolerance=20
    )
    assert (verdict.correct, verdict.message) == (correct, message)
