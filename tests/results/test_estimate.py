"""The miss-rate math: special functions, exact intervals, tile cells, and the coverage of the
interval over many simulated surveys whose true number of missed bears is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from results import estimate
from results.estimate import AuditTally, BearPoint

# --- Exact intervals ------------------------------------------------------------------------------


def test_clopper_pearson_matches_closed_forms():
    # k = 0 and k = n have closed forms: (alpha/2)^(1/n).
    assert estimate.clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9))
    assert estimate.clopper_pearson(10, 10) == (pytest.approx(0.025 ** (1 / 10), rel=1e-9), 1.0)
    low, high = estimate.clopper_pearson(3, 10)
    assert low == pytest.approx(0.066739511, rel=1e-7)  # published table value
    assert high == pytest.approx(0.652452850, rel=1e-7)


def test_poisson_interval_matches_closed_forms():
    low, high = estimate.poisson_exact(0)
    assert low == 0.0 and high == pytest.approx(-math.log(0.025), rel=1e-9)
    low, high = estimate.poisson_exact(1)
    assert low == pytest.approx(-math.log(0.975), rel=1e-9)
    assert high == pytest.approx(5.571643391, rel=1e-8)


def test_special_functions_agree_with_scipy_where_available():
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b, x = rng.uniform(0.3, 400), rng.uniform(0.3, 4000), rng.random()
        assert estimate.betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), abs=1e-11)
        assert estimate.gammainc(a, x * 2 * a) == pytest.approx(
            special.gammainc(a, x * 2 * a), abs=1e-11
        )
    for k, n in [(1, 50), (2, 100_000), (40, 700), (699, 700)]:
        low, high = estimate.clopper_pearson(k, n)
        assert low == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1), rel=1e-8)
        assert high == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k), rel=1e-8)
    for k in (2, 17, 250):
        low, high = estimate.poisson_exact(k)
        assert low == pytest.approx(stats.chi2.ppf(0.025, 2 * k) / 2, rel=1e-8)
        assert high == pytest.approx(stats.chi2.ppf(0.975, 2 * k + 2) / 2, rel=1e-8)


# --- Cells and bears ------------------------------------------------------------------------------


def _origins(length, tile=224, overlap=83):
    out = list(range(0, length - tile, tile - overlap))
    return out + [length - tile]


def test_tile_cells_partition_the_frame_and_lie_inside_their_tiles():
    for length, overlap in [(1200, 83), (7360, 104), (224, 0), (500, 200)]:
        xs = _origins(length, overlap=overlap)
        cells = [estimate.tile_cell(xs, 224, length, i) for i in range(len(xs))]
        assert cells[0][0] == 0 and cells[-1][1] == length
        for (_, hi), (lo2, _) in zip(cells, cells[1:], strict=False):
            assert hi == lo2  # no gap, no overlap
        for (lo, hi), x0 in zip(cells, xs, strict=True):
            assert x0 <= lo < hi <= x0 + 224


def test_a_bear_on_a_tile_overlap_counts_in_one_audited_tile_only():
    xs, ys = _origins(1200), _origins(900)
    # (200, 150) lies in tiles 0 and 1 along x (0..224 and 141..365), tile 0 along y.
    inside = [
        estimate.point_in_tile_cell(
            200, 150, box=(x0, 0, x0 + 224, 224), xs=xs, ys=ys, width=1200, height=900
        )
        for x0 in xs
        if x0 <= 200 < x0 + 224
    ]
    assert inside == [False, True]  # centre of tile 1 (253) is nearer than tile 0's (112)


def test_points_of_one_bear_merge_but_two_bears_in_one_tile_stay_two():
    pts = [
        BearPoint(image_id=1, x=500, y=400, item_id=10),
        BearPoint(image_id=1, x=503, y=404, item_id=11),  # the same bear in another tile
        BearPoint(image_id=1, x=520, y=410, item_id=10),  # a cub next to its mother, same tile
        BearPoint(image_id=2, x=500, y=400, item_id=12),  # another frame
    ]
    bears = estimate.cluster_bears(pts, radius=41.5)
    assert len(bears) == 3
    assert sorted(len(b.points) for b in bears) == [1, 1, 2]


def test_no_labelled_audit_tile_means_no_estimate():
    tally = AuditTally(drawn=12, labelled=0, bears=0, tiles_with_bears=0, tiles_below=10_000)
    assert estimate.estimate_missed(tally) is None


def test_estimate_scales_the_sample_to_the_tiles_below_the_threshold():
    tally = AuditTally(
        drawn=10, labelled=8, bears=1, tiles_with_bears=1, tiles_below=332, sampling_probability=0.1
    )
    r = estimate.estimate_missed(tally, detected=1, found_outside_candidates=2)
    assert r.missed == pytest.approx(41.5)
    assert r.missed_high == pytest.approx(5.571643391 * 332 / 8, rel=1e-8)
    assert r.missed_low == 2  # people already found two below the threshold
    assert (r.total, r.total_low) == (pytest.approx(42.5), 3)
    assert "Poisson" in r.method_label
    cp = estimate.estimate_missed(tally, method="clopper-pearson")
    assert "Clopper-Pearson" in cp.method_label and cp.missed == pytest.approx(41.5)


# --- Coverage over simulated surveys ---------------------------------------------------------------


def _simulated_survey(rng, *, frames, bears_per_frame, p, labelled_share, detect):
    """One survey with known truth, following the inference pipeline's rules: 1200 x 900 frames
    in 224 px tiles overlapping by one bear length (83 px), background scores, a few false
    positives, bears the model sees (their tiles score high) or misses; the audit samples tiles
    below the threshold with probability ``p`` and people label a random share of them.

    Returns (true missed bears, true tiles holding a missed bear, AuditTally, naive count)."""
    xs, ys = np.array(_origins(1200)), np.array(_origins(900))
    rows, cols, thr = len(ys), len(xs), 0.5
    grid = rng.beta(1, 20, size=(frames, rows, cols))
    grid[rng.random(grid.shape) < 0.004] = 0.9  # false positives
    n = rng.poisson(bears_per_frame * frames)
    f, bx, by = rng.integers(0, frames, n), rng.uniform(0, 1200, n), rng.uniform(0, 900, n)
    in_x = (xs[None, :] <= bx[:, None]) & (bx[:, None] < xs[None, :] + 224)
    in_y = (ys[None, :] <= by[:, None]) & (by[:, None] < ys[None, :] + 224)
    # Each bear's cell: the tile whose centre is nearest, per axis.
    bounds_x = [estimate.tile_cell(list(xs), 224, 1200, i)[1] for i in range(cols)]
    bounds_y = [estimate.tile_cell(list(ys), 224, 900, i)[1] for i in range(rows)]
    cx, cy = (
        np.searchsorted(bounds_x, bx, side="right"),
        np.searchsorted(bounds_y, by, side="right"),
    )
    seen = rng.random(n) < detect
    for i in np.nonzero(seen)[0]:
        grid[f[i], cy[i], cx[i]] = 0.95  # the model flags the tile the bear is most central in
    above = grid >= thr
    covered = (above[f] & in_y[:, :, None] & in_x[:, None, :]).any(axis=(1, 2))
    missed = ~covered
    below = ~above
    drawn = below & (rng.random(grid.shape) < p)
    labelled = drawn & (rng.random(grid.shape) < labelled_share)
    hit = missed & labelled[f, cy, cx]
    cells_with_missed = {(f[i], cy[i], cx[i]) for i in np.nonzero(missed)[0]}
    positive_tiles = {(f[i], cy[i], cx[i]) for i in np.nonzero(hit)[0]}
    # What a naive count sees: every labelled tile that shows a missed bear anywhere in it.
    naive = int((missed[:, None, None] & labelled[f] & in_y[:, :, None] & in_x[:, None, :]).sum())
    tally = AuditTally(
        drawn=int(drawn.sum()),
        labelled=int(labelled.sum()),
        bears=int(hit.sum()),
        tiles_with_bears=len(positive_tiles),
        tiles_below=int(below.sum()),
        sampling_probability=p,
    )
    return int(missed.sum()), len(cells_with_missed), tally, naive


@pytest.mark.parametrize(
    "scenario",
    [
        # ~1 900 missed bears, ~30 in the labelled sample: coverage near the nominal 95 %.
        dict(frames=2000, bears_per_frame=2.5, p=0.02, labelled_share=0.8, detect=0.6, sims=200),
        # ~17 missed bears, ~2 in the sample: exact intervals are conservative at small counts.
        dict(frames=300, bears_per_frame=0.3, p=0.2, labelled_share=0.5, detect=0.8, sims=300),
    ],
    ids=["large-survey-low-audit-rate", "few-bears-half-labelled"],
)
def test_interval_covers_the_true_number_of_missed_bears_about_95_percent_of_the_time(scenario):
    rng = np.random.default_rng(20260412)
    scenario = dict(scenario)
    sims = scenario.pop("sims")
    cover = {"poisson": 0, "clopper-pearson": 0}
    estimates, truths, naive_estimates = [], [], []
    for _ in range(sims):
        truth, truth_cells, tally, naive = _simulated_survey(rng, **scenario)
        # People found the audit bears themselves: the interval may start there (as on the page).
        r = estimate.estimate_missed(tally, found_outside_candidates=tally.bears)
        cover["poisson"] += r.missed_low <= truth <= r.missed_high
        cp = estimate.estimate_missed(tally, method="clopper-pearson")
        cover["clopper-pearson"] += cp.missed_low <= truth_cells <= cp.missed_high
        estimates.append(tally.bears / tally.labelled * tally.tiles_below)
        naive_estimates.append(naive / tally.labelled * tally.tiles_below)
        truths.append(truth)
    for method, hits in cover.items():
        # Exact intervals are conservative: at least 95 % up to sampling noise, not much more.
        assert 0.93 <= hits / sims <= 0.995, (method, hits / sims)
    # Unbiased: the mean estimate is the mean truth (within 6 %), while counting every tile that
    # shows a bear (ignoring the overlap) overestimates by far.
    assert np.mean(estimates) == pytest.approx(np.mean(truths), rel=0.06)
    assert np.mean(naive_estimates) > 1.5 * np.mean(truths)
