"""Inline SVG for the report: the map, detections over the flight, score histograms, PR curves.

Pure Python (no Django): each function takes the report's plain dataclasses and returns one
``<svg>`` string, with every text escaped. Drawn on the server so the page needs no online tile
service and no chart library, and its size is bounded by the number of bins, not of frames.
Elements carry classes (``frame-cell``, ``candidate``, ``bear``, ``bar``...) that the page's
script and the tests use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH = 720
FRAME_COLOUR = "#4f7fb3"
CANDIDATE_COLOUR = "#f08c00"
BEAR_COLOUR = "#d62828"
NO_BEAR_COLOUR = "#8a99ab"
CURVE_COLOURS = ("#0b5cad", "#7b2cbf", "#2b9348")


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _svg(width: float, height: float, body: list[str], label: str, cls: str) -> str:
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {_f(width)} {_f(height)}" width="100%" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    step = _nice_step(hi - lo, target)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + 1e-12 and len(out) < 50:
        out.append(round(v, 10))
        v += step
    return out


# --- Map ------------------------------------------------------------------------------------------


def map_svg(data, *, frame_url: Callable[[int], str]) -> str:
    """Frames (binned), open candidates (binned) and confirmed bears on an equirectangular
    projection of the survey's bounding box, north up, with a scale bar."""
    margin_l, margin_b, margin_t, margin_r = 56, 28, 8, 8
    inner_w = WIDTH - margin_l - margin_r
    mid = math.radians((data.lat_min + data.lat_max) / 2)
    cos_mid = max(math.cos(mid), 0.05)
    span_x = (data.lon_max - data.lon_min) * cos_mid
    span_y = data.lat_max - data.lat_min
    inner_h = max(120.0, min(inner_w * span_y / span_x, 900.0))
    height = inner_h + margin_t + margin_b
    cw, ch = inner_w / data.ncols, inner_h / data.nrows

    def px(lon: float, lat: float) -> tuple[float, float]:
        x = margin_l + (lon - data.lon_min) / (data.lon_max - data.lon_min) * inner_w
        y = margin_t + (data.lat_max - lat) / (data.lat_max - data.lat_min) * inner_h
        return x, y

    body = [
        f'<rect x="{margin_l}" y="{margin_t}" width="{_f(inner_w)}" height="{_f(inner_h)}" '
        f'fill="#eef3f8" stroke="#c9d3de"/>',
        '<g class="viewport">',
    ]
    # Frame cells, shaded by how many frames they hold (log scale, five shades). One <path> per
    # shade keeps the page small: a survey of 100 000 frames fills a few thousand cells.
    most = max((n for _, _, n in data.cells), default=1)
    # A cell is drawn at least 6 px wide so a lone frame stays visible on a large map.
    w, h = max(cw, 6.0), max(ch, 6.0)
    shades: dict[int, list[str]] = {}
    counts: dict[int, int] = {}
    for col, row, n in data.cells:
        level = min(4, int(5 * math.log1p(n) / math.log1p(most))) if most > 1 else 4
        x = margin_l + (col + 0.5) * cw - w / 2
        y = margin_t + (data.nrows - 0.5 - row) * ch - h / 2
        shades.setdefault(level, []).append(f"M{x:.1f} {y:.1f}h{w:.1f}v{h:.1f}h{-w:.1f}z")
        counts[level] = counts.get(level, 0) + n
    for level in sorted(shades):
        cells = shades[level]
        body.append(
            f'<path class="frame-cell" data-cells="{len(cells)}" d="{"".join(cells)}" '
            f'fill="{FRAME_COLOUR}" fill-opacity="{0.3 + 0.7 * (level + 1) / 5:.2f}">'
            f"<title>{counts[level]} frames in {len(cells)} cells</title></path>"
        )
    for col, row, n in data.candidates:
        x = margin_l + (col + 0.5) * cw
        y = margin_t + (data.nrows - 0.5 - row) * ch
        r = 2.5 + 1.5 * math.sqrt(n)
        body.append(
            f'<circle class="candidate" cx="{x:.1f}" cy="{y:.1f}" r="{min(r, 14):.1f}" '
            f'fill="none" stroke="{CANDIDATE_COLOUR}" stroke-width="1.6">'
            f"<title>{n} open candidate{'s' if n != 1 else ''}</title></circle>"
        )
    for lon, lat, frame_id, name in data.bears:
        x, y = px(lon, lat)
        body.append(
            f'<a href="{escape(frame_url(frame_id))}" class="bear-link">'
            f'<circle class="bear" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{BEAR_COLOUR}" '
            f'stroke="#fff" stroke-width="1.5"><title>Confirmed bear in {escape(name)}</title>'
            f"</circle></a>"
        )
    body.append("</g>")
    # Axes: degrees along the frame of the map.
    for lat in _ticks(data.lat_min, data.lat_max, 4):
        _, y = px(data.lon_min, lat)
        body.append(
            f'<text x="{margin_l - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{lat:.3f}°</text>"
        )
    for lon in _ticks(data.lon_min, data.lon_max, 4):
        x, _ = px(lon, data.lat_min)
        shown = lon - 360 if data.lon_shift and lon > 180 else lon
        body.append(
            f'<text x="{x:.1f}" y="{height - 10:.1f}" text-anchor="middle" class="tick">'
            f"{shown:.3f}°</text>"
        )
    # Scale bar (km along the parallel through the middle of the map).
    km_across = span_x * 111.32
    bar_km = _nice_step(km_across, 4)
    bar_px = bar_km / km_across * inner_w
    bx, by = margin_l + 10, margin_t + inner_h - 12
    label = f"{_f(bar_km)} km" if bar_km >= 1 else f"{_f(bar_km * 1000)} m"
    body.append(
        f'<g class="scale"><rect x="{bx}" y="{by}" width="{bar_px:.1f}" height="4" fill="#1d2733"/>'
        f'<text x="{bx}" y="{by - 4}" class="tick">{label}</text></g>'
        f'<text x="{margin_l + inner_w - 14}" y="{margin_t + 18}" class="tick" '
        f'text-anchor="middle">N ↑</text>'
    )
    return _svg(
        WIDTH, height, body, "Map of the survey: frames, open candidates and confirmed bears", "map"
    )


