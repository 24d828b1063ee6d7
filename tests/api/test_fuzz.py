"""Schemathesis against the OpenAPI schema on a live test server, with an admin's token.

Goal: no 5xx response and every response body conforms to the schema. The number of
operations and cases checked is printed (and saved in test-artifacts/fuzz-summary.txt).

The seed (``seed_fuzz_world``) has a real object for every operation with an id in its path;
a schemathesis config names those ids, so that about half of each such operation's cases act on
one of them (a Web image's curation, a label item's skip, a job's progress...) instead of
a 404 for a random number."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.fuzz
MAX_EXAMPLES = 8
SEEDED_ID_PROBABILITY = 0.5
# Body fields that random data almost never gets right together: a list is drawn from (with a
# probability), a string is always sent. A Web image's curation is then often 'unusable' with a
# reason, which a reviewer may send ('usable' needs boxes, which a dictionary of scalars cannot
# give; schemathesis only fills in a missing optional field for a fixed value).
BODY_VALUES = {
    "/api/web-images/{id}/": {"curation": ["unusable"], "unusable_reason": "not_from_above"},
}


def _param_type(operations: dict, name: str) -> str | None:
    for operation in operations.values():
        for param in operation.get("parameters", []) if isinstance(operation, dict) else ():
            if param["name"] == name and param["in"] == "path":
                return param["schema"].get("type")
    return None


def schemathesis_config(world, path: Path) -> Path:
    """A schemathesis.toml: per path with a parameter, a dictionary of the seeded ids (and of
    the valid values of ``BODY_VALUES``), each drawn instead of random data with a probability."""
    from tests.api.schema import _schema
    from tests.api.seed import fuzz_ids

    paths = _schema()["paths"]
    lines = []
    for n, (api_path, (param, ids)) in enumerate(sorted(fuzz_ids(world, paths).items())):
        # The entries have the parameter's type (an integer, or a string: a lookup regex, a
        # queue's name), or schemathesis uses them in negative cases only.
        if _param_type(paths[api_path], param) != "integer":
            ids = [str(i) for i in ids]
        dictionaries = {f"path.{param}": (f"ids{n}", ids, SEEDED_ID_PROBABILITY)}
        bindings = []
        for field, values in BODY_VALUES.get(api_path, {}).items():
            if isinstance(values, str):
                bindings.append(f'"body.{field}" = {json.dumps(values)}')
            else:
                dictionaries[f"body.{field}"] = (f"ids{n}_{field}", values, 0.8)
        for key, (name, values, probability) in dictionaries.items():
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
            bindings.append(f'"{key}" = {{ dictionary = "{name}", probability = {probability} }}')
        lines += ["[[operations]]", f"include-path = {json.dumps(api_path)}",
                  f"parameters = {{ {', '.join(bindings)} }}", ""]
    path.write_text("\n".join(lines))
    return path


def seeded_object_reach(har: Path, paths) -> dict[tuple[str, str], list[int]]:
    """Per operation with a parameter in its path: the status of every response it got (from
    schemathesis' HAR report)."""
    templates = []
    for path, ops in paths.items():
        if "{" in path:
            pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")
            templates += [(method.upper(), path, pattern) for method in ops
                          if method in ("get", "post", "put", "patch", "delete")]
    literal = {(method.upper(), path) for path, ops in paths.items() if "{" not in path
               for method in ops}
    statuses: dict[tuple[str, str], list[int]] = {(m, p): [] for m, p, _ in templates}
    for entry in json.loads(har.read_text())["log"]["entries"]:
        method, url = entry["request"]["method"], urlsplit(entry["request"]["url"]).path
        if (method, url) in literal:  # /api/models/rollback/, not /api/models/{id}/
            continue
        for m, path, pattern in templates:
            if m == method and pattern.match(url):
                statuses[(m, path)].append(entry["response"]["status"])
                break
    return statuses


def hand_over_gpu_tasks(monkeypatch) -> list[str]:
    """The tasks of the gpu queue (scoring, training) are sent, not run in the server's thread:
    the seeded models have no weights, and eager tasks re-raise in the request that sent them
    (a 500 no deployment gives). The names of the tasks sent are returned."""
    from inference.tasks import score_chunk
    from training.tasks import run

    sent: list[str] = []
    for task in (score_chunk, run):
        monkeypatch.setattr(task, "apply_async", lambda *a, _name=task.name, **k: sent.append(_name))
    return sent


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_server, django_user_model, tmp_path, artifacts_dir, capsys, monkeypatch):
    from tests.api.seed import seed_fuzz_world

    gpu_tasks = hand_over_gpu_tasks(monkeypatch)

    world = seed_fuzz_world(django_user_model)
    config = schemathesis_config(world, tmp_path / "schemathesis.toml")
    token = Token.objects.create(user=world.users["admin"]).key
    report_dir = tmp_path / "reports"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
        "run", f"{live_server.url}/api/schema/",
        "--header", f"Authorization: Token {token}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,fuzzing", "--seed", "20261129",
        "--generation-database", "none", "--no-shrink", "--workers", "1",
        "--request-timeout", "60", "--report", "junit,har", "--report-dir", str(report_dir),
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
    har = next(report_dir.glob("har-*.json"), None)
    unreached: list[str] = []
    if har is not None:
        from tests.api.schema import _schema

        reach = seeded_object_reach(har, _schema()["paths"])
        unreached = sorted(f"{m} {p}" for (m, p), codes in reach.items() if all(c == 404 for c in codes))
        ok = sum(any(c < 300 for c in codes) for codes in reach.values())
        summary += (
            f"\n  with an id in the path: {len(reach)} operations, {len(reach) - len(unreached)} "
            f"reached a seeded object, {ok} answered 2xx on one; "
            f"{sum(len(c) for c in reach.values())} cases, "
            f"{sum(c != 404 for codes in reach.values() for c in codes)} not 404"
            f"\n  gpu tasks handed over (not run): {len(gpu_tasks)}"
        )
    (artifacts_dir / "fuzz-summary.txt").write_text(summary + "\n")
    with capsys.disabled():
        print("\n" + summary)
    assert operations > 20, output[-4000:]
    assert run.returncode == 0, output[-6000:]
    assert har is not None, "schemathesis wrote no HAR report"
    assert not unreached, f"only 404s (no seeded object reached): {unreached}"
