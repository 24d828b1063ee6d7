"""Run the whole site in one terminal: web server, a ``cpu`` worker, a ``gpu`` worker and beat.

Each process's output is prefixed with its name. Ctrl-C (or SIGTERM) stops every process
cleanly: children get SIGTERM, then SIGKILL after a grace period. If one process dies, the
others are stopped too, so a broken setup never looks like a running one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

PY = sys.executable
CELERY = [PY, "-m", "celery", "-A", "bearsite"]
COLORS = ["\033[36m", "\033[33m", "\033[35m", "\033[32m"]
RESET = "\033[0m"


def commands(host: str, port: int) -> dict[str, list[str]]:
    return {
        "web": [
            PY, "-m", "gunicorn", "bearsite.wsgi:application", "--bind", f"{host}:{port}",
            "--workers", "2", "--threads", "4", "--timeout", "300", "--access-logfile", "-",
        ],
        "worker-cpu": CELERY + [
            "worker", "-Q", "cpu", "--concurrency", "1", "-n", "cpu@%h", "--loglevel", "INFO",
        ],
        "worker-gpu": CELERY + [
            "worker", "-Q", "gpu", "--pool", "solo", "-n", "gpu@%h", "--loglevel", "INFO",
        ],
        "beat": CELERY + [
            "beat", "--loglevel", "INFO",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile", "",
        ],
    }


def pump(name: str, color: str, stream) -> None:
    tty = sys.stdout.isatty()
    prefix = f"{color}{name:>10} |{RESET} " if tty else f"{name:>10} | "
    for line in iter(stream.readline, b""):
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()


def main() -> int:
    host = os.environ.get("BEARSITE_HOST", "127.0.0.1")
    port = int(os.environ.get("BEARSITE_PORT", "8000"))
    procs: dict[str, subprocess.Popen] = {}
    stopping = threading.Event()

    def stop(*_args) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for i, (name, cmd) in enumerate(commands(host, port).items()):
        # Own process group: Ctrl-C in the terminal reaches us, and we stop children in order.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        procs[name] = proc
        threading.Thread(
            target=pump, args=(name, COLORS[i % len(COLORS)], proc.stdout), daemon=True
        ).start()
    print(f"bearsite is running at http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)

    exit_code = 0
    while not stopping.is_set():
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping the rest.", flush=True)
                exit_code = proc.returncode or 1
                stopping.set()
                break
        stopping.wait(0.5)

    print("stopping…", flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 20
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it.", flush=True)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print("stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
