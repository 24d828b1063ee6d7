"""How many bears the model missed, from the audit sample (pure Python, no Django, no scipy).

The audit sample (``inference.engine.selection.audit_sample``) includes every tile scored below the
review threshold independently with a known probability ``p``. People label some of the drawn
tiles. From the ``n`` labelled audit tiles, ``k`` of which show a missed bear, and the number
``N_below`` of tiles below the threshold in the whole survey, the number of missed bears is

    M_hat = k / n * N_below                       (a ratio, Horvitz-Thompson style, estimator)

Two exact intervals are offered (:data:`METHODS`):

- ``poisson`` (default): ``k`` counts *bears*. Each missed bear is counted through exactly one tile
  (its *cell*, below), so it enters the labelled sample independently with probability
  ``n / N_below``; ``k`` is then binomial with a tiny rate, i.e. Poisson, and the exact Poisson
  (Garwood, chi-square) interval for its mean, scaled by ``N_below / n``, bounds ``M``.
- ``clopper-pearson``: ``k`` counts *tiles* holding at least one missed bear among ``n`` labelled
  tiles; the exact binomial (Clopper-Pearson) interval for the share, times ``N_below``, bounds the
  number of such tiles. A family (a mother with cubs in one tile) counts once.

Both intervals are "exact" in the sense that their coverage is at least the nominal level
whatever the true count (they are conservative, more so for small counts).

Tiles overlap (by at least one animal length), so a bear near a tile edge appears in two or four
tiles. Counting "tiles that show a bear" would count it up to four times (about
``(tile / stride) ** 2`` times on average, x2.5 for 224 px tiles with an 83 px overlap). Instead
each point of the frame belongs to exactly one tile's *cell*: the part of the tile nearer its
centre than any neighbour's centre (:func:`tile_cell`). A bear counts in an audited tile only when
its point lies in that tile's cell, so every bear is counted through one tile at most.

Assumptions, stated on the report page too: the labelled audit tiles are a random subset of the
drawn ones (people label audit items in an order unrelated to what they show); a tile answered
"unsure" is left out, as if unlabelled; bears are positioned by the point people clicked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

METHODS: dict[str, str] = {
    "poisson": (
        "Horvitz-Thompson estimate (bears in the labelled audit tiles x below-threshold tiles / "
        "labelled audit tiles) with an exact Poisson (Garwood) 95 % interval"
    ),
    "clopper-pearson": (
        "share of labelled audit tiles holding a missed bear x below-threshold tiles, with an "
        "exact binomial (Clopper-Pearson) 95 % interval"
    ),
}
DEFAULT_METHOD = "poisson"

_EPS = 1e-300
_MAX_ITER = 10_000


# --- Special functions ----------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4).
    Converges quickly for ``x < (a + 1) / (a + b + 2)``; the caller uses the symmetry otherwise."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _EPS else _EPS)
    h = d
    for m in range(1, _MAX_ITER):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _EPS else _EPS)
        c = 1.0 + aa / c
        c = c if abs(c) > _EPS else _EPS
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _EPS else _EPS)
        c = 1.0 + aa / c
        c = c if abs(c) > _EPS else _EPS
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1: the
    cumulative distribution function of Beta(a, b) at ``x``."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def gammainc(a: float, x: float) -> float:
    """The regularised lower incomplete gamma function P(a, x) for a > 0, x >= 0: the cumulative
    distribution function of Gamma(a, 1) at ``x`` (series below a + 1, continued fraction above)."""
    if a <= 0:
        raise ValueError("a must be positive")
    if x <= 0.0:
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                return min(1.0, total * math.exp(log_front))
        raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")
    # Continued fraction for Q(a, x) = 1 - P(a, x) (modified Lentz).
    b = x + 1.0 - a
    c = 1.0 / _EPS
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _EPS else _EPS)
        c = b + an / c
        c = c if abs(c) > _EPS else _EPS
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return max(0.0, 1.0 - math.exp(log_front) * h)
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")


def _bisect(cdf, q: float, lo: float, hi: float) -> float:
    """The ``x`` in [lo, hi] with cdf(x) = q for a non-decreasing cdf, to ~1e-12 relative (the
    quantiles scaled by 50 million tiles must stay exact to a fraction of a bear)."""
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * abs(hi):
            break
    return 0.5 * (lo + hi)


def beta_quantile(q: float, a: float, b: float) -> float:
    """The ``q`` quantile of Beta(a, b), by bisection on :func:`betainc`."""
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be a probability")
    if q == 0.0:
        return 0.0
    if q == 1.0:
        return 1.0
    return _bisect(lambda x: betainc(a, b, x), q, 0.0, 1.0)


def gamma_quantile(q: float, a: float) -> float:
    """The ``q`` quantile of Gamma(a, 1), by bisection on :func:`gammainc`."""
    if not 0.0 <= q < 1.0:
        raise ValueError("q must be in [0, 1)")
    if q == 0.0:
        return 0.0
    hi = max(1.0, a)
    while gammainc(a, hi) < q:
        hi *= 2.0
    return _bisect(lambda x: gammainc(a, x), q, 0.0, hi)


# --- Intervals ------------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a proportion from ``k`` successes in ``n`` trials.
    Invariant: 0 <= low <= k / n <= high <= 1; low is 0 when k is 0, high is 1 when k is n."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else beta_quantile(alpha / 2, k, n - k + 1)
    high = 1.0 if k == n else beta_quantile(1 - alpha / 2, k + 1, n - k)
    return low, high


def poisson_exact(k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval for a Poisson mean from one count ``k``:
    [Gamma(k).ppf(alpha/2), Gamma(k + 1).ppf(1 - alpha/2)], i.e. chi-square quantiles / 2."""
    if k < 0:
        raise ValueError("a count cannot be negative")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else gamma_quantile(alpha / 2, k)
    return low, gamma_quantile(1 - alpha / 2, k + 1)


