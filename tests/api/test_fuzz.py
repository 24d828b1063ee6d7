"""Schemathesis against the OpenAPI schema on a live test server, with an admin's token.

Goal: no 5xx response and every response body conforms to the schema. The number of
operations and cases checked is printed (and saved in test-artifacts/fuzz-summary.txt)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.fuzz
MAX_EXAMPLES = 8


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_server, django_user_model, tmp_path, artifacts_dir, capsys):
    from tests.api.seed import seed_api_data

    admin = django_user_model.objects.create_superuser("fuzz", "fuzz@example.org", "fuzz-pw-123")
    seed_api_data(admin)
    token = Token.objects.create(user=admin).key
    report_dir = tmp_path / "reports"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{live_server.url}/api/schema/",
        "--header", f"Authorization: Token {token}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,fuzzing", "--seed", "20261129",
        "--generation-database", "none", "--no-shrink", "--workers", "1",
        "--request-timeout", "60", "--report", "junit", "--report-dir", str(report_dir),
        "--exclude-path-regex", "/api/token/",
        "--suppress-health-check", "all",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    output = run.stdout + run.stderr
    (artifacts_dir / "fuzz-output.txt").write_text(output)
    junit = next(report_dir.glob("*.xml"), None)
    operations = cases = 0
    if junit is not None:
        tree = ElementTree.parse(junit)
        operations = len(tree.findall(".//testcase"))
    m = re.search(r"(\d+)\s+generated", output)
    cases = int(m.group(1)) if m else 0
    summary = f"schemathesis: {operations} operations, {cases} generated cases, exit {run.returncode}"
    (artifacts_dir / "fuzz-summary.txt").write_text(summary + "\n")
    with capsys.disabled():
        print("\n" + summary)
    assert operations > 20, output[-4000:]
    assert run.returncode == 0, output[-6000:]
