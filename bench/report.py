"""The survey report and its exports on a large synthetic survey in PostgreSQL, in one run.

Creates a throw-away database ``bearsite_bench_<pid>`` next to the one ``DATABASE_URL`` names
(default ``postgres://postgres@127.0.0.1:5432/test``), builds a survey of N frames (default
10 000; 2 000 with ``--quick``) with one 20 x 25 score grid each (500 tiles: 5 million tiles at
10 000 frames, 50 million at 100 000), candidates, an audit sample at p = 0.002 mostly labelled,
uncertain tiles, votes and Web images, all with bulk inserts in chunks of 5 000 frames; then times,
through Django's test client:

- the first view of the report, which computes its snapshot inline (``report_cold_ms``);
- the page served from a fresh snapshot (``report_ms``, median of repeats) and its queries;
- the page served from a stale snapshot, queueing one refresh (``report_stale_ms``), and the API;
- the forced recompute the refresh task and "Refresh now" run (``report_compute_ms``);
- every sort of the live frame table, first page and page 50, with PostgreSQL's plan of one;
- the streamed CSV, GeoJSON and COCO exports (consumed to the end; ``--no-exports`` skips them).
  With ``tracemalloc`` on, the peak memory of an export after its first quarter has streamed is
  compared with its peak at the end: they stay alike when memory does not grow with the survey.

The database is dropped at the end, whatever happens.

    python bench/report.py --quick                      # under 60 s on 2 cores
    python bench/report.py --frames 10000 --repeats 7
    python bench/report.py --frames 100000 --no-exports

The last line is one JSON object with ``report_ms``, ``report_cold_ms``, ``report_compute_ms``,
``csv_export_s``, ``coco_export_s`` and ``peak_rss_mb``, among others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402

ROWS, COLS, TILE, STRIDE = 20, 25, 224, 141


def _with_db(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def create_database(base_url: str) -> tuple[str, str]:
    import psycopg

    name = f"bearsite_bench_{os.getpid()}"
    with psycopg.connect(_conninfo(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, _with_db(base_url, name)


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_conninfo(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _conninfo(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


CHUNK = 5_000  # frames generated and inserted at a time: memory stays flat at 100 000 frames


def build_survey(name: str, frames: int, *, seed: int, version, users, web: bool) -> dict:
    """One synthetic survey, bulk-inserted in chunks of frames. Returns what was made (counts)."""
    import numpy as np

    from inference.models import InferenceJob
    from labeling.models import LabelItem, QueueKind, Survey, Vote, WebImage

    rng = np.random.default_rng(seed)
    survey = Survey.objects.create(name=name, gsd_cm=2.4, animal_length_m=2.0)
    job = InferenceJob.objects.create(
        survey=survey,
        model_version=version,
        review_threshold=0.5,
        audit_rate=0.002,
        status=InferenceJob.Status.SUCCEEDED,
        frames_total=frames,
        frames_done=frames,
    )
    n_below = n_items = 0
    for first in range(0, frames, CHUNK):
        below, made = _build_chunk(
            survey, job, version, name, range(first, min(first + CHUNK, frames)), rng
        )
        n_below += below
        n_items += made
    retired = list(
        LabelItem.objects.filter(survey=survey, status="retired").values_list(
            "pk", "consensus", "votes_count"
        )
    )
    votes = [
        Vote(
            item_id=pk,
            user=users[(pk + j) % len(users)],
            answer=consensus,
            duration_ms=int(rng.integers(800, 9000)),
        )
        for pk, consensus, n in retired
        for j in range(n)
    ]
    if web:
        webs = [
            WebImage(
                file=f"web/{name}-{i}.jpg",
                original_name=f"bear{i}.jpg",
                sha256=hashlib.sha256(f"web-{name}-{i}".encode()).hexdigest(),
                phash="0" * 16,
                format="JPEG",
                width=1024,
                height=768,
                curation="usable",
            )
            for i in range(300)
        ]
        WebImage.objects.bulk_create(webs)
        web_items = LabelItem.objects.bulk_create(
            [
                LabelItem(
                    kind=QueueKind.WEB,
                    web_image=w,
                    status="retired",
                    consensus="usable",
                    consensus_boxes=[[100, 120, 400, 380]],
                    votes_count=1,
                )
                for w in WebImage.objects.filter(original_name__startswith="bear")
            ]
        )
        votes += [
            Vote(item=it, user=users[0], answer="usable", boxes=[[100, 120, 400, 380]])
            for it in web_items
        ]
    Vote.objects.bulk_create(votes, batch_size=5000)
    return {
        "survey": survey,
        "frames": frames,
        "tiles": frames * ROWS * COLS,
        "tiles_below": n_below,
        "items": n_items,
        "votes": len(votes),
    }


def _build_chunk(survey, job, version, name: str, indices: range, rng) -> tuple[int, int]:
    """Frames ``indices`` of the survey with their score grids and queued items. Returns (tiles
    below the threshold, items made)."""
    import numpy as np

    from inference.models import FrameScore
    from labeling.models import LabelItem, QueueKind, SurveyImage

    start = datetime(2026, 4, 12, 8, 0, tzinfo=UTC)
    # A lawnmower pattern of flight lines; 5 % of frames without GPS.
    line = 400
    images = SurveyImage.objects.bulk_create(
        [
            SurveyImage(
                survey=survey,
                file=f"frames/{name}/{i:06d}.jpg",
                original_name=f"IMG_{i:06d}.JPG",
                sha256=hashlib.sha256(f"{name}-{i}".encode()).hexdigest(),
                size_bytes=12_000_000,
                format="JPEG",
                width=6000,
                height=4000,
                captured_at=start + timedelta(seconds=2 * i),
                latitude=None
                if i % 20 == 7
                else 71.0 + 0.0012 * (i % line if (i // line) % 2 == 0 else line - i % line),
                longitude=None if i % 20 == 7 else -141.0 + 0.01 * (i // line),
            )
            for i in indices
        ],
        batch_size=2000,
    )
    ids = [img.pk for img in images]  # PostgreSQL returns the new ids
    ys = [r * STRIDE for r in range(ROWS)]
    xs = [c * STRIDE for c in range(COLS)]
    scores, items = [], []
    n_below = 0
    # Draw every frame's grid and the audit sample at once (vectorised), then make the rows.
    grids = rng.beta(1, 25, size=(len(ids), ROWS, COLS)).astype(np.float32)
    hots = rng.random(len(ids)) < 0.03
    hot_r, hot_c = rng.integers(0, ROWS, len(ids)), rng.integers(0, COLS, len(ids))
    grids[hots, hot_r[hots], hot_c[hots]] = rng.uniform(0.5, 1.0, int(hots.sum()))
    audit_draws = rng.random(grids.shape) < 0.002
    for k, image_id in enumerate(ids):
        grid = grids[k]
        hot = bool(hots[k])
        r, c = int(hot_r[k]), int(hot_c[k])
        above = int((grid >= 0.5).sum())
        n_below += grid.size - above
        scores.append(
            FrameScore(
                image_id=image_id,
                model_version=version,
                job=job,
                tile=TILE,
                rows=ROWS,
                cols=COLS,
                ys=ys,
                xs=xs,
                grid=grid.astype(np.float16).tobytes(),
                max_score=float(grid.max()),
                n_candidates=1 if hot else 0,
                n_tiles_above=above,
            )
        )
        if hot:
            x0, y0 = xs[c], ys[r]
            is_bear = rng.random() < 0.3
            retired = rng.random() < 0.7
            items.append(
                LabelItem(
                    kind=QueueKind.CANDIDATES,
                    survey=survey,
                    image_id=image_id,
                    x0=x0,
                    y0=y0,
                    x1=x0 + TILE,
                    y1=y0 + TILE,
                    centre_x=x0 + 112,
                    centre_y=y0 + 112,
                    score=float(grid[r, c]),
                    model_version_id=version.pk,
                    tile_crop=f"crops/{image_id}/c-{x0}-{y0}-tile.png",
                    status="retired" if retired else "open",
                    consensus=("bear" if is_bear else "no_bear") if retired else "",
                    consensus_points=[[x0 + 100.0, y0 + 120.0]] if retired and is_bear else [],
                    votes_count=2 if retired else 0,
                )
            )
        # The audit sample: each tile below the threshold with probability 0.002.
        for r2, c2 in zip(*np.nonzero((grid < 0.5) & audit_draws[k]), strict=True):
            x0, y0 = xs[c2], ys[r2]
            labelled = rng.random() < 0.7
            bear = labelled and rng.random() < 0.002
            items.append(
                LabelItem(
                    kind=QueueKind.AUDIT,
                    survey=survey,
                    image_id=image_id,
                    x0=x0,
                    y0=y0,
                    x1=x0 + TILE,
                    y1=y0 + TILE,
                    score=float(grid[r2, c2]),
                    sampling_probability=0.002,
                    model_version_id=version.pk,
                    tile_crop=f"crops/{image_id}/a-{x0}-{y0}-tile.png",
                    status="retired" if labelled else "open",
                    consensus=("bear" if bear else "no_bear") if labelled else "",
                    consensus_points=[[x0 + 70.0, y0 + 70.0]] if bear else [],
                    votes_count=1 if labelled else 0,
                )
            )
        if k % 200 == 0:
            r3, c3 = int(rng.integers(0, ROWS)), int(rng.integers(0, COLS))
            items.append(
                LabelItem(
                    kind=QueueKind.UNCERTAIN,
                    survey=survey,
                    image_id=image_id,
                    x0=xs[c3],
                    y0=ys[r3],
                    x1=xs[c3] + TILE,
                    y1=ys[r3] + TILE,
                    score=0.45,
                    model_version_id=version.pk,
                    status="retired",
                    consensus="no_bear",
                    votes_count=2,
                )
            )
    FrameScore.objects.bulk_create(scores, batch_size=2000)
    LabelItem.objects.bulk_create(items, batch_size=5000)
    return n_below, len(items)


def frame_page_plan(survey) -> list[str]:
    """PostgreSQL's plan (EXPLAIN ANALYZE) of the query the frame table's first page runs, sorted
    by score (as the page does it: counts from the snapshot)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from results import selectors
    from results.models import ReportSnapshot

    snap = ReportSnapshot.objects.filter(survey=survey, is_default=True).first()
    with CaptureQueriesContext(connection) as ctx:
        selectors.frame_page(
            survey=survey,
            version_id=snap.model_version_id,
            per_frame={int(k): n for k, n in snap.data["bears_per_frame"]},
            count=snap.data["counts"]["frames_total"],
            scored=snap.data["counts"]["frames_scored"],
        )
    with connection.cursor() as cur:
        cur.execute("EXPLAIN ANALYZE " + ctx.captured_queries[-1]["sql"])
        return [row[0] for row in cur.fetchall()]


