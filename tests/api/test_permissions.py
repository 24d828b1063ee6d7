"""Every operation of the OpenAPI schema x anonymous, volunteer, reviewer, admin, and a volunteer
outside the survey's team.

Each cell asserts the status code; that no refused response and nothing shown to the outsider
contains the team's survey (its name, its frames' hashes); that a write which is refused changes
no row of any table, and one that is allowed changes some; that a long operation answers 202
with a Location an admin can follow and hands its work to the worker. An outsider gets 404 for
the team's objects (not 403: their existence does not leak); writes that need a role are refused
by role before any lookup, the same for every id.

Each cell runs in a savepoint that is rolled back afterwards, so every role meets the same world.
``test_every_schema_operation_has_a_row`` fails when an endpoint is added without a row.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import Lease, Survey
from labeling.queues import services as queue_services
from tests.api.seed import PASSWORD, World, changed_tables, db_snapshot, seed_world
from tests.labeling import images as img
from training.models import TrainingRun

ROLES = ("anonymous", "volunteer", "reviewer", "admin", "outsider")
WRITE_METHODS = ("post", "put", "patch", "delete")
SCHEMA_METHODS = ("get", "post", "put", "patch", "delete")


def expect(anonymous=401, volunteer=403, reviewer=403, admin=200, outsider=403) -> dict[str, int]:
    return dict(anonymous=anonymous, volunteer=volunteer, reviewer=reviewer, admin=admin,
                outsider=outsider)


def staff(code: int = 200) -> dict[str, int]:
    """Survey leads (staff) only: everyone else is refused by role."""
    return expect(admin=code)


def labellers(code: int = 200, outsider: int | None = None) -> dict[str, int]:
    """Anyone who may label; the outsider gets ``outsider`` (default: the same code)."""
    return expect(volunteer=code, reviewer=code, admin=code,
                  outsider=code if outsider is None else outsider)


def reviewers(code: int = 200) -> dict[str, int]:
    return expect(reviewer=code, admin=code)


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # exactly as in the schema; its {parameter} is replaced by ids[obj]
    expected: dict[str, int]
    obj: str | None = None
    body: Callable[[World, str], object] | dict | None = None
    multipart: bool = False
    shows: bool = False  # a 200 to a team member shows the team's survey; never to the outsider
    prepare: Callable[[World], None] | None = None
    changes: frozenset[str] | None = None  # default: the roles a write succeeds for
    enqueues: str | None = None  # the task a success hands to the worker (patched)
    check: Callable[[object, str, World], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"


# --- Payloads and per-row preparation -------------------------------------------------------------


def jpeg_upload(world: World, role: str) -> dict:
    return {"files": [SimpleUploadedFile("fresh.jpg", img.jpeg_bytes(300, 300, seed=7), "image/jpeg")]}


def url_csv(world: World, role: str) -> dict:
    csv = b"url,licence\nhttps://example.org/bear-on-ice.jpg,CC-BY 4.0\n"
    return {"csv_file": SimpleUploadedFile("urls.csv", csv, "text/csv")}


def credentials(world: World, role: str) -> dict:
    # Anonymous is how anyone logs in: with the volunteer's user name and password.
    user = world.users["volunteer" if role == "anonymous" else role]
    return {"username": user.username, "password": PASSWORD}


def signup(world: World, role: str) -> dict:
    return {"username": f"new-{role}", "password": "a-long-passphrase-77", "invite_code": "POLAR-2026"}


def votes_to_undo(world: World) -> None:
    """The volunteer answered the gold item (seed); the reviewer and the admin answer the item."""
    for role in ("reviewer", "admin"):
        queue_services.vote_submit(user=world.users[role], item_id=world.ids["item"], answer="no_bear")


def leases_to_release(world: World) -> None:
    expires = timezone.now() + timedelta(minutes=10)
    for role in ("volunteer", "reviewer", "admin"):
        Lease.objects.create(item_id=world.ids["item"], user=world.users[role], queue="candidates",
                             expires_at=expires)


def archived(world: World) -> None:
    Survey.objects.filter(pk=world.survey.pk).update(archived=True)


def queued_run(world: World) -> None:
    run = TrainingRun.objects.create(status=TrainingRun.Status.QUEUED, epochs=2, config={"epochs": 2})
    world.ids["queued_run"] = run.pk


# --- Per-row checks of what the user sees ---------------------------------------------------------


def queue_counts_hide_the_team(response, role, world):
    data = response.json()
    rows = data["results"] if "results" in data else [data]
    counts = {row["kind"]: row["open"] for row in rows}
    if role == "outsider":
        assert set(counts.values()) == {0}, counts
    else:
        assert counts["candidates"] == 1, counts
    if "results" in data:  # only reviewers have the adjudication queue
        assert ("adjudication" in counts) == (role in ("reviewer", "admin")), counts


def next_item_is_the_teams(response, role, world):
    if role == "outsider":
        assert response.content == b""
    else:
        # The open item, or (at the gold rate, by chance) the gold item: both the team's.
        assert response.json()["id"] in (world.ids["item"], world.ids["gold_item"])
        assert response.json()["survey"]["name"] == world.survey.name


def own_votes_only(response, role, world):
    votes = response.json()["results"]
    if role == "volunteer":
        assert [v["item"] for v in votes] == [world.ids["gold_item"]]
    elif role == "admin":  # labelling admins see everyone's votes
        assert {v["user"] for v in votes} == {"volunteer"}
    else:
        assert votes == []


def decided_items(response, role, world):
    assert [row["id"] for row in response.json()["results"]] == [world.ids["gold_item"]]


def token_is_for_the_user(response, role, world):
    from rest_framework.authtoken.models import Token

    owner = Token.objects.get(key=response.json()["token"]).user
    assert owner == world.users["volunteer" if role == "anonymous" else role]


def signed_up_into_the_team(response, role, world):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=f"new-{role}")
    assert response.json()["username"] == user.username
    assert world.team.members.filter(pk=user.pk).exists()


# --- The table ---------------------------------------------------------------------------------------

SURVEY = {"name": "Chukchi 2027", "gsd_cm": 2.0}
QUEUE_SETTING = {"enabled": True, "votes_needed": 3, "agree_votes": 2, "no_bear_below": None,
                 "point_agree_lengths": 0.5, "weight_by_accuracy": False}
TRAIN = {"epochs": 1, "lr": 0.001, "batch_size": 8, "min_positives": 2, "freeze": "none"}

TABLE: list[Row] = [
    # Surveys: everyone logged in reads the surveys they may see; survey leads write.
    Row("get", "/api/surveys/", labellers(), shows=True),
    Row("post", "/api/surveys/", staff(201), body=SURVEY),
    Row("get", "/api/surveys/{id}/", labellers(outsider=404), obj="survey", shows=True),
    Row("put", "/api/surveys/{id}/", staff(), obj="survey", body={**SURVEY, "name": "Renamed"}),
    Row("patch", "/api/surveys/{id}/", staff(), obj="survey", body={"description": "spring legs"}),
    Row("post", "/api/surveys/{id}/archive/", staff(), obj="survey"),
    Row("post", "/api/surveys/{id}/unarchive/", staff(), obj="survey", prepare=archived),
    Row("post", "/api/surveys/{id}/batches/", staff(202), obj="survey", body=jpeg_upload,
        multipart=True, enqueues="labeling.tasks.ingest_items.delay"),
    Row("get", "/api/surveys/{id}/report/", staff(), obj="survey", shows=True),
    Row("get", "/api/surveys/{id}/detections.csv", staff(), obj="survey"),
    Row("get", "/api/surveys/{id}/detections.geojson", staff(), obj="survey"),
    Row("get", "/api/surveys/{id}/coco.json", staff(), obj="survey", shows=True),
    # Frames and ingest batches.
    Row("get", "/api/images/", labellers(), shows=True),
    Row("get", "/api/images/{id}/", labellers(outsider=404), obj="image", shows=True),
    Row("get", "/api/batches/", staff()),
    Row("get", "/api/batches/{id}/", staff(), obj="batch"),
    Row("get", "/api/batches/{batch_pk}/items/", staff(), obj="batch"),
    # Web images belong to no survey: every volunteer sees them; survey leads import them.
    Row("get", "/api/web-images/", labellers()),
    Row("get", "/api/web-images/{id}/", labellers(), obj="web_image"),
    Row("patch", "/api/web-images/{id}/", reviewers(), obj="web_image",
        body={"curation": "unusable", "unusable_reason": "watermark"}),
    Row("post", "/api/web-images/upload/", staff(202), body=jpeg_upload, multipart=True,
        enqueues="labeling.tasks.ingest_items.delay"),
    Row("post", "/api/web-images/import-urls/", staff(202), body=url_csv, multipart=True,
        enqueues="labeling.tasks.ingest_items.delay"),
    # Labelling queues, votes and items.
    Row("get", "/api/queues/", labellers(), check=queue_counts_hide_the_team),
    Row("get", "/api/queues/{id}/", labellers(), obj="queue", check=queue_counts_hide_the_team),
    Row("post", "/api/queues/{id}/next/", labellers(outsider=204), obj="queue",
        body=lambda w, r: {"survey": w.survey.pk}, check=next_item_is_the_teams,
        changes=frozenset({"volunteer", "reviewer", "admin"})),  # a lease; none for the outsider
    Row("get", "/api/votes/", labellers(), check=own_votes_only),
    Row("post", "/api/votes/", labellers(201, outsider=404),
        body=lambda w, r: {"item": w.ids["item"], "answer": "no_bear"}),
    Row("post", "/api/votes/undo/", labellers(outsider=409), prepare=votes_to_undo),
    Row("get", "/api/label-items/{id}/", labellers(outsider=404), obj="item", shows=True),
    Row("post", "/api/label-items/{id}/skip/", labellers(204, outsider=404), obj="item"),
    Row("post", "/api/label-items/{id}/release/", labellers(204, outsider=404), obj="item",
        prepare=leases_to_release),
    Row("post", "/api/label-items/{id}/gold/", reviewers(), obj="item", body={"answer": "no_bear"}),
    Row("delete", "/api/label-items/{id}/gold/", reviewers(), obj="gold_item"),
    Row("get", "/api/consensus/", reviewers(), check=decided_items),
    # Labelling administration (labelling admins; staff are).
    Row("get", "/api/queue-settings/", staff()),
    Row("post", "/api/queue-settings/", staff(201),
        body=lambda w, r: {"survey": w.survey.pk, "kind": "uncertain", "votes_needed": 3}),
    Row("get", "/api/queue-settings/{id}/", staff(), obj="queue_setting"),
    Row("put", "/api/queue-settings/{id}/", staff(), obj="queue_setting",
        body=lambda w, r: {"survey": w.survey.pk, "kind": "candidates", **QUEUE_SETTING}),
    Row("patch", "/api/queue-settings/{id}/", staff(), obj="queue_setting", body={"votes_needed": 3}),
    Row("get", "/api/invites/", staff()),
    Row("post", "/api/invites/", staff(201),
        body=lambda w, r: {"team": w.team.pk, "max_uses": 10, "note": "spring crew"}),
    Row("get", "/api/invites/{id}/", staff(), obj="invite"),
    Row("patch", "/api/invites/{id}/", staff(), obj="invite", body={"active": False}),
    Row("get", "/api/labelling/settings/", staff()),
    Row("patch", "/api/labelling/settings/", staff(), body={"show_model_score": True}),
    Row("get", "/api/labelling/overview/", staff()),
    Row("get", "/api/labelling/me/", labellers()),
    Row("post", "/api/labelling/tutorial-seen/", labellers(204)),
    # Accounts: sign-up and log-in are for everyone, logged in or not.
    Row("post", "/api/signup/", dict.fromkeys(ROLES, 201), body=signup, check=signed_up_into_the_team),
    Row("post", "/api/token/", dict.fromkeys(ROLES, 200), body=credentials,
        check=token_is_for_the_user),
    # Model registry and inference jobs (survey leads).
    Row("get", "/api/models/", staff()),
    Row("get", "/api/models/{id}/", staff(), obj="model"),
    Row("get", "/api/models/{version_pk}/events/", staff(), obj="active_model"),
    Row("post", "/api/models/{id}/promote/", staff(), obj="model", body={"reason": "better recall"},
        enqueues="inference.tasks.score_chunk.delay"),
    Row("post", "/api/models/rollback/", staff(), body={"reason": "misses bears"},
        enqueues="inference.tasks.score_chunk.delay"),
    Row("get", "/api/inference-jobs/", staff()),
    Row("post", "/api/inference-jobs/", staff(202),
        body=lambda w, r: {"survey": w.survey.pk, "model_version": w.ids["model"]},
        enqueues="inference.tasks.score_chunk.delay"),
    Row("get", "/api/inference-jobs/{id}/", staff(), obj="job"),
    Row("get", "/api/inference-jobs/{id}/progress/", staff(), obj="job"),
    Row("post", "/api/inference-jobs/{id}/cancel/", staff(), obj="job"),
    Row("post", "/api/inference-jobs/{id}/retry-failed/", staff(202), obj="failed_job",
        enqueues="inference.tasks.score_chunk.delay"),
    # Training runs (survey leads).
    Row("get", "/api/training/runs/", staff()),
    Row("post", "/api/training/runs/", staff(202), body=TRAIN, enqueues="training.tasks.run.delay"),
    Row("get", "/api/training/runs/{id}/", staff(), obj="run"),
    Row("get", "/api/training/runs/{id}/progress/", staff(), obj="run"),
    Row("get", "/api/training/runs/{id}/metrics/", staff(), obj="run"),
    Row("post", "/api/training/runs/{id}/cancel/", staff(), obj="queued_run", prepare=queued_run),
]


# --- The tests ---------------------------------------------------------------------------------------


@pytest.fixture
def world(django_user_model, settings) -> World:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    return seed_world(django_user_model)


def send(row: Row, world: World, role: str):
    client = APIClient()
    if world.users[role] is not None:
        client.force_authenticate(world.users[role])
    url = re.sub(r"\{\w+\}", str(world.ids[row.obj]), row.path) if row.obj else row.path
    body = row.body(world, role) if callable(row.body) else row.body
    if row.method == "get":
        return client.get(url)
    return getattr(client, row.method)(url, body, format="multipart" if row.multipart else "json")


def content(response) -> bytes:
    """The body, streamed ones (the exports) included; read once, kept on the response."""
    if not hasattr(response, "body_read"):
        streamed = response.streaming
        response.body_read = b"".join(response.streaming_content) if streamed else response.content
    return response.body_read


def assert_cell(row: Row, world: World, role: str, capture_on_commit) -> None:
    """One role x one operation, inside a savepoint that is rolled back afterwards."""
    expected = row.expected[role]
    write = row.method in WRITE_METHODS
    changes = row.changes
    if changes is None:
        changes = frozenset(r for r, code in row.expected.items() if write and code < 300)
    sid = transaction.savepoint()
    try:
        before = db_snapshot() if write else None
        patch = mock.patch(row.enqueues) if row.enqueues else contextlib.nullcontext()
        with patch as sent, capture_on_commit(execute=bool(row.enqueues)):
            response = send(row, world, role)
        where = (role, row.id, response.status_code, content(response)[:400])
        assert response.status_code == expected, where
        body = content(response).decode(errors="replace")
        if role == "outsider" or response.status_code >= 400:
            leaked = [s for s in world.secrets if s in body]
            assert not leaked, (where, f"leaks {leaked}")
        if row.shows and response.status_code == 200 and role != "outsider":
            assert any(s in body for s in world.secrets), (where, "does not show the team's survey")
        if write:
            changed = changed_tables(before, db_snapshot())
            if role in changes:
                assert changed, (where, "a successful write changed nothing")
            else:
                assert not changed, (where, f"a refused write changed {changed}")
        if row.enqueues:
            assert sent.called == (role in changes), (where, "the work was not handed over")
        if response.status_code == 202:
            location = response.headers.get("Location")
            assert location and location.startswith("http://testserver/api/"), (where, location)
            assert response.json()["url"] == location
            follow = APIClient()
            follow.force_authenticate(world.users["admin"])
            assert follow.get(location).status_code == 200, (where, location)
        if row.check is not None and response.status_code < 300:
            row.check(response, role, world)
    finally:
        transaction.savepoint_rollback(sid)
        cache.clear()  # cached settings and role lookups must not outlive the rollback


@pytest.mark.django_db
@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_permission_table(world, row, django_capture_on_commit_callbacks):
    if row.prepare is not None:
        row.prepare(world)
    for role in ROLES:
        assert_cell(row, world, role, django_capture_on_commit_callbacks)


def schema_operations() -> set[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(method, path) for path, ops in schema["paths"].items() for method in ops
            if method in SCHEMA_METHODS}


def test_every_schema_operation_has_a_row():
    operations = schema_operations()
    rows = [(row.method, row.path) for row in TABLE]
    assert len(rows) == len(set(rows)), "an operation has two rows"
    missing = sorted(operations - set(rows))
    assert not missing, f"operations without a row in the permission table: {missing}"
    stale = sorted(set(rows) - operations)
    assert not stale, f"rows for operations the schema no longer has: {stale}"
