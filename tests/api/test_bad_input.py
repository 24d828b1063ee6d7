"""Bad input to every write operation of the API: wrong types, missing fields, a huge body,
unknown ids, illegal states (a retired item, an expired lease, nothing to undo, a finished job).

Each case asserts the 4xx status, that the answer is JSON whose text contains the words that
tell the user what is wrong, and that no row of any table changed. A batch with a non-image and
a truncated JPEG next to a good frame ingests the good one; each bad one fails alone, its reason
visible in the batch's items.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from inference.models import InferenceJob, ModelEvent, ModelVersion
from labeling.models import BatchItem, LabelItem, Lease, Survey, SurveyImage, Vote
from labeling.queues import services as queue_services
from tests.api.seed import PASSWORD, World, changed_tables, db_snapshot, seed_world
from tests.labeling import images as img
from training.models import TrainingRun

MISSING = 999_999
# Operations that take no input at all: their refusals are in the permission table.
NO_INPUT = {("post", "/api/labelling/tutorial-seen/")}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # as in the schema; {...} is replaced by ids[obj] (or MISSING when obj is None)
    status: int
    says: tuple[str, ...]  # each appears in the answer (case ignored)
    body: object = None  # a dict, raw bytes (JSON), or a callable of the world
    obj: str | None = None
    role: str = "admin"
    multipart: bool = False
    prepare: Callable[[World], None] | None = None


# --- Preparations -----------------------------------------------------------------------------------


def retired_item(world: World) -> None:
    item = LabelItem.objects.get(pk=world.ids["item"])
    LabelItem.objects.filter(pk=item.pk).update(
        status=LabelItem.Status.RETIRED, consensus="no_bear", retired_at=timezone.now(),
        votes_count=2,
    )


def expired_lease(world: World) -> None:
    """The volunteer's lease ran out; the reviewer and the admin hold the item's two votes."""
    now = timezone.now()
    Lease.objects.create(item_id=world.ids["item"], user=world.users["volunteer"],
                         queue="candidates", expires_at=now - timedelta(minutes=1))
    for role in ("reviewer", "admin"):
        Lease.objects.create(item_id=world.ids["item"], user=world.users[role], queue="candidates",
                             expires_at=now + timedelta(minutes=9))


def archived_survey(world: World) -> None:
    Survey.objects.filter(pk=world.survey.pk).update(archived=True)


def old_vote(world: World) -> None:
    Vote.objects.filter(user=world.users["volunteer"]).update(
        created_at=timezone.now() - timedelta(hours=1)
    )


def other_invite(world: World) -> None:
    queue_services.invite_create(code="ICE-2027")


def used_up_invite(world: World) -> None:
    from labeling.models import InviteCode

    InviteCode.objects.filter(code="POLAR-2026").update(uses=50)


def no_history(world: World) -> None:
    ModelEvent.objects.all().delete()


def no_active_model(world: World) -> None:
    ModelVersion.objects.update(status=ModelVersion.Status.CANDIDATE)


def empty_survey(world: World) -> None:
    world.ids["empty_survey"] = Survey.objects.create(name="Empty survey", gsd_cm=2.0).pk


def foreign_frame(world: World) -> None:
    other = Survey.objects.create(name="Other survey", gsd_cm=2.0)
    frame = SurveyImage.objects.create(
        survey=other, file="o.jpg", original_name="o.jpg", sha256="f" * 64, size_bytes=1,
        format="JPEG", width=500, height=500,
    )
    world.ids["foreign_frame"] = frame.pk


def clean_job(world: World) -> None:
    InferenceJob.objects.filter(pk=world.ids["failed_job"]).update(
        status=InferenceJob.Status.SUCCEEDED, frames_failed=0, frames_done=2
    )
    InferenceJob.objects.get(pk=world.ids["failed_job"]).frame_errors.all().delete()


def queued_run(world: World) -> None:
    TrainingRun.objects.create(status=TrainingRun.Status.QUEUED, epochs=2, config={"epochs": 2})


def csv_file(text: bytes) -> Callable[[World], dict]:
    return lambda world: {"csv_file": SimpleUploadedFile("urls.csv", text, "text/csv")}


# --- The table ---------------------------------------------------------------------------------------

SURVEY = "/api/surveys/{id}/"
VOTES = "/api/votes/"
GOLD = "/api/label-items/{id}/gold/"
JOBS = "/api/inference-jobs/"
RUNS = "/api/training/runs/"
TRAIN_OK = {"epochs": 1, "lr": 0.001, "batch_size": 8, "min_positives": 2, "freeze": "none"}


def vote(**fields) -> Callable[[World], dict]:
    return lambda world: {"item": world.ids["item"], "answer": "bear", **fields}


def job(**fields) -> Callable[[World], dict]:
    return lambda world: {"survey": world.survey.pk, "model_version": world.ids["model"], **fields}


CASES: list[Case] = [
    # Surveys
    Case("survey without a name", "post", "/api/surveys/", 400, ("name", "required"),
         {"gsd_cm": 2.0}),
    Case("survey gsd a word", "post", "/api/surveys/", 400, ("gsd_cm", "valid number"),
         {"name": "Kara 2027", "gsd_cm": "wide"}),
    Case("survey ends before it starts", "post", "/api/surveys/", 400,
         ("end_date", "cannot end before it starts"),
         {"name": "Kara 2027", "gsd_cm": 2.0, "start_date": "2027-05-01", "end_date": "2027-04-01"}),
    Case("survey name taken", "post", "/api/surveys/", 400, ("name", "already exists"),
         {"name": "API survey", "gsd_cm": 2.0}),
    Case("survey body a list", "post", "/api/surveys/", 400, ("expected a dictionary",), [1, 2]),
    Case("survey body broken JSON", "post", "/api/surveys/", 400, ("JSON parse error",),
         b'{"name": "Kara'),
    Case("survey body of 5 MB", "post", "/api/surveys/", 413, ("larger than the limit", "MiB"),
         {"name": "Kara 2027", "gsd_cm": 2.0, "description": "ice " * 1_250_000}),
    Case("survey replaced without a name", "put", SURVEY, 400, ("name", "required"),
         {"gsd_cm": 2.0}, obj="survey"),
    Case("survey name too long", "patch", SURVEY, 400, ("no more than 200 characters",),
         {"name": "n" * 201}, obj="survey"),
    Case("survey loses its gsd", "patch", SURVEY, 400, ("ground sample distance",),
         {"gsd_cm": None}, obj="survey"),
    Case("archive an unknown survey", "post", "/api/surveys/{id}/archive/", 404, ("No Survey",)),
    Case("unarchive an unknown survey", "post", "/api/surveys/{id}/unarchive/", 404, ("No Survey",)),
    # Frames and Web photos
    Case("batch without files", "post", "/api/surveys/{id}/batches/", 400, ("files", "empty"),
         {}, obj="survey", multipart=True),
    Case("batch as JSON", "post", "/api/surveys/{id}/batches/", 415, ("Unsupported media type",),
         {"files": ["frame.jpg"]}, obj="survey"),
    Case("Web upload without files", "post", "/api/web-images/upload/", 400, ("files", "empty"),
         {}, multipart=True),
    Case("URL import without a file", "post", "/api/web-images/import-urls/", 400,
         ("csv_file", "No file was submitted"), {}, multipart=True),
    Case("URL import without a url column", "post", "/api/web-images/import-urls/", 400,
         ("'url' column",), csv_file(b"link\nhttps://example.org/a.jpg\n"), multipart=True),
    Case("URL import of an ftp URL", "post", "/api/web-images/import-urls/", 400,
         ("Only http and https", "row 3", "ftp://example.org/bear.jpg"),
         csv_file(b"url\nhttps://example.org/ok.jpg\nftp://example.org/bear.jpg\n"), multipart=True),
    Case("URL import of a file: URL", "post", "/api/web-images/import-urls/", 400,
         ("Only http and https", "row 2"), csv_file(b"url\nfile:///etc/passwd\n"), multipart=True),
    Case("URL import without rows", "post", "/api/web-images/import-urls/", 400, ("no rows",),
         csv_file(b"url,licence\n"), multipart=True),
    Case("URL import not UTF-8", "post", "/api/web-images/import-urls/", 400, ("UTF-8",),
         csv_file(b"url\nhttps://example.org/\xff\xfe.jpg\n"), multipart=True),
    Case("curation an unknown verdict", "patch", "/api/web-images/{id}/", 400,
         ("curation", "not a valid choice"), {"curation": "maybe"}, obj="web_image", role="reviewer"),
    Case("curation usable without boxes", "patch", "/api/web-images/{id}/", 400, ("Draw a box",),
         {"curation": "usable"}, obj="web_image", role="reviewer"),
    Case("curation unusable without reason", "patch", "/api/web-images/{id}/", 400, ("Say why",),
         {"curation": "unusable"}, obj="web_image", role="reviewer"),
    Case("curation box without area", "patch", "/api/web-images/{id}/", 400, ("no area",),
         {"curation": "usable", "boxes": [[5, 5, 5, 90]]}, obj="web_image", role="reviewer"),
    # Queues and votes
    Case("next of an unknown queue", "post", "/api/queues/{id}/next/", 404, ("No such queue",),
         {}, obj="bad_queue", role="volunteer"),
    Case("next excluding six items", "post", "/api/queues/{id}/next/", 400,
         ("exclude", "no more than 5"), {"exclude": [1, 2, 3, 4, 5, 6]}, obj="queue", role="volunteer"),
    Case("next of a survey named by a word", "post", "/api/queues/{id}/next/", 400,
         ("survey", "valid integer"), {"survey": "Beaufort"}, obj="queue", role="volunteer"),
    Case("next excluding an id beyond the database's", "post", "/api/queues/{id}/next/", 400,
         ("exclude", "less than or equal to"), {"exclude": [2**64]}, obj="queue", role="volunteer"),
    Case("next of a survey id beyond the database's", "post", "/api/queues/{id}/next/", 400,
         ("survey", "less than or equal to"), {"survey": 2**64}, obj="queue", role="volunteer"),
    Case("next adjudication for a volunteer", "post", "/api/queues/{id}/next/", 403,
         ("Only reviewers",), {}, obj="adjudication", role="volunteer"),
    Case("vote without an item", "post", VOTES, 400, ("item", "required"), {"answer": "bear"},
         role="volunteer"),
    Case("vote answer a number", "post", VOTES, 400, ("answer", "not a valid choice"),
         vote(answer=5), role="volunteer"),
    Case("vote item beyond 64 bits", "post", VOTES, 400, ("item", "less than or equal to"),
         {"item": 2**64, "answer": "bear"}, role="volunteer"),
    Case("vote on an unknown item", "post", VOTES, 404, ("no such item",),
         {"item": MISSING, "answer": "bear"}, role="volunteer"),
    Case("vote on a retired item", "post", VOTES, 409, ("decided already",), vote(answer="no_bear"),
         role="volunteer", prepare=retired_item),
    Case("vote with an expired lease", "post", VOTES, 409, ("ran out", "someone else"),
         vote(answer="no_bear"), role="volunteer", prepare=expired_lease),
    Case("vote answered already", "post", VOTES, 409, ("answered this item already",),
         lambda w: {"item": w.ids["gold_item"], "answer": "no_bear"}, role="volunteer"),
    Case("vote on an archived survey", "post", VOTES, 404, ("no such item",),
         vote(answer="no_bear"), role="volunteer", prepare=archived_survey),
    Case("vote point outside the tile", "post", VOTES, 400, ("outside the tile",),
         vote(points=[[5000, 5000]]), role="volunteer"),
    Case("vote point with three numbers", "post", VOTES, 400, ("points", "no more than 2"),
         vote(points=[[1, 2, 3]]), role="volunteer"),
    Case("vote points a string", "post", VOTES, 400, ("points", "Expected a list"),
         vote(points="here"), role="volunteer"),
    Case("vote 'no bear' with points", "post", VOTES, 400, ("Points mark bears",),
         vote(answer="no_bear", points=[[5, 5]]), role="volunteer"),
    Case("vote 'usable' on a tile", "post", VOTES, 400, ("A tile is",), vote(answer="usable"),
         role="volunteer"),
    Case("undo with nothing to undo", "post", "/api/votes/undo/", 409, ("no vote to undo",),
         role="reviewer"),
    Case("undo too late", "post", "/api/votes/undo/", 409, ("can be undone within",),
         role="volunteer", prepare=old_vote),
    # Items
    Case("skip an unknown item", "post", "/api/label-items/{id}/skip/", 404, ("No LabelItem",),
         role="volunteer"),
    Case("release an unknown item", "post", "/api/label-items/{id}/release/", 404,
         ("No LabelItem",), role="volunteer"),
    Case("gold answer 'unsure'", "post", GOLD, 400, ("A gold answer is one of",),
         {"answer": "unsure"}, obj="item", role="reviewer"),
    Case("gold without an answer", "post", GOLD, 400, ("answer", "required"), {}, obj="item",
         role="reviewer"),
    Case("gold point outside the tile", "post", GOLD, 400, ("outside the tile",),
         {"answer": "bear", "points": [[900, 900]]}, obj="item", role="reviewer"),
    Case("gold removed from a non-gold item", "delete", GOLD, 409, ("not a gold item",),
         obj="item", role="reviewer", prepare=expired_lease),
    Case("gold removed from an unknown item", "delete", GOLD, 404, ("No LabelItem",),
         role="reviewer"),
    # Labelling administration
    Case("queue setting for the Web queue", "post", "/api/queue-settings/", 400,
         ("kind", "not a valid choice"), lambda w: {"survey": w.survey.pk, "kind": "web"}),
    Case("queue setting of zero votes", "post", "/api/queue-settings/", 400,
         ("votes_needed", "greater than or equal to 1"),
         lambda w: {"survey": w.survey.pk, "kind": "uncertain", "votes_needed": 0}),
    Case("queue setting of an unknown survey", "post", "/api/queue-settings/", 400,
         ("survey", "does not exist"), {"survey": MISSING, "kind": "uncertain"}),
    Case("queue setting replaced half", "put", "/api/queue-settings/{id}/", 400,
         ("survey", "kind", "required"), {"votes_needed": 3}, obj="queue_setting"),
    Case("queue setting moved to another queue", "put", "/api/queue-settings/{id}/", 400,
         ("kind", "cannot change"),
         lambda w: {"survey": w.survey.pk, "kind": "audit", "enabled": True, "votes_needed": 4,
                    "agree_votes": 2, "point_agree_lengths": 0.5, "weight_by_accuracy": False},
         obj="queue_setting"),
    Case("queue setting moved by a patch", "patch", "/api/queue-settings/{id}/", 400,
         ("kind", "cannot change"), {"kind": "uncertain", "votes_needed": 4}, obj="queue_setting"),
    Case("queue setting bound above 1", "patch", "/api/queue-settings/{id}/", 400,
         ("no_bear_below", "less than or equal to 1"), {"no_bear_below": 2}, obj="queue_setting"),
    Case("queue setting of 10^30 votes", "patch", "/api/queue-settings/{id}/", 400,
         ("votes_needed", "less than or equal to 20"), {"votes_needed": 10**30}, obj="queue_setting"),
    Case("invite for nobody", "post", "/api/invites/", 400,
         ("max_uses", "greater than or equal to 1"), {"max_uses": 0}),
    Case("invite for 10^12 people", "post", "/api/invites/", 400,
         ("max_uses", "less than or equal to"), {"max_uses": 10**12}),
    Case("invite code taken", "post", "/api/invites/", 400, ("exists already",),
         {"code": "polar-2026"}),
    Case("invite expiring 'tomorrow'", "post", "/api/invites/", 400,
         ("expires_at", "wrong format"), {"expires_at": "tomorrow"}),
    Case("invite for an unknown team", "post", "/api/invites/", 400, ("team", "does not exist"),
         {"team": MISSING}),
    Case("invite renamed to a taken code", "patch", "/api/invites/{id}/", 400, ("exists already",),
         {"code": "ice-2027"}, obj="invite", prepare=other_invite),
    Case("invite renamed to nothing", "patch", "/api/invites/{id}/", 400, ("cannot be blank",),
         {"code": "  "}, obj="invite"),
    Case("invite cut to no uses", "patch", "/api/invites/{id}/", 400,
         ("max_uses", "greater than or equal to 1"), {"max_uses": 0}, obj="invite"),
    Case("switch set to 'perhaps'", "patch", "/api/labelling/settings/", 400,
         ("show_model_score", "valid boolean"), {"show_model_score": "perhaps"}),
    # Accounts
    Case("sign-up with a short password", "post", "/api/signup/", 400,
         ("password", "at least 8 characters"),
         {"username": "newbie", "password": "short", "invite_code": "POLAR-2026"}, role="anonymous"),
    Case("sign-up with a common password", "post", "/api/signup/", 400, ("too common",),
         {"username": "newbie", "password": "password123", "invite_code": "POLAR-2026"},
         role="anonymous"),
    Case("sign-up with an unknown invite", "post", "/api/signup/", 400, ("invite code is not valid",),
         {"username": "newbie", "password": "a-long-pass-77", "invite_code": "NOPE"},
         role="anonymous"),
    Case("sign-up with a used-up invite", "post", "/api/signup/", 400, ("used up",),
         {"username": "newbie", "password": "a-long-pass-77", "invite_code": "POLAR-2026"},
         role="anonymous", prepare=used_up_invite),
    Case("sign-up without an invite", "post", "/api/signup/", 400, ("invite code is needed",),
         {"username": "newbie", "password": "a-long-pass-77"}, role="anonymous"),
    Case("sign-up with a taken name", "post", "/api/signup/", 400, ("user name is taken",),
         {"username": "Volunteer", "password": "a-long-pass-77", "invite_code": "POLAR-2026"},
         role="anonymous"),
    Case("sign-up with a space in the name", "post", "/api/signup/", 400,
         ("username", "no spaces"),
         {"username": "polar bear", "password": "a-long-pass-77", "invite_code": "POLAR-2026"},
         role="anonymous"),
    Case("token with a wrong password", "post", "/api/token/", 400, ("Unable to log in",),
         {"username": "volunteer", "password": PASSWORD + "x"}, role="anonymous"),
    Case("token without a user name", "post", "/api/token/", 400, ("username", "required"),
         {"password": PASSWORD}, role="anonymous"),
    # Models and inference
    Case("promote an unknown version", "post", "/api/models/{id}/promote/", 404,
         ("No ModelVersion",), {}),
    Case("promote the active version", "post", "/api/models/{id}/promote/", 409,
         ("already the active model",), {}, obj="active_model"),
    Case("promote with a 2001-character reason", "post", "/api/models/{id}/promote/", 400,
         ("reason", "no more than 2000"), {"reason": "r" * 2001}, obj="model"),
    Case("roll back without history", "post", "/api/models/rollback/", 409,
         ("no earlier active model",), {}, prepare=no_history),
    Case("roll back with a list as reason", "post", "/api/models/rollback/", 400,
         ("reason", "Not a valid string"), {"reason": ["misses", "bears"]}),
    Case("job with an unknown model version", "post", JOBS, 400,
         ("model_version", f"There is no model version {MISSING}"), job(model_version=MISSING)),
    Case("job without a survey", "post", JOBS, 400, ("survey", "required"),
         lambda w: {"model_version": w.ids["model"]}),
    Case("job with another survey's frame", "post", JOBS, 400, ("Every frame must belong",),
         lambda w: {"survey": w.survey.pk, "images": [w.ids["foreign_frame"]]},
         prepare=foreign_frame),
    Case("job with an audit rate of 2", "post", JOBS, 400, ("audit_rate", "less than or equal to 1"),
         job(audit_rate=2)),
    Case("job on a survey without frames", "post", JOBS, 400, ("no frames yet",),
         lambda w: {"survey": w.ids["empty_survey"], "model_version": w.ids["model"]},
         prepare=empty_survey),
    Case("job without any active model", "post", JOBS, 400, ("no active model",),
         lambda w: {"survey": w.survey.pk}, prepare=no_active_model),
    Case("cancel a finished job", "post", "/api/inference-jobs/{id}/cancel/", 409,
         ("already finished",), obj="failed_job"),
    Case("cancel an unknown job", "post", "/api/inference-jobs/{id}/cancel/", 404,
         ("No InferenceJob",)),
    Case("retry a running job", "post", "/api/inference-jobs/{id}/retry-failed/", 409,
         ("still running",), obj="job"),
    Case("retry a job without failures", "post", "/api/inference-jobs/{id}/retry-failed/", 409,
         ("no failed frames",), obj="failed_job", prepare=clean_job),
    # Training
    Case("training batch size 0", "post", RUNS, 400, ("batch_size", "greater than or equal to 2"),
         {**TRAIN_OK, "batch_size": 0}),
    Case("training negative learning rate", "post", RUNS, 400, ("lr", "greater than or equal to"),
         {**TRAIN_OK, "lr": -0.1}),
    Case("training unknown freeze level", "post", RUNS, 400, ("freeze", "not a valid choice"),
         {**TRAIN_OK, "freeze": "everything"}),
    Case("training epochs a word", "post", RUNS, 400, ("epochs", "valid integer"),
         {**TRAIN_OK, "epochs": "many"}),
    Case("training min_positives of a whole batch", "post", RUNS, 400,
         ("min_positives must be from 1",), {**TRAIN_OK, "min_positives": 8}),
    Case("training from an unknown version", "post", RUNS, 400,
         ("base_version", f"There is no model version {MISSING}"),
         {**TRAIN_OK, "base_version": MISSING}),
    Case("training while a run is queued", "post", RUNS, 409, ("one run at a time",), TRAIN_OK,
         prepare=queued_run),
    Case("cancel a finished run", "post", "/api/training/runs/{id}/cancel/", 409,
         ("already finished",), obj="run"),
    Case("cancel an unknown run", "post", "/api/training/runs/{id}/cancel/", 404, ("No TrainingRun",)),
]


# --- The tests ---------------------------------------------------------------------------------------


@pytest.fixture
def world(django_user_model, settings) -> World:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    w = seed_world(django_user_model)
    w.ids.update(bad_queue="bears", adjudication="adjudication")
    return w


def send(case: Case, world: World):
    client = APIClient()
    if world.users.get(case.role) is not None:
        client.force_authenticate(world.users[case.role])
    url = re.sub(r"\{\w+\}", str(world.ids[case.obj] if case.obj else MISSING), case.path)
    body = case.body(world) if callable(case.body) else case.body
    call = getattr(client, case.method)
    if isinstance(body, bytes):
        return call(url, body, content_type="application/json")
    if body is None:
        return call(url)
    return call(url, body, format="multipart" if case.multipart else "json")


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(world, case):
    if case.prepare is not None:
        case.prepare(world)
    before = db_snapshot()
    response = send(case, world)
    where = (case.name, response.status_code, response.content[:500])
    assert response.status_code == case.status, where
    assert response["Content-Type"].startswith("application/json"), where
    text = response.content.decode()
    missing = [s for s in case.says if s.lower() not in text.lower()]
    assert not missing, (where, f"the answer does not say {missing}")
    changed = changed_tables(before, db_snapshot())
    assert not changed, (where, f"a refused request changed {changed}")


def test_every_write_operation_has_a_bad_input_case():
    from tests.api.test_permissions import schema_operations

    writes = {op for op in schema_operations() if op[0] != "get"}
    covered = {(case.method, case.path) for case in CASES}
    missing = sorted(writes - covered - NO_INPUT)
    assert not missing, f"write operations without a bad-input case: {missing}"
    assert not (covered - writes), f"cases for operations the schema lacks: {covered - writes}"


@pytest.mark.django_db
def test_a_bad_file_in_a_batch_fails_alone_with_its_reason(world, django_capture_on_commit_callbacks):
    """A good frame, a text file named .jpg and a truncated JPEG in one upload: the frame is
    ingested; each bad file fails with its own reason, shown in the batch's items; the frames
    already stored are unchanged."""
    frames_before = list(SurveyImage.objects.order_by("pk").values_list())
    admin = APIClient()
    admin.force_authenticate(world.users["admin"])
    files = [
        SimpleUploadedFile("good.jpg", img.jpeg_bytes(400, 300, seed=11), "image/jpeg"),
        SimpleUploadedFile("notes.jpg", img.text_file(), "image/jpeg"),
        SimpleUploadedFile("cut.jpg", img.truncated_jpeg(), "image/jpeg"),
    ]
    with django_capture_on_commit_callbacks(execute=True):  # the ingest runs (eager Celery)
        response = admin.post(f"/api/surveys/{world.survey.pk}/batches/", {"files": files},
                              format="multipart")
    assert response.status_code == 202, response.content
    items = admin.get(response["Location"] + "items/").json()["results"]
    by_name = {item["name"]: item for item in items}
    assert by_name["good.jpg"]["status"] == BatchItem.Status.INGESTED
    assert by_name["good.jpg"]["error"] == ""
    assert SurveyImage.objects.get(pk=by_name["good.jpg"]["survey_image"]).original_name == "good.jpg"
    for name, reason in (("notes.jpg", "not an image"), ("cut.jpg", "truncated")):
        assert by_name[name]["status"] == BatchItem.Status.FAILED, by_name[name]
        assert by_name[name]["survey_image"] is None
        assert reason in by_name[name]["error"], by_name[name]
    assert (by_name["notes.jpg"]["error_code"], by_name["cut.jpg"]["error_code"]) == (
        "not_an_image", "truncated")
    batch = admin.get(response["Location"]).json()
    assert batch["status"] == "done"
    assert list(SurveyImage.objects.exclude(pk=by_name["good.jpg"]["survey_image"])
                .order_by("pk").values_list()) == frames_before
