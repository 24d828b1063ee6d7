"""Labelling queues under load: the site under gunicorn on PostgreSQL, N simulated volunteers
over HTTP (ask for the next item, look at it, vote) for T seconds.

Each volunteer is a thread with its own HTTP session and API token. A volunteer asks for an
item, looks at it for the think time (uniform between half and one and a half times
``--think-ms``: a person deciding on a tile), votes, and asks again. A monitor polls the
database every 50 ms for an item whose live leases plus votes exceed what it needs (a double
lease); at the end every item's votes are checked against what it needs.

    python bench/queue_load.py --quick            # 50 volunteers, 20 s: under a minute
    python bench/queue_load.py --volunteers 50 --seconds 60 --think-ms 1000

Needs PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres): it creates
and drops its own database ``bearsite_queue_bench``. The load generator runs on the same machine
as the server, so it takes a share of the CPU. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "bearsite_queue_bench"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def fresh_database(server_url: str) -> str:
    """Drop and create the bench database; return its URL."""
    import psycopg

    parts = urlparse(server_url)
    admin = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [BENCH_DB]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return urlunparse(parts._replace(path=f"/{BENCH_DB}"))


def drop_database(server_url: str) -> None:
    import psycopg

    parts = urlparse(server_url)
    with psycopg.connect(urlunparse(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [BENCH_DB]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


def seed(n_items: int, n_volunteers: int, n_gold: int) -> list[str]:
    """Migrate, then one survey with ``n_items`` queue items (candidates, uncertain, audit) and
    ``n_gold`` gold items, and the volunteers with API tokens. Returns the tokens."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from labeling.models import LabelItem, QueueKind, Survey, SurveyImage
    from labeling.queues import roles

    call_command("migrate", verbosity=0)
    survey = Survey.objects.create(name="Load test", gsd_cm=2.4)
    frame = SurveyImage.objects.create(
        survey=survey,
        file="bench/frame.jpg",
        original_name="frame.jpg",
        sha256="0" * 64,
        size_bytes=1,
        format="JPEG",
        width=100_000,
        height=100_000,
    )
    rng = random.Random(0)
    kinds = [QueueKind.CANDIDATES] * 7 + [QueueKind.UNCERTAIN] * 2 + [QueueKind.AUDIT]
    items = []
    for i in range(n_items + n_gold):
        x0, y0 = (i % 400) * 224, (i // 400) * 224
        score = rng.random()
        gold = i >= n_items
        kind = QueueKind.AUDIT if gold else kinds[i % len(kinds)]
        items.append(
            LabelItem(
                kind=kind,
                survey=survey,
                image=frame,
                x0=x0,
                y0=y0,
                x1=x0 + 224,
                y1=y0 + 224,
                score=score,
                priority=score if kind == QueueKind.CANDIDATES else -abs(0.5 - score),
                votes_needed=2,
                model_version_id=1,
                is_gold=gold,
                gold_answer="no_bear" if gold else "",
                context_box=[x0 - 224, y0 - 224, x0 + 448, y0 + 448],
            )
        )
    LabelItem.objects.bulk_create(items, batch_size=2000)
    User = get_user_model()
    password = make_password("bench-volunteer-pw")
    users = User.objects.bulk_create(
        [User(username=f"volunteer{n}", password=password) for n in range(n_volunteers)]
    )
    group = roles.role_group(roles.VOLUNTEER)
    group.user_set.add(*users)
    return [Token.objects.create(user=u).key for u in users]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "bearsite.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited: see {log}\n{log.read_text()[-2000:]}")
        try:
            requests.get(f"http://127.0.0.1:{port}/api/", timeout=2)
            return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not answer within 60 s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(master: int) -> list[int]:
    """The gunicorn master and its workers."""
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                pids.append(int(entry.name))
    return pids


def database_pids(db_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [BENCH_DB],
        ).fetchall()
    return [r[0] for r in rows]


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_ms: list[float] = []
        self.vote_ms: list[float] = []
        self.server_errors = 0
        self.conflicts = 0
        self.empty = 0
        self.votes = 0
        self.other_errors: list[str] = []