# --- Cells of overlapping tiles -------------------------------------------------------------------


def tile_cell(origins: Sequence[int], tile: int, length: int, index: int) -> tuple[float, float]:
    """The half-open span ``[low, high)`` along one axis that belongs to tile ``index``: the points
    nearer its centre than any other tile's centre (split half-way between neighbouring centres),
    the first and last cells reaching the frame's borders.

    Invariants (for origins from ``inference.engine.tiling``, stride <= tile): the cells of one axis
    partition ``[0, length)``, and each lies inside its own tile."""
    if not 0 <= index < len(origins):
        raise IndexError(f"tile {index} of {len(origins)}")
    half = tile / 2.0
    low = 0.0 if index == 0 else (origins[index - 1] + origins[index]) / 2.0 + half
    last = index == len(origins) - 1
    high = float(length) if last else (origins[index] + origins[index + 1]) / 2.0 + half
    return low, high


def point_in_tile_cell(
    x: float,
    y: float,
    *,
    box: tuple[int, int, int, int],
    xs: Sequence[int] | None,
    ys: Sequence[int] | None,
    width: int,
    height: int,
) -> bool:
    """Whether the point ``(x, y)`` (frame pixels) lies in the cell of the tile ``box``. Without
    the frame's tile origins (or when the box is not one of its tiles) the whole box stands in for
    the cell, which may count a bear on an overlap twice; the report says when this happened."""
    x0, y0, x1, y1 = box
    tile = x1 - x0
    if xs and ys and x0 in xs and y0 in ys:
        cx0, cx1 = tile_cell(xs, tile, width, list(xs).index(x0))
        cy0, cy1 = tile_cell(ys, y1 - y0, height, list(ys).index(y0))
        return cx0 <= x < cx1 and cy0 <= y < cy1
    return x0 <= x < x1 and y0 <= y < y1


# --- Bears: one per cluster of points -------------------------------------------------------------


@dataclass
class BearPoint:
    """A point people marked as a bear in one labelled item (frame pixels)."""

    image_id: int
    x: float
    y: float
    item_id: int
    kind: str = ""
    model_version_id: int | None = None


@dataclass
class Bear:
    """One animal: the points marked for it in one frame, from one or more items (the same bear
    can be shown in two overlapping candidate tiles, or by two model versions)."""

    image_id: int
    x: float
    y: float
    points: list[BearPoint] = field(default_factory=list)

    @property
    def item_ids(self) -> list[int]:
        return sorted({p.item_id for p in self.points})

    @property
    def kinds(self) -> set[str]:
        return {p.kind for p in self.points}


