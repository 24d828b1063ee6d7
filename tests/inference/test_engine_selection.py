"""What people are asked about: merged candidates, uncertain tiles, the audit sample.
Synthetic score grids; no model."""

import hashlib
import math

import numpy as np
import pytest

from inference.engine.predictor import FrameScores
from inference.engine.selection import (
    audit_sample,
    frame_seed,
    merge_detections,
    plan_review,
    select_uncertain,
)
from inference.engine.tiling import plan_tiles


def scores_for(height, width, *, min_overlap=0, fill=0.01):
    tiles = plan_tiles(height, width, min_overlap=min_overlap)
    return FrameScores(grid=np.full(tiles.shape, fill, dtype=np.float32), tiles=tiles)


def test_one_bear_seen_by_four_overlapping_tiles_is_asked_about_once():
    s = scores_for(1000, 1000, min_overlap=100)  # stride 124
    # A bear at about (310, 310) lies in the tiles starting at 124 and 248 on both axes.
    s.grid[1:3, 1:3] = [[0.8, 0.9], [0.85, 0.95]]
    dets = merge_detections(s, 0.5)
    assert len(dets) == 1
    d = dets[0]
    assert sorted(d.tiles) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert d.tiles[0] == (2, 2) and d.score == pytest.approx(0.95)
    assert d.box == s.tiles.box(2, 2)
    # The estimate lies inside the region all four tiles share, where the bear must be.
    assert 248 <= d.x <= 348 and 248 <= d.y <= 348
    assert d.extent == (124, 124, 472, 472)


def test_tiles_that_only_touch_merge_when_tiles_do_not_overlap():
    s = scores_for(672, 672)  # stride 224, tiles share edges
    s.grid[0, 0] = 0.9
    s.grid[0, 1] = 0.7  # a bear cut by the edge between the two
    dets = merge_detections(s, 0.5)
    assert len(dets) == 1 and sorted(dets[0].tiles) == [(0, 0), (0, 1)]
    # Weighted towards the stronger tile, between the two centres.
    assert 112 < dets[0].x < 336 and dets[0].y == pytest.approx(112)


def test_two_bears_far_apart_are_two_detections_best_first():
    s = scores_for(2000, 3000)
    s.grid[1, 1] = 0.7
    s.grid[6, 10] = 0.99
    dets = merge_detections(s, 0.5)
    assert [d.tiles for d in dets] == [[(6, 10)], [(1, 1)]]
    assert (dets[0].x, dets[0].y) == s.tiles.centre(6, 10)


def test_a_long_run_of_candidates_is_split_into_tile_sized_questions():
    s = scores_for(448, 224 * 12)
    s.grid[0, :] = np.linspace(0.6, 0.9, s.grid.shape[1])
    dets = merge_detections(s, 0.5)
    assert len(dets) > 1
    for d in dets:
        assert d.extent[2] - d.extent[0] <= 3 * 224


def test_every_candidate_is_in_exactly_one_detection():
    rng = np.random.default_rng(3)
    s = scores_for(2000, 3000, min_overlap=80)
    s.grid[:] = rng.random(s.grid.shape, dtype=np.float32)
    dets = merge_detections(s, 0.8)
    merged = [t for d in dets for t in d.tiles]
    expected = {(int(r), int(c)) for r, c in zip(*np.nonzero(s.grid >= 0.8), strict=True)}
    assert len(merged) == len(set(merged)) == len(expected)
    assert set(merged) == expected
    assert merge_detections(s, 0.8) == dets  # deterministic


def test_no_candidates_no_detections():
    assert merge_detections(scores_for(500, 500), 0.5) == []


def test_uncertain_tiles_are_the_nearest_below_the_threshold():
    s = scores_for(672, 672)
    s.grid[:] = [[0.1, 0.45, 0.49], [0.55, 0.3, 0.2], [0.499, 0.01, 0.5]]
    got = select_uncertain(s, 0.5, 3)
    assert [(r, c) for r, c, _ in got] == [(2, 0), (0, 2), (0, 1)]
    assert got[0][2] == pytest.approx(0.499)
    # Candidates (>= threshold) are never "uncertain": they are asked about anyway.
    assert len(select_uncertain(s, 0.5, 100)) == 7
    assert select_uncertain(s, 0.5, 0) == []


def test_audit_sample_rate_is_what_was_asked_and_recorded():
    tiles = plan_tiles(224 * 1000, 224 * 1000)  # a million tiles
    s = FrameScores(
        grid=np.random.default_rng(0).random(tiles.shape, dtype=np.float32), tiles=tiles
    )
    threshold, rate = 0.9, 0.01
    sample = audit_sample(s, threshold, rate, seed=7)
    below = int((s.grid < threshold).sum())
    expected = below * rate
    sd = math.sqrt(below * rate * (1 - rate))
    assert abs(len(sample) - expected) < 5 * sd
    assert all(score < threshold and p == rate for _, _, score, p in sample)
    assert all(s.grid[r, c] == score for r, c, score, _ in sample)


def test_audit_sample_is_deterministic_for_a_seed_and_differs_between_seeds():
    s = scores_for(2000, 3000)
    a = audit_sample(s, 0.5, 0.2, seed=11)
    assert audit_sample(s, 0.5, 0.2, seed=11) == a
    assert audit_sample(s, 0.5, 0.2, seed=12) != a


def test_whether_a_tile_is_audited_does_not_depend_on_other_tiles_scores():
    s = scores_for(2000, 3000)
    before = {(r, c) for r, c, _, _ in audit_sample(s, 0.5, 0.3, seed=5)}
    s.grid[0:3, :] = 0.99  # some tiles become candidates
    after = {(r, c) for r, c, _, _ in audit_sample(s, 0.5, 0.3, seed=5)}
    assert after == {(r, c) for r, c in before if r >= 3}


def test_audit_rate_out_of_range_is_refused():
    with pytest.raises(ValueError):
        audit_sample(scores_for(500, 500), 0.5, 1.5, seed=0)


def test_frame_seed_is_stable_across_processes():
    expected = int.from_bytes(hashlib.sha256(b"42:image-17").digest()[:8], "big") >> 1
    assert frame_seed(42, "image-17") == expected
    assert frame_seed(42, "image-18") != expected


def test_review_plan_asks_about_each_tile_once():
    rng = np.random.default_rng(1)
    s = scores_for(2000, 3000, min_overlap=50)
    s.grid[:] = rng.random(s.grid.shape, dtype=np.float32) * 0.6
    plan = plan_review(s, threshold=0.5, uncertain=20, audit_rate=0.3, seed=3)
    det_tiles = [t for d in plan.detections for t in d.tiles]
    unc = [(r, c) for r, c, _ in plan.uncertain]
    aud = [(r, c) for r, c, _, _ in plan.audit]
    everything = det_tiles + unc + aud
    assert len(everything) == len(set(everything))
    assert len(unc) == 20  # topped up past the tiles already in the audit sample
    # The audit sample is untouched by the de-duplication, so its rate still holds.
    assert plan.audit == audit_sample(s, 0.5, 0.3, seed=3)
