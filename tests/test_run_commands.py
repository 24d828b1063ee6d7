"""What `make run` does: the admin account, the demo survey, and the launcher that runs the web
server, both workers and beat, and stops them all on Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from labeling.models import Survey, WebImage

pytestmark = pytest.mark.embedded
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_admin_password_is_printed_once(monkeypatch):
    monkeypatch.delenv("BEARSITE_ADMIN_PASSWORD", raising=False)
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    text = out.getvalue()
    assert "password:" in text
    password = text.split("password:")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    again = io.StringIO()
    call_command("ensure_admin", stdout=again)
    assert "exists" in again.getvalue() and password not in again.getvalue()


@pytest.mark.django_db
def test_admin_password_from_environment(monkeypatch):
    monkeypatch.setenv("BEARSITE_ADMIN_PASSWORD", "from-the-env-123")
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    assert "from-the-env-123" not in out.getvalue()
    assert get_user_model().objects.get(username="admin").check_password("from-the-env-123")


@pytest.mark.django_db
def test_make_demo_survey_ingests_frames_and_web_photos_once(tmp_path):
    args = ["--frames", "3", "--width", "640", "--height", "480", "--out", str(tmp_path / "demo")]
    out = io.StringIO()
    call_command("make_demo_survey", *args, stdout=out)
    survey = Survey.objects.get(name="Demo survey")
    assert survey.images.count() == 3
    assert survey.images.filter(latitude__isnull=False, captured_at__isnull=False).count() == 3
    assert WebImage.objects.count() > 0 and WebImage.objects.exclude(licence="").exists()
    assert (tmp_path / "demo" / "ground_truth.json").exists()
    again = io.StringIO()
    call_command("make_demo_survey", *args, "--if-missing", stdout=again)
    assert "exists with 3 frames" in again.getvalue()
    assert Survey.objects.get(name="Demo survey").images.count() == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launcher_runs_everything_and_ctrl_c_stops_it(tmp_path):
    env = dict(os.environ, BEARSITE_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)  # the embedded default: SQLite and the filesystem broker
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = _free_port()
    env["BEARSITE_PORT"] = str(port)
    log = (tmp_path / "launcher.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bearsite.launcher"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status
            except OSError:
                time.sleep(0.5)
        # both workers and beat report ready in the prefixed log
        while time.monotonic() < deadline:
            text = (tmp_path / "launcher.log").read_text(errors="replace")
            if text.count(" ready.") >= 2 and "beat" in text and "Scheduler" in text:
                break
            time.sleep(0.5)
        text = (tmp_path / "launcher.log").read_text(errors="replace")
        assert status == 200, text[-3000:]
        assert "worker-cpu |" in text and "worker-gpu |" in text and "beat |" in text, text[-3000:]
        assert text.count(" ready.") >= 2, text[-3000:]
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "launcher.log").read_text(errors="replace")
    assert "stopped." in text
    # nothing left listening on the port
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