def volunteer(base: str, token: str, until: float, think_s: float, seed: int, out: Results) -> None:
    import requests

    rng = random.Random(seed)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    time.sleep(rng.random() * think_s)  # people do not all start on the same second
    while time.monotonic() < until:
        t0 = time.perf_counter()
        try:
            r = session.post(f"{base}/api/queues/candidates/next/", json={}, timeout=30)
        except requests.RequestException as exc:
            with out.lock:
                out.other_errors.append(repr(exc))
            continue
        ms = (time.perf_counter() - t0) * 1000
        with out.lock:
            out.next_ms.append(ms)
            if r.status_code >= 500:
                out.server_errors += 1
        if r.status_code == 204:
            with out.lock:
                out.empty += 1
            time.sleep(think_s)
            continue
        if r.status_code != 200:
            continue
        item = r.json()
        time.sleep(think_s * rng.uniform(0.5, 1.5))
        if time.monotonic() >= until:
            break
        x0, y0 = item["box"][0], item["box"][1]
        body = (
            {"item": item["id"], "answer": "bear", "points": [[x0 + 112, y0 + 112]]}
            if item["id"] % 5 == 0
            else {"item": item["id"], "answer": "no_bear"}
        )
        body["duration_ms"] = int(think_s * 1000)
        t0 = time.perf_counter()
        try:
            r = session.post(f"{base}/api/votes/", json=body, timeout=30)
        except requests.RequestException as exc:
            with out.lock:
                out.other_errors.append(repr(exc))
            continue
        ms = (time.perf_counter() - t0) * 1000
        with out.lock:
            out.vote_ms.append(ms)
            if r.status_code >= 500:
                out.server_errors += 1
            elif r.status_code == 409:
                out.conflicts += 1
            elif r.status_code == 201:
                out.votes += 1


# Only items with a live lease can be over-leased: the monitor looks at those alone, so that
# its polling costs the database little.
OVER_LEASED = """
SELECT l.item_id FROM labeling_lease l JOIN labeling_labelitem li ON li.id = l.item_id
WHERE l.expires_at > now() AND li.status = 'open' AND NOT li.is_gold
GROUP BY l.item_id, li.votes_count, li.votes_needed
HAVING COUNT(*) + li.votes_count > li.votes_needed
"""
OVER_VOTED = """
SELECT v.item_id FROM labeling_vote v JOIN labeling_labelitem li ON li.id = v.item_id
WHERE v.undone_at IS NULL AND NOT v.is_gold_answer AND NOT v.is_review
GROUP BY v.item_id, li.votes_needed HAVING COUNT(*) > li.votes_needed
"""