def cluster_bears(points: Iterable[BearPoint], radius: float) -> list[Bear]:
    """Group points of the same frame closer than ``radius`` pixels into one bear.

    Greedy, in input order: a point joins the first bear of its frame whose mean position lies
    within ``radius``, else founds a new bear. Points marked *in the same item* never merge (two
    clicks in one tile are two animals, for example a mother and her cub). Deterministic for a
    given input order. Invariant: every point is in exactly one bear."""
    by_image: dict[int, list[Bear]] = {}
    r2 = radius * radius
    for p in points:
        bears = by_image.setdefault(p.image_id, [])
        for bear in bears:
            if any(q.item_id == p.item_id for q in bear.points):
                continue
            if (bear.x - p.x) ** 2 + (bear.y - p.y) ** 2 <= r2:
                bear.points.append(p)
                n = len(bear.points)
                bear.x += (p.x - bear.x) / n
                bear.y += (p.y - bear.y) / n
                break
        else:
            bears.append(Bear(image_id=p.image_id, x=p.x, y=p.y, points=[p]))
    return [b for bears in by_image.values() for b in bears]


# --- The estimate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditTally:
    """What the audit sample holds for one survey and model version.

    ``drawn``: audit tiles queued; ``labelled``: those with a bear / no-bear consensus (``n``);
    ``unsure``: answered "unsure" (left out); ``bears``: missed bears counted in the labelled
    tiles' cells (``k`` for ``poisson``); ``tiles_with_bears``: labelled tiles whose cell holds at
    least one (``k`` for ``clopper-pearson``); ``tiles_below``: tiles below the threshold in the
    survey (``N_below``); ``sampling_probability``: the audit rate ``p``."""

    drawn: int
    labelled: int
    bears: int
    tiles_with_bears: int
    tiles_below: int
    unsure: int = 0
    sampling_probability: float | None = None


@dataclass(frozen=True)
class MissEstimate:
    """Estimated missed bears with an interval, and the survey total when ``detected`` is given.
    Invariants: low <= missed <= high; total_low <= total <= total_high; bounds never negative."""

    method: str
    method_label: str
    confidence: float
    k: int
    n: int
    tiles_below: int
    rate: float
    rate_low: float
    rate_high: float
    missed: float
    missed_low: float
    missed_high: float
    detected: int
    found_outside_candidates: int
    total: float
    total_low: float
    total_high: float
    expected_draws: float | None


def estimate_missed(
    tally: AuditTally,
    *,
    detected: int = 0,
    found_outside_candidates: int = 0,
    method: str = DEFAULT_METHOD,
    confidence: float = 0.95,
) -> MissEstimate | None:
    """Missed bears (and the survey total) from the audit tally; ``None`` when no audit tile is
    labelled yet (there is nothing to estimate from, and the page says so).

    ``detected``: bears confirmed in candidate tiles (counted, not estimated).
    ``found_outside_candidates``: bears people already found below the threshold (in uncertain or
    audit tiles); they are part of the missed bears, so the lower bound is at least that many
    (for ``clopper-pearson``, which counts tiles, the floor is the ``k`` tiles seen).
    ``total = detected + missed``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    n = tally.labelled
    if n <= 0:
        return None
    big_n = tally.tiles_below
    if method == "poisson":
        k = tally.bears
        low_count, high_count = poisson_exact(k, confidence)
        rate, rate_low, rate_high = k / n, low_count / n, high_count / n
    else:
        k = tally.tiles_with_bears
        rate = k / n
        rate_low, rate_high = clopper_pearson(k, n, confidence)
    missed = rate * big_n
    # What is known for certain bounds the interval from below: the bears people found below
    # the threshold (poisson counts bears), or the audited tiles seen to hold one (binomial
    # counts tiles, and two found bears may share a tile).
    floor = float(found_outside_candidates if method == "poisson" else k)
    missed_low = max(rate_low * big_n, floor)
    missed_high = max(rate_high * big_n, floor)
    missed = max(missed, floor)
    p = tally.sampling_probability
    return MissEstimate(
        method=method,
        method_label=METHODS[method],
        confidence=confidence,
        k=k,
        n=n,
        tiles_below=big_n,
        rate=rate,
        rate_low=rate_low,
        rate_high=rate_high,
        missed=missed,
        missed_low=missed_low,
        missed_high=missed_high,
        detected=detected,
        found_outside_candidates=found_outside_candidates,
        total=detected + missed,
        total_low=detected + missed_low,
        total_high=detected + missed_high,
        expected_draws=None if p is None else p * big_n,
    )