def consume(response) -> tuple[int, int]:
    """Read a streamed response to the end: (bytes, chunks)."""
    size = chunks = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        chunks += 1
    return size, chunks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=None, help="default 10 000 (2 000 with --quick)")
    ap.add_argument("--no-exports", action="store_true", help="time the report only")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    if args.quick and args.frames is None:
        args.frames = 2_000
    args.frames = args.frames or 10_000
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not base.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "bench/report.py measures PostgreSQL: set DATABASE_URL=postgres://... (it creates "
            "and drops its own database next to the one named)"
        )
    t_start = time.perf_counter()
    name, url = create_database(base)
    os.environ["DATABASE_URL"] = url
    try:
        figures = run(args, repeats, name)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(base, name)
    figures["total_s"] = round(time.perf_counter() - t_start, 1)
    figures["peak_rss_mb"] = round(_django.peak_rss_mb(), 1)
    print(json.dumps(figures))


def run(args, repeats: int, dbname: str) -> dict:
    t0 = time.perf_counter()
    _django.setup("bearsite-bench-report-")
    migrate_s = time.perf_counter() - t0
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from inference.models import ModelVersion
    from results import services
    from results.models import ReportSnapshot

    User = get_user_model()
    lead = User.objects.create(username="lead", is_staff=True, is_superuser=True)
    users = User.objects.bulk_create([User(username=f"volunteer{i}") for i in range(20)])
    version = ModelVersion.objects.create(
        name="resnet50-bench",
        checkpoint="models/bench.pt",
        sha256="0" * 64,
        init="finetuned",
        status="active",
        review_threshold=0.5,
        metrics={
            "pr_curve": {
                "precision": [1, 0.9, 0.6],
                "recall": [0.3, 0.8, 0.95],
                "thresholds": [0.9, 0.5, 0.2],
            },
            "ap": 0.8,
            "recall": 0.8,
            "precision": 0.9,
            "threshold": 0.5,
        },
    )
    t0 = time.perf_counter()
    big = build_survey("bench-large", args.frames, seed=1, version=version, users=users, web=True)
    build_s = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(
        f"database {dbname}: migrated in {migrate_s:.1f} s; built {big['frames']} frames, "
        f"{big['tiles']:,} tiles, {big['items']:,} items, {big['votes']:,} votes in {build_s:.1f} s"
    )

    client = Client()
    client.force_login(lead)
    # Warm templates, URL resolvers and the connection on a tiny survey, so the first view of
    # the big one measures the report, not Django's first request.
    tiny = build_survey("bench-tiny", 20, seed=2, version=version, users=users, web=False)
    assert client.get(f"/surveys/{tiny['survey'].pk}/report/").status_code == 200
    survey = big["survey"]
    report_url = f"/surveys/{survey.pk}/report/"

    def timed_get(url: str):
        with CaptureQueriesContext(connection) as ctx:
            t = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - t) * 1000
        assert response.status_code == 200, (url, response.status_code)
        return elapsed, len(ctx.captured_queries), response

    # Cold: no snapshot yet, the first view computes it inline and stores it.
    cold_ms, cold_queries, _ = timed_get(report_url)
    # Served: the snapshot is fresh.
    served = [timed_get(report_url) for _ in range(repeats)]
    times = [t for t, _, _ in served]
    report_ms = statistics.median(times)
    queries, response = served[-1][1], served[-1][2]
    html = response.content.decode()
    assert "Figures as of" in html and "updating" not in html
    api_ms = statistics.median(
        timed_get(f"/api/surveys/{survey.pk}/report/")[0] for _ in range(repeats)
    )
    # Stale: the data changed; the page serves the last snapshot and queues one refresh (sent
    # to the embedded broker here, which no worker reads).
    stale = []
    for _ in range(repeats):
        services.survey_data_changed(survey_id=survey.pk)
        ReportSnapshot.objects.filter(survey=survey).update(refresh_requested_at=None)
        elapsed, stale_queries, response = timed_get(report_url)
        assert "updating" in response.content.decode()
        stale.append(elapsed)
    report_stale_ms = statistics.median(stale)
    # The recompute itself (what the refresh task and "Refresh now" do), forced.
    computes = []
    for _ in range(repeats):
        t = time.perf_counter()
        services.report_refresh(survey_id=survey.pk, force=True)
        computes.append((time.perf_counter() - t) * 1000)
    compute_ms = statistics.median(computes)
    print(
        f"report page from its snapshot: median {report_ms:.0f} ms over {repeats} "
        f"(min {min(times):.0f}, max {max(times):.0f}), {queries} queries, "
        f"{len(html) / 1024:.0f} KiB; API {api_ms:.0f} ms; stale snapshot served + refresh "
        f"queued {report_stale_ms:.0f} ms ({stale_queries} queries)"
    )
    print(
        f"first view (computes the snapshot inline): {cold_ms:.0f} ms, {cold_queries} queries; "
        f"forced recompute (refresh task, Refresh now): median {compute_ms:.0f} ms "
        f"(min {min(computes):.0f}, max {max(computes):.0f}); "
        f"x{compute_ms / report_ms:.0f} the served page"
    )

    # The frame table is read live, one page at a time: every sort, first and a deep page.
    frame_table = {}
    for key in ("score", "candidates", "confirmed", "name", "time"):
        for page in (1, 50):
            runs = [timed_get(f"{report_url}?sort={key}&page={page}")[0] for _ in range(3)]
            frame_table[f"{key}_p{page}"] = round(statistics.median(runs), 1)
    sorted_ms = frame_table["confirmed_p50"]
    print(
        "frame table pages (whole page, ms): "
        + ", ".join(f"{k} {v:.0f}" for k, v in frame_table.items())
    )
    plan = frame_page_plan(survey)
    print("frame table query plan (sort by score, page 1):\n  " + "\n  ".join(plan[:8]))

    exports = {} if args.no_exports else time_exports(client, big, repeats)

    return {
        "frames": big["frames"],
        "tiles": big["tiles"],
        "label_items": big["items"],
        "report_ms": round(report_ms, 1),
        "report_queries": queries,
        "report_cold_ms": round(cold_ms, 1),
        "report_cold_queries": cold_queries,
        "report_compute_ms": round(compute_ms, 1),
        "report_stale_ms": round(report_stale_ms, 1),
        "api_report_ms": round(api_ms, 1),
        "report_sorted_page_ms": round(sorted_ms, 1),
        "frame_table_ms": frame_table,
        "frame_table_plan_top": plan[0] if plan else "",
        "build_s": round(build_s, 1),
    } | exports


