"""Evaluation figures on hand-made cases, and the promotion gate's table of decisions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.loop.evaluate import (
    EvalMetrics,
    average_precision,
    metrics_at,
    pr_curve,
    threshold_for_recall,
)
from training.loop.gate import decide_promotion


def test_pr_curve_and_average_precision_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6]
    labels = [1, 0, 1, 0]
    c = pr_curve(scores, labels)
    assert c.thresholds.tolist() == [0.9, 0.8, 0.7, 0.6]
    assert c.precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    assert c.recall.tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])
    # AP = 0.5 * 1 + 0 * 0.5 + 0.5 * 2/3 + 0 * 0.5
    assert average_precision(scores, labels) == pytest.approx(0.5 + 1 / 3)


def test_tied_scores_are_one_threshold_and_perfect_ranking_scores_one():
    c = pr_curve([0.5, 0.5, 0.5], [1, 0, 1])
    assert c.thresholds.tolist() == [0.5]
    assert average_precision([0.5, 0.5, 0.5], [1, 0, 1]) == pytest.approx(2 / 3)
    assert average_precision([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert average_precision([0.1, 0.2], [0, 0]) == 0.0  # no bears: nothing to find


def test_threshold_is_the_highest_that_reaches_the_target_recall():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(20, int), np.zeros(200, int)]
    scores = np.r_[rng.uniform(0.3, 1.0, 20), rng.uniform(0.0, 0.6, 200)]
    t = threshold_for_recall(scores, labels, 0.95)
    recall = lambda th: (scores[labels == 1] >= th).mean()  # noqa: E731
    assert recall(t) >= 0.95
    # 0.95 * 20 is 19 bears, not 20 (floating point: 19.000000000000004).
    assert (scores[labels == 1] >= t).sum() == 19
    # Any higher threshold loses a bear.
    higher = np.sort(np.unique(scores[scores > t]))
    assert recall(higher[0]) < 0.95
    assert threshold_for_recall(scores, labels, 1.0) == scores[labels == 1].min()
    assert threshold_for_recall([0.3], [0], 0.95) is None


def test_false_positives_are_counted_per_distinct_frame():
    scores = [0.9, 0.8, 0.7, 0.1, 0.95, 0.2]
    labels = [1, 0, 0, 0, 0, 1]
    groups = ["a", "a", "b", "c", "d", "d"]  # four frames
    m = metrics_at(scores, labels, groups, threshold=0.5)
    assert (m.tp, m.fp, m.fn, m.tn) == (1, 3, 1, 1)
    assert m.fp_per_frame == pytest.approx(3 / 4)
    assert m.recall == 0.5 and m.precision == 0.25
    assert m.frames == 4 and m.positives == 2 and m.negatives == 4
    # Without a threshold: the one reaching the target recall (both bears: 0.2).
    m = metrics_at(scores, labels, groups, target_recall=0.95)
    assert m.threshold == 0.2 and m.recall == 1.0 and (m.fp, m.tn) == (3, 1)


def test_curve_is_downsampled_and_figures_are_plain_data():
    rng = np.random.default_rng(1)
    scores = rng.random(5000)
    labels = (rng.random(5000) < 0.1).astype(int)
    m = metrics_at(
        scores, labels, [str(i // 10) for i in range(5000)], keys=[str(i) for i in range(5000)]
    )
    assert 100 < len(m.pr_curve) <= 200
    # The curve keeps its ends: the strictest and the most lenient threshold.
    assert m.pr_curve[0][0] == scores.max() and m.pr_curve[-1][2] == 1.0
    d = m.as_dict()
    assert EvalMetrics.from_dict(d) == m
    assert all(type(v) in (int, float, str, list) for v in d.values())
    assert (
        m.split_id
        and m.split_id
        == metrics_at(
            scores, labels, [str(i // 10) for i in range(5000)], keys=[str(i) for i in range(5000)]
        ).split_id
    )


def test_a_split_without_bears_flags_nothing():
    m = metrics_at([0.9, 0.1], [0, 0], ["a", "b"])
    assert m.threshold is None and m.fp == 0 and m.recall == 0.0 and not m.reaches_target


def figures(recall=0.96, fp_per_frame=1.0, positives=50, split_id="s") -> EvalMetrics:
    return EvalMetrics(
        recall=recall,
        precision=0.5,
        fp_per_frame=fp_per_frame,
        tp=48,
        fp=48,
        fn=2,
        tn=900,
        threshold=0.3,
        ap=0.8,
        target_recall=0.95,
        frames=48,
        positives=positives,
        negatives=948,
        split_id=split_id,
    )


GATE_CASES = [
    # (new, active, promote, words in the reason)
    (figures(fp_per_frame=0.5), figures(fp_per_frame=1.0), True, "50.0% fewer"),
    (
        figures(fp_per_frame=0.95),
        figures(fp_per_frame=1.0),
        True,
        "5.0% fewer",
    ),  # exactly the margin
    (figures(fp_per_frame=0.97), figures(fp_per_frame=1.0), False, "only 3.0% fewer"),
    (figures(fp_per_frame=1.0), figures(fp_per_frame=1.0), False, "no fewer"),  # tie
    (figures(fp_per_frame=1.2), figures(fp_per_frame=1.0), False, "no fewer"),
    (figures(fp_per_frame=0.0), figures(fp_per_frame=0.0), False, "no fewer"),  # perfect tie
    (figures(recall=0.90, fp_per_frame=0.1), figures(fp_per_frame=1.0), False, "misses the target"),
    (figures(recall=0.90), None, False, "misses the target"),
    (figures(), None, True, "no active model"),
    (figures(positives=0, recall=0.0), None, False, "no bears"),
    (figures(fp_per_frame=2.0), figures(recall=0.8, fp_per_frame=0.1), True, "active model misses"),
]


@pytest.mark.parametrize(("new", "active", "promote", "words"), GATE_CASES)
def test_promotion_gate(new, active, promote, words):
    d = decide_promotion(new, active, target_recall=0.95, margin=0.05)
    assert d.promote is promote
    assert words in d.reason
    # The figures that decided it travel with the decision.
    assert d.figures["new_fp_per_frame"] == new.fp_per_frame
    assert d.figures["new_recall"] == new.recall
    if active is not None:
        assert d.figures["active_fp_per_frame"] == active.fp_per_frame


def test_gate_refuses_to_compare_different_splits():
    with pytest.raises(ValueError, match="different validation splits"):
        decide_promotion(figures(split_id="a"), figures(split_id="b"))
    other = dataclasses.replace(figures(), split_id="")  # hand-made figures carry no split id
    assert decide_promotion(figures(fp_per_frame=0.1), other).promote


def test_one_bear_seen_in_overlapping_tiles_counts_once_by_its_best_tile():
    # Bear "b1" lies in two overlapping tiles; the model sees it in one of them only. Inference
    # finds it (any flagged tile holding it), so validation must too: one positive, score 0.9.
    scores = [0.1, 0.9, 0.3, 0.8, 0.6]
    labels = [1, 1, 1, 0, 0]
    groups = ["f1", "f1", "f2", "f1", "f2"]
    keys = ["bear:b1~0", "bear:b1~1", "bear:b2", "bg:1", "bg:2"]
    m = metrics_at(scores, labels, groups, threshold=0.5, keys=keys)
    assert (m.tp, m.fn, m.fp, m.tn) == (1, 1, 2, 0)
    assert m.positives == 2 and m.recall == 0.5
    # The threshold reaching both bears is b2's 0.3, not the 0.1 of b1's worse tile.
    m = metrics_at(scores, labels, groups, target_recall=0.95, keys=keys)
    assert m.threshold == 0.3 and m.recall == 1.0
    # Without keys every tile is its own positive (the tile-level figures).
    assert metrics_at(scores, labels, groups, target_recall=0.95).threshold == 0.1
    # Negatives are never merged, even if their keys look alike.
    m = metrics_at([0.9, 0.8], [0, 0], ["f", "f"], threshold=0.5, keys=["bg~0", "bg~1"])
    assert m.fp == 2