# --- Bars -----------------------------------------------------------------------------------------


def _bar_panel(
    values: Sequence[float],
    *,
    top: float,
    height: float,
    left: float,
    width: float,
    colour: str,
    label: str,
    log: bool = False,
    titles: Sequence[str] | None = None,
) -> list[str]:
    """One row of bars with its label and maximum; ``log`` scales bar heights by log(1 + v)."""
    out = [
        f'<text x="{left}" y="{top - 4:.1f}" class="panel-label">{escape(label)}</text>',
        f'<line x1="{left}" x2="{left + width}" y1="{top + height:.1f}" y2="{top + height:.1f}" '
        f'stroke="#c9d3de"/>',
    ]
    peak = max(values, default=0)
    if peak <= 0:
        return out
    scale = (lambda v: math.log1p(v) / math.log1p(peak)) if log else (lambda v: v / peak)
    bw = width / max(len(values), 1)
    for i, v in enumerate(values):
        if v <= 0:
            continue
        h = max(scale(v) * height, 1.0)
        title = titles[i] if titles else _f(v)
        out.append(
            f'<rect class="bar" x="{left + i * bw + 0.5:.1f}" y="{top + height - h:.1f}" '
            f'width="{max(bw - 1, 0.8):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(title)}</title></rect>"
        )
    out.append(
        f'<text x="{left + width}" y="{top - 4:.1f}" text-anchor="end" class="tick">'
        f"max {_f(peak)}{' (log scale)' if log else ''}</text>"
    )
    return out


def timeline_svg(timeline) -> str:
    """Frames, model detections and confirmed bears per time bin over the flight."""
    left, width, panel, gap = 10, WIDTH - 20, 56, 30
    bins = timeline.bins
    fmt = {"second": "%H:%M:%S", "minute": "%H:%M", "hour": "%d %b %H:00", "day": "%d %b %Y"}[
        timeline.unit
    ]

    def titles(what: str, values) -> list[str]:
        return [f"{b.start.strftime(fmt)}: {v} {what}" for b, v in zip(bins, values, strict=True)]

    body: list[str] = []
    top = 18
    for what, values, colour in (
        ("frames", [b.frames for b in bins], FRAME_COLOUR),
        ("model detections", [b.candidates for b in bins], CANDIDATE_COLOUR),
        ("confirmed bears", [b.bears for b in bins], BEAR_COLOUR),
    ):
        body += _bar_panel(
            values,
            top=top,
            height=panel,
            left=left,
            width=width,
            colour=colour,
            label=f"{what} per {timeline.unit}",
            titles=titles(what, values),
        )
        top += panel + gap
    if bins:
        body.append(
            f'<text x="{left}" y="{top - 12}" class="tick">{escape(bins[0].start.strftime(fmt))} UTC'
            f'</text><text x="{left + width}" y="{top - 12}" text-anchor="end" class="tick">'
            f"{escape(bins[-1].start.strftime(fmt))} UTC</text>"
        )
    return _svg(WIDTH, top, body, "Detections over the flight", "timeline")