def time_exports(client, big: dict, repeats: int) -> dict:
    """The streamed CSV, GeoJSON and COCO exports: median time, size, and the peak of Python
    memory after a quarter and at the end of the stream."""

    def export(survey, fmt: str) -> tuple[float, int, int]:
        path = {"csv": "detections.csv", "geojson": "detections.geojson", "coco": "coco.json"}[fmt]
        t = time.perf_counter()
        size, chunks = consume(client.get(f"/surveys/{survey.pk}/report/{path}"))
        return time.perf_counter() - t, size, chunks

    results = {}
    for fmt in ("csv", "geojson", "coco"):
        runs = [export(big["survey"], fmt) for _ in range(max(1, repeats // 2))]
        results[fmt] = (statistics.median(r[0] for r in runs), runs[0][1], runs[0][2])
        print(
            f"{fmt} export ({big['frames']} frames): median {results[fmt][0]:.2f} s, "
            f"{results[fmt][1] / 1e6:.2f} MB"
        )

    # Memory: the peak of Python allocations after a quarter of the export has streamed, and at
    # its end. Flat streaming keeps them alike (bounded by one fetch of rows from the cursor);
    # an export that accumulates would grow four times.
    mem = {}
    for fmt in ("csv", "coco"):
        total_chunks = results[fmt][2]
        response = client.get(
            f"/surveys/{big['survey'].pk}/report/"
            + ("detections.csv" if fmt == "csv" else "coco.json")
        )
        tracemalloc.start()
        quarter = None
        for i, _chunk in enumerate(response.streaming_content, start=1):
            if i == max(total_chunks // 4, 1):
                quarter = tracemalloc.get_traced_memory()[1] / 1e6
        mem[fmt] = (quarter, tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
        print(
            f"{fmt} export peak Python memory: {mem[fmt][0]:.2f} MB after the first quarter "
            f"({total_chunks // 4} of {total_chunks} chunks), {mem[fmt][1]:.2f} MB at the end"
        )
    return {
        "csv_export_s": round(results["csv"][0], 3),
        "csv_bytes": results["csv"][1],
        "geojson_export_s": round(results["geojson"][0], 3),
        "coco_export_s": round(results["coco"][0], 3),
        "coco_bytes": results["coco"][1],
        "csv_export_peak_mb_quarter_end": [round(v, 2) for v in mem["csv"]],
        "coco_export_peak_mb_quarter_end": [round(v, 2) for v in mem["coco"]],
    }


if __name__ == "__main__":
    main()