def monitor(db_url: str, stop: threading.Event, seen: set, polls: list) -> None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        while not stop.is_set():
            seen.update(row[0] for row in conn.execute(OVER_LEASED).fetchall())
            polls.append(1)
            stop.wait(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="50 volunteers for 20 s (under a minute)")
    ap.add_argument("--volunteers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument(
        "--think-ms", type=float, default=1000, help="mean time a volunteer looks at a tile"
    )
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--gold", type=int, default=500)
    ap.add_argument(
        "--workers", type=int, default=(os.cpu_count() or 2) + 1, help="gunicorn processes"
    )
    ap.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    ap.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    ap.add_argument("--keep-db", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 20)
        args.items = min(args.items, 5000)
    if not args.database_url.startswith("postgres"):
        raise SystemExit("This benchmark needs PostgreSQL: set DATABASE_URL or --database-url.")

    t_setup = time.perf_counter()
    db_url = fresh_database(args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="bearsite-queue-bench-"))
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        BEARSITE_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="bearsite.settings",
        BEARSITE_LOG_LEVEL="WARNING",
    )
    env.pop("BEARSITE_DEBUG", None)
    os.environ.update(
        {
            k: env[k]
            for k in (
                "DATABASE_URL",
                "BEARSITE_DATA_DIR",
                "DJANGO_SETTINGS_MODULE",
                "BEARSITE_LOG_LEVEL",
            )
        }
    )
    sys.path.insert(0, str(ROOT))
    tokens = seed(args.items, args.volunteers, args.gold)
    from django.db import connection, connections

    with connection.cursor() as cursor:
        # Fresh statistics after the bulk load, as autovacuum would gather on a live site:
        # without them the planner sorts every open item instead of walking the index.
        cursor.execute("ANALYZE")
    connections.close_all()
    port = free_port()
    server = start_server(env, port, args.workers, args.threads, data_dir / "gunicorn.log")
    setup_s = time.perf_counter() - t_setup
    base = f"http://127.0.0.1:{port}"
    results = Results()
    stop = threading.Event()
    over_leased: set = set()
    polls: list = []
    watcher = threading.Thread(target=monitor, args=(db_url, stop, over_leased, polls), daemon=True)
    watcher.start()
    load_before = os.getloadavg()[0]
    web_pids = server_pids(server.pid)
    web_cpu0 = sum(_cpu_seconds(pid) for pid in web_pids)
    until = time.monotonic() + args.seconds
    t0 = time.perf_counter()
    crowd = [
        threading.Thread(
            target=volunteer, args=(base, tok, until, args.think_ms / 1000, n, results), daemon=True
        )
        for n, tok in enumerate(tokens)
    ]
    for th in crowd:
        th.start()
    for th in crowd:
        th.join(args.seconds + 60)
    elapsed = time.perf_counter() - t0
    web_cpu = sum(_cpu_seconds(pid) for pid in web_pids) - web_cpu0
    # Database backends keep their CPU time until they close: read them before the server stops
    # (the monitor's own backend is left out).
    db_cpu = sum(_cpu_seconds(pid) for pid in database_pids(db_url))
    load_after = os.getloadavg()[0]
    stop.set()
    watcher.join(5)
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)

    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        over_voted = [row[0] for row in conn.execute(OVER_VOTED).fetchall()]
        votes_in_db = conn.execute(
            "SELECT COUNT(*) FROM labeling_vote WHERE undone_at IS NULL"
        ).fetchone()[0]
        gold_votes = conn.execute(
            "SELECT COUNT(*) FROM labeling_vote WHERE is_gold_answer"
        ).fetchone()[0]
    if not args.keep_db:
        drop_database(args.database_url)

    requests_made = len(results.next_ms) + len(results.vote_ms)
    summary = {
        "volunteers": args.volunteers,
        "seconds": round(elapsed, 1),
        "think_ms": args.think_ms,
        "votes": results.votes,
        "votes_per_s": round(results.votes / elapsed, 1),
        "next_requests": len(results.next_ms),
        "next_p50_ms": round(percentile(results.next_ms, 0.5), 1),
        "next_p95_ms": round(percentile(results.next_ms, 0.95), 1),
        "vote_p50_ms": round(percentile(results.vote_ms, 0.5), 1),
        "vote_p95_ms": round(percentile(results.vote_ms, 0.95), 1),
        "double_leases": len(over_leased) + len(over_voted),
        "server_errors": results.server_errors,
        "conflicts": results.conflicts,
        "empty_queue_answers": results.empty,
        "gold_share": round(gold_votes / votes_in_db, 3) if votes_in_db else None,
        "monitor_polls": len(polls),
        "web_cpu_ms_per_request": round(1000 * web_cpu / max(1, requests_made), 2),
        "db_cpu_ms_per_request": round(1000 * db_cpu / max(1, requests_made), 2),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "gunicorn": f"{args.workers} processes x {args.threads} threads",
        "cpus": os.cpu_count(),
        "setup_s": round(setup_s, 1),
    }
    print(
        f"{args.volunteers} volunteers, {elapsed:.0f} s, think {args.think_ms:.0f} ms: "
        f"{summary['votes_per_s']} votes/s; next p50 {summary['next_p50_ms']} ms, "
        f"p95 {summary['next_p95_ms']} ms; vote p50 {summary['vote_p50_ms']} ms, "
        f"p95 {summary['vote_p95_ms']} ms"
    )
    print(
        f"CPU per request: web {summary['web_cpu_ms_per_request']} ms, database "
        f"{summary['db_cpu_ms_per_request']} ms; load average {load_before:.1f} -> "
        f"{load_after:.1f} on {os.cpu_count()} CPUs (other work on the machine slows every figure)"
    )
    print(
        f"double leases {summary['double_leases']} (monitor polls {len(polls)}), server errors "
        f"{results.server_errors}, refused late votes {results.conflicts}, setup {setup_s:.0f} s"
    )
    if results.other_errors:
        print(f"client errors: {len(results.other_errors)}, e.g. {results.other_errors[0]}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