def histogram_svg(hist) -> str:
    """Frames by their highest tile score (log scale), and labelled tiles by score and answer."""
    left, width, panel, gap = 10, WIDTH - 20, 80, 34
    n = hist.bins
    edges = [f"{i / n:.2f}–{(i + 1) / n:.2f}" for i in range(n)]
    body = _bar_panel(
        hist.frames,
        top=18,
        height=panel,
        left=left,
        width=width,
        colour=FRAME_COLOUR,
        label="frames by highest tile score",
        log=True,
        titles=[f"score {e}: {v} frames" for e, v in zip(edges, hist.frames, strict=True)],
    )
    top2 = 18 + panel + gap
    body += _bar_panel(
        [b + nb for b, nb in zip(hist.bear, hist.no_bear, strict=True)],
        top=top2,
        height=panel,
        left=left,
        width=width,
        colour=NO_BEAR_COLOUR,
        label="labelled tiles by score: bear (red) / no bear (grey)",
        titles=[
            f"score {e}: {b} bear, {nb} no bear"
            for e, b, nb in zip(edges, hist.bear, hist.no_bear, strict=True)
        ],
    )
    peak = max((b + nb for b, nb in zip(hist.bear, hist.no_bear, strict=True)), default=0)
    bw = width / n
    for i, b in enumerate(hist.bear):
        if b and peak:
            h = max(b / peak * panel, 1.0)
            body.append(
                f'<rect class="bar bear-bar" x="{left + i * bw + 0.5:.1f}" '
                f'y="{top2 + panel - h:.1f}" width="{max(bw - 1, 0.8):.1f}" height="{h:.1f}" '
                f'fill="{BEAR_COLOUR}"><title>score {edges[i]}: {b} bear</title></rect>'
            )
    bottom = top2 + panel + 16
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(
            f'<text x="{left + v * width:.1f}" y="{bottom}" text-anchor="middle" class="tick">'
            f"{v:g}</text>"
        )
    if hist.threshold is not None:
        x = left + hist.threshold * width
        body.append(
            f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="12" y2="{top2 + panel}" '
            f'stroke="#1d2733" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="12" class="tick">'
            f"threshold {hist.threshold:g}</text>"
        )
    return _svg(WIDTH, bottom + 6, body, "Score histograms", "histogram")


# --- PR curve -------------------------------------------------------------------------------------


def pr_svg(curves) -> str:
    """Precision against recall for each curve, with its operating point."""
    left, top, size = 46, 12, 300
    width, height = left + size + 250, top + size + 40
    body = [
        f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="#fff" stroke="#c9d3de"/>'
    ]
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        x, y = left + v * size, top + (1 - v) * size
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + size}" stroke="#eef1f5"/>'
            f'<line x1="{left}" x2="{left + size}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef1f5"/>'
            f'<text x="{x:.1f}" y="{top + size + 14}" text-anchor="middle" class="tick">{v:g}</text>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>'
        )
    body.append(
        f'<text x="{left + size / 2}" y="{top + size + 32}" text-anchor="middle" class="tick">'
        f'recall</text><text x="12" y="{top + size / 2}" class="tick" '
        f'transform="rotate(-90 12 {top + size / 2})" text-anchor="middle">precision</text>'
    )
    for i, c in enumerate(curves):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        pts = " ".join(
            f"{left + min(max(r, 0), 1) * size:.1f},{top + (1 - min(max(p, 0), 1)) * size:.1f}"
            for r, p in sorted(zip(c.recall, c.precision, strict=True))
        )
        body.append(
            f'<polyline class="pr-curve" points="{pts}" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(c.name)}</title></polyline>'
        )
        if c.operating is not None:
            r, p = c.operating
            body.append(
                f'<circle class="operating" cx="{left + r * size:.1f}" cy="{top + (1 - p) * size:.1f}" '
                f'r="5" fill="{colour}"><title>{escape(c.name)}: recall {r:.3f}, precision '
                f"{p:.3f} at threshold {c.threshold}</title></circle>"
            )
        ap = f", AP {c.ap:.3f}" if c.ap is not None else ""
        body.append(
            f'<rect x="{left + size + 20}" y="{top + 10 + i * 22}" width="14" height="4" '
            f'fill="{colour}"/><text x="{left + size + 40}" y="{top + 16 + i * 22}" class="tick">'
            f"{escape(c.name)} (#{c.version_id}){ap}</text>"
        )
    return _svg(width, height, body, "Precision-recall curve", "pr")
