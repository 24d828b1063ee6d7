"""A report snapshot's JSON: the report's figures encoded once, decoded into the same dataclasses
the page, its charts and the API already render.

No database access here: ``encode`` takes a computed :class:`results.selectors.Report`, ``decode``
returns a :class:`SnapshotReport`. Invariants: ``decode(encode(report, m))`` renders exactly what
``report`` would (counts, estimate for method ``m``, map, plots, bears); every value in the JSON is
a plain number, string, list, dict or ``None`` (datetimes as ISO 8601, non-finite floats as
``None``, since PostgreSQL's jsonb refuses NaN). ``FORMAT`` names the layout: a snapshot in another
layout is treated as missing and recomputed, so changing the layout needs no migration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime

from results import estimate
from results.estimate import AuditTally, MissEstimate
from results.selectors import (
    Bin,
    Counts,
    EstimateBlock,
    Histogram,
    MapData,
    PRCurve,
    Report,
    Timeline,
    VersionChoice,
)

FORMAT = 1


@dataclass(frozen=True)
class VersionRef:
    """The few facts about a model version the page shows; quacks like ``ModelVersion`` for the
    template (``pk``, ``name``, ``get_status_display``)."""

    pk: int
    name: str
    status: str
    status_label: str

    @property
    def id(self) -> int:
        return self.pk

    def get_status_display(self) -> str:
        return self.status_label


@dataclass
class SnapshotReport:
    """The report's figures as stored: what ``results.selectors.Report`` holds, less the survey
    (the caller has it), the frame table (read live) and the bear objects (kept as the rows the
    API returns, and as confirmed bears per frame for the table's "Confirmed" column)."""

    version: VersionRef | None
    active: VersionRef | None
    versions: list[VersionChoice]
    counts: Counts
    estimate: EstimateBlock
    map: MapData | None
    timeline: Timeline | None
    histogram: Histogram | None
    pr_curves: list[PRCurve]
    no_gps: list[dict]
    bears: list[dict]
    bears_per_frame: dict[int, int] = field(default_factory=dict)


def default_version_id(versions: list[VersionChoice]) -> int | None:
    """The version the report shows when none is asked for (as ``selectors.report_version``):
    the active one if it scored the survey, else the one that scored most frames."""
    for c in versions:
        if c.is_active:
            return c.id
    return versions[0].id if versions else None


# --- Encoding -------------------------------------------------------------------------------------


def _clean(value):
    """JSON-safe copy: tuples to lists, datetimes to ISO strings, NaN and infinities to None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _version(v) -> dict | None:
    if v is None:
        return None
    return {
        "pk": v.pk,
        "name": v.name,
        "status": v.status,
        "status_label": str(v.get_status_display()),
    }


def estimate_for_method(block: EstimateBlock, method: str) -> EstimateBlock:
    """The same audit tally with the estimate of another method (pure arithmetic: the
    aggregates behind the tally do not depend on the method)."""
    result = None
    if block.tally is not None and block.tally.labelled > 0 and not block.reason:
        result = estimate.estimate_missed(
            block.tally,
            detected=block.detected,
            found_outside_candidates=block.found_below,
            method=method,
        )
    return EstimateBlock(
        tally=block.tally,
        result=result,
        method=method,
        threshold=block.threshold,
        thresholds_differ=block.thresholds_differ,
        rates_differ=block.rates_differ,
        cell_fallback=block.cell_fallback,
        detected=block.detected,
        found_below=block.found_below,
        reason=block.reason,
    )


def encode(report: Report, method: str) -> dict:
    """The JSON of ``report`` with its estimate made by ``method``."""
    block = estimate_for_method(report.estimate, method)
    bears = report.bears
    timeline = report.timeline
    return _clean(
        {
            "format": FORMAT,
            "version": _version(report.version),
            "active": _version(report.active),
            "versions": [asdict(v) for v in report.versions],
            "counts": asdict(report.counts),
            "estimate": {
                "tally": None if block.tally is None else asdict(block.tally),
                "result": None if block.result is None else asdict(block.result),
                "method": block.method,
                "threshold": block.threshold,
                "thresholds_differ": block.thresholds_differ,
                "rates_differ": block.rates_differ,
                "cell_fallback": block.cell_fallback,
                "detected": block.detected,
                "found_below": block.found_below,
                "reason": block.reason,
            },
            "map": None if report.map is None else asdict(report.map),
            "timeline": None
            if timeline is None
            else {
                "unit": timeline.unit,
                "frames_without_time": timeline.frames_without_time,
                "bins": [[b.start, b.frames, b.candidates, b.bears] for b in timeline.bins],
            },
            "histogram": None if report.histogram is None else asdict(report.histogram),
            "pr_curves": [asdict(c) for c in report.pr_curves],
            "no_gps": list(report.no_gps),
            "bears": [
                {
                    "id": bears.key(b),
                    "frame_id": b.image_id,
                    "frame_file": bears.frames[b.image_id].name,
                    "x": round(b.x, 1),
                    "y": round(b.y, 1),
                    "latitude": bears.frames[b.image_id].latitude,
                    "longitude": bears.frames[b.image_id].longitude,
                    "items": b.item_ids,
                }
                for b in bears.bears
            ],
            "bears_per_frame": [[k, n] for k, n in sorted(bears.per_frame().items())],
        }
    )


# --- Decoding -------------------------------------------------------------------------------------


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _ref(data: dict | None) -> VersionRef | None:
    return None if data is None else VersionRef(**data)


def _tuple_or_none(value):
    return None if value is None else tuple(value)


def decode(data: dict) -> SnapshotReport:
    """The figures of a snapshot made by :func:`encode` (same ``FORMAT``)."""
    e = data["estimate"]
    m = data["map"]
    t = data["timeline"]
    h = data["histogram"]
    return SnapshotReport(
        version=_ref(data["version"]),
        active=_ref(data["active"]),
        versions=[VersionChoice(**v) for v in data["versions"]],
        counts=Counts(**data["counts"]),
        estimate=EstimateBlock(
            tally=None if e["tally"] is None else AuditTally(**e["tally"]),
            result=None if e["result"] is None else MissEstimate(**e["result"]),
            method=e["method"],
            threshold=e["threshold"],
            thresholds_differ=e["thresholds_differ"],
            rates_differ=e["rates_differ"],
            cell_fallback=e["cell_fallback"],
            detected=e["detected"],
            found_below=e["found_below"],
            reason=e["reason"],
        ),
        map=None
        if m is None
        else MapData(
            **{
                **m,
                "cells": [tuple(c) for c in m["cells"]],
                "candidates": [tuple(c) for c in m["candidates"]],
                "bears": [tuple(b) for b in m["bears"]],
            }
        ),
        timeline=None
        if t is None
        else Timeline(
            unit=t["unit"],
            frames_without_time=t["frames_without_time"],
            bins=[Bin(start=_when(s), frames=f, candidates=c, bears=b) for s, f, c, b in t["bins"]],
        ),
        histogram=None if h is None else Histogram(**h),
        pr_curves=[
            PRCurve(**{**c, "operating": _tuple_or_none(c["operating"])}) for c in data["pr_curves"]
        ],
        no_gps=[{**row, "captured_at": _when(row["captured_at"])} for row in data["no_gps"]],
        bears=list(data["bears"]),
        bears_per_frame={int(k): int(n) for k, n in data["bears_per_frame"]},
    )
