"""What the API offers beyond the basics: archiving surveys, a frame's scores and detections,
curating Web images, the consensus labels, long operations answering 202 with where to poll,
and lists that page, filter and order."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from inference.models import FrameScore, ModelVersion
from labeling.models import LabelItem, Lease, QueueKind, Survey, Vote, WebImage
from labeling.queues import roles
from tests.api.schema import list_operations
from tests.labeling import images as img
from tests.labeling.queue_helpers import make_frame, make_items, make_person, make_team

pytestmark = pytest.mark.django_db
NEXT = "/api/queues/candidates/next/"


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_api(admin_user):
    return api_for(admin_user)


def web_image(name: str = "bear.jpg", *, width: int = 800, height: int = 600) -> WebImage:
    image = WebImage.objects.create(
        file=f"web/{name}", original_name=name, sha256=name.ljust(64, "0"), phash="0" * 16,
        format="JPEG", width=width, height=height,
    )
    LabelItem.objects.create(kind=QueueKind.WEB, web_image=image, votes_needed=1)
    return image


# --- Surveys: archive -----------------------------------------------------------------------------


def test_archiving_a_survey_takes_it_and_its_items_away_from_volunteers(survey, admin_api):
    (item,) = make_items(survey, n=1)
    vol = api_for(make_person("vol"))
    assert vol.post(NEXT, {}, format="json").status_code == 200  # holds a lease now
    archived = admin_api.post(f"/api/surveys/{survey.pk}/archive/")
    assert archived.status_code == 200 and archived.json()["archived"] is True
    assert not Lease.objects.filter(item=item).exists()
    assert vol.get("/api/surveys/").json()["count"] == 0
    assert vol.get(f"/api/surveys/{survey.pk}/").status_code == 404
    assert vol.post(NEXT, {}, format="json").status_code == 204
    # The lead still sees it, filtered as archived; archiving twice changes nothing.
    assert admin_api.get("/api/surveys/?archived=true").json()["count"] == 1
    assert admin_api.post(f"/api/surveys/{survey.pk}/archive/").status_code == 200

    restored = admin_api.post(f"/api/surveys/{survey.pk}/unarchive/")
    assert restored.status_code == 200 and restored.json()["archived"] is False
    assert vol.post(NEXT, {}, format="json").json()["id"] == item.pk


def test_only_survey_leads_archive_and_patch_still_works(survey, admin_api):
    reviewer = api_for(make_person("rev", roles.REVIEWER))
    assert reviewer.post(f"/api/surveys/{survey.pk}/archive/").status_code == 403
    assert admin_api.patch(
        f"/api/surveys/{survey.pk}/", {"archived": True}, format="json"
    ).json()["archived"] is True
    survey.refresh_from_db()
    assert survey.archived


def test_a_lead_gives_a_survey_to_a_team(survey, admin_api):
    team = make_team("Svalbard crew")
    outsider = api_for(make_person("out"))
    assert admin_api.patch(
        f"/api/surveys/{survey.pk}/", {"team": team.pk}, format="json"
    ).json()["team"] == team.pk
    assert outsider.get(f"/api/surveys/{survey.pk}/").status_code == 404


# --- Frames: scores and detections ----------------------------------------------------------------


def test_a_frames_detail_has_its_score_summary_and_detections(survey, admin_api, admin_client):
    frame = make_frame(survey)
    assert admin_api.get(f"/api/images/{frame.pk}/").json()["scores"] is None
    version = ModelVersion.objects.create(
        name="v1", checkpoint="v1.pt", sha256="x", init="random", review_threshold=0.6
    )
    grid = np.array([[0.1, 0.9], [0.2, 0.7]], dtype=np.float16)
    FrameScore.objects.create(
        image=frame, model_version=version, rows=2, cols=2, ys=[0, 224], xs=[0, 224],
        grid=grid.tobytes(), max_score=0.9, n_candidates=1, n_tiles_above=2,
    )
    (detection,) = make_items(survey, n=1, frame=frame, scores=[0.9])
    make_items(survey, QueueKind.AUDIT, n=1, frame=frame)
    LabelItem.objects.filter(image=frame).update(model_version_id=version.pk)

    scores = admin_api.get(f"/api/images/{frame.pk}/").json()["scores"]
    assert (scores["model_version"], scores["rows"], scores["cols"]) == (version.pk, 2, 2)
    assert scores["threshold"] == 0.6 and scores["tiles_above_threshold"] == 2
    assert [d["pk"] for d in scores["detections"]] == [detection.pk]  # candidates only
    # The whole grid is the heat map's JSON, as the frame's page loads it.
    grid_json = admin_client.get(scores["grid_url"]).json()
    assert grid_json["grid"][0][1] == pytest.approx(0.9, abs=1e-3)
    # The list stays light: no scores per frame.
    assert "scores" not in admin_api.get("/api/images/").json()["results"][0]


def test_frames_filter_by_gps_and_time(survey, admin_api):
    early, late = make_frame(survey), make_frame(survey)
    start = timezone.now()
    early.captured_at, late.captured_at = start, start + timedelta(hours=1)
    late.latitude, late.longitude = 71.0, -141.0
    early.save()
    late.save()
    ids = lambda q: [r["id"] for r in admin_api.get(f"/api/images/?{q}").json()["results"]]  # noqa: E731
    assert ids("has_gps=true") == [late.pk]
    assert ids("has_gps=false") == [early.pk]
    after = (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert ids(f"captured_after={after}") == [late.pk]
    assert ids("ordering=-captured_at") == [late.pk, early.pk]


# --- Web images: curation -------------------------------------------------------------------------


def test_a_reviewer_curates_a_web_image_with_boxes_clipped_to_it():
    image = web_image(width=800, height=600)
    reviewer = make_person("rev", roles.REVIEWER)
    response = api_for(reviewer).patch(
        f"/api/web-images/{image.pk}/",
        {"curation": "usable", "boxes": [[700, 500, 900, 700]]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["curation"] == "usable" and body["curated_boxes"] == [[700, 500, 800, 600]]
    image.refresh_from_db()
    assert image.curation == "usable"
    item = image.label_items.get()
    assert item.status == "retired" and item.consensus_boxes == [[700, 500, 800, 600]]


def test_changing_a_curation_replaces_the_reviewers_vote_and_keeps_the_old_one():
    image = web_image()
    reviewer = api_for(make_person("rev", roles.REVIEWER))
    url = f"/api/web-images/{image.pk}/"
    reviewer.patch(url, {"curation": "usable", "boxes": [[10, 10, 90, 90]]}, format="json")
    changed = reviewer.patch(
        url, {"curation": "unusable", "unusable_reason": "watermark"}, format="json"
    )
    assert changed.status_code == 200
    assert (changed.json()["curation"], changed.json()["unusable_reason"]) == (
        "unusable", "watermark"
    )
    assert changed.json()["curated_boxes"] == []
    votes = Vote.objects.filter(item__web_image=image).order_by("pk")
    assert [(v.answer, v.undone_at is None) for v in votes] == [
        ("usable", False), ("unusable", True)
    ]


@pytest.mark.parametrize(
    "body,code",
    [
        ({"curation": "usable"}, "boxes_needed"),
        ({"curation": "usable", "boxes": [[5, 5, 5, 40]]}, "empty_box"),
        ({"curation": "unusable"}, "reason_needed"),
    ],
)
def test_a_curation_is_checked_like_a_vote_on_the_curation_page(body, code):
    image = web_image()
    response = api_for(make_person("rev", roles.REVIEWER)).patch(
        f"/api/web-images/{image.pk}/", body, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == code
    image.refresh_from_db()
    assert image.curation == "unreviewed" and not Vote.objects.exists()


def test_volunteers_cannot_curate_and_gold_images_are_refused():
    image = web_image()
    body = {"curation": "unusable", "unusable_reason": "too_small"}
    volunteer = api_for(make_person("vol"))
    assert volunteer.patch(f"/api/web-images/{image.pk}/", body, format="json").status_code == 403
    LabelItem.objects.filter(web_image=image).update(is_gold=True, gold_answer="usable")
    reviewer = api_for(make_person("rev", roles.REVIEWER))
    refused = reviewer.patch(f"/api/web-images/{image.pk}/", body, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "gold"
    assert reviewer.patch("/api/web-images/999999/", body, format="json").status_code == 404


# --- Consensus labels -----------------------------------------------------------------------------


def test_consensus_lists_decided_items_with_filters_for_reviewers_of_the_team(survey):
    now = timezone.now()
    team = make_team("Svalbard crew")
    private = Survey.objects.create(name="Private", gsd_cm=2.4, team=team)
    bear, no_bear, _open = make_items(survey, n=3)
    LabelItem.objects.filter(pk=bear.pk).update(
        status="retired", consensus="bear", consensus_points=[[100, 100]], retired_at=now
    )
    LabelItem.objects.filter(pk=no_bear.pk).update(
        status="retired", consensus="no_bear", retired_at=now - timedelta(minutes=1)
    )
    (secret,) = make_items(private, n=1)
    LabelItem.objects.filter(pk=secret.pk).update(status="retired", consensus="bear", retired_at=now)

    reviewer = api_for(make_person("rev", roles.REVIEWER))
    rows = reviewer.get("/api/consensus/").json()["results"]
    assert [r["id"] for r in rows] == [bear.pk, no_bear.pk]  # newest first; no open, no team's
    assert rows[0]["label"] == "bear" and rows[0]["points"] == [[100, 100]]
    assert rows[0]["queue"] == "candidates" and rows[0]["survey"] == survey.pk
    ids = lambda q: [r["id"] for r in reviewer.get(f"/api/consensus/?{q}").json()["results"]]  # noqa: E731
    assert ids("label=no_bear") == [no_bear.pk]
    assert ids("queue=audit") == []
    assert ids(f"survey={survey.pk}&ordering=retired_at") == [no_bear.pk, bear.pk]
    insider = api_for(make_person("ins", roles.REVIEWER, teams=[team]))
    assert secret.pk in [r["id"] for r in insider.get("/api/consensus/").json()["results"]]
    assert api_for(make_person("vol")).get("/api/consensus/").status_code == 403


# --- Long operations: 202 and where to poll -------------------------------------------------------


def _assert_accepted(api: APIClient, response) -> dict:
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == body["url"]
    assert api.get(body["url"]).status_code == 200
    return body


def test_long_operations_answer_202_with_the_url_to_poll(survey, admin_api):
    frame = img.jpeg_bytes(300, 300, seed=1)
    _assert_accepted(admin_api, admin_api.post(
        f"/api/surveys/{survey.pk}/batches/",
        {"files": [SimpleUploadedFile("a.jpg", frame, content_type="image/jpeg")]},
        format="multipart",
    ))
    _assert_accepted(admin_api, admin_api.post(
        "/api/web-images/upload/",
        {"files": [SimpleUploadedFile("b.jpg", frame, content_type="image/jpeg")]},
        format="multipart",
    ))
    csv = io.BytesIO(b"url\nhttps://example.org/bear.jpg\n")
    csv.name = "urls.csv"
    _assert_accepted(
        admin_api, admin_api.post("/api/web-images/import-urls/", {"csv_file": csv}, format="multipart")
    )
    make_frame(survey)
    version = ModelVersion.objects.create(name="v1", checkpoint="v1.pt", sha256="x", init="random")
    job = _assert_accepted(admin_api, admin_api.post(
        "/api/inference-jobs/", {"survey": survey.pk, "model_version": version.pk}, format="json"
    ))
    assert job["url"].endswith(f"/api/inference-jobs/{job['id']}/")
    run = _assert_accepted(admin_api, admin_api.post(
        "/api/training/runs/", {"fresh": True, "epochs": 1, "batch_size": 16, "min_positives": 4},
        format="json",
    ))
    assert run["url"].endswith(f"/api/training/runs/{run['id']}/")


# --- Every list pages, and orders deterministically -----------------------------------------------


def test_every_list_answers_a_page(admin_user, survey):
    from labeling.models import IngestBatch

    batch = IngestBatch.objects.create(target="survey", source="api", survey=survey)
    version = ModelVersion.objects.create(name="v1", checkpoint="v1.pt", sha256="x", init="random")
    api = api_for(admin_user)
    for path in sorted(list_operations()):
        url = path.format(batch_pk=batch.pk, version_pk=version.pk)
        body = api.get(url).json()
        assert set(body) == {"count", "next", "previous", "results"}, url
        assert api.get(f"{url}?page=999").status_code == 404, url


def test_batch_items_and_model_events_are_lists_of_their_own(admin_api, survey):
    from inference import services as inference_services
    from labeling.models import BatchItem, IngestBatch

    batch = IngestBatch.objects.create(target="survey", source="api", survey=survey)
    for name, status in (("a.jpg", "ingested"), ("b.jpg", "failed"), ("c.jpg", "ingested")):
        BatchItem.objects.create(batch=batch, name=name, status=status)
    url = f"/api/batches/{batch.pk}/items/"
    assert [r["name"] for r in admin_api.get(f"{url}?status=ingested").json()["results"]] == [
        "a.jpg", "c.jpg"
    ]
    assert admin_api.get(f"{url}?ordering=-name").json()["results"][0]["name"] == "c.jpg"
    assert admin_api.get("/api/batches/999999/items/").status_code == 404

    version = ModelVersion.objects.create(name="v1", checkpoint="v1.pt", sha256="x", init="random")
    inference_services.model_promote(version=version, start_inference=False, reason="first")
    events = admin_api.get(f"/api/models/{version.pk}/events/?action=promote").json()
    assert events["count"] == 1 and events["results"][0]["reason"] == "first"
    assert admin_api.get("/api/models/999999/events/").status_code == 404


def test_votes_filter_by_survey_and_admins_by_person(survey):
    other = Survey.objects.create(name="Other", gsd_cm=2.0)
    (here,), (there,) = make_items(survey, n=1), make_items(other, n=1)
    ann, bob = make_person("ann"), make_person("bob")
    for person in (ann, bob):
        for item in (here, there):
            Vote.objects.create(item=item, user=person, answer="no_bear")
    ann_api = api_for(ann)
    mine = ann_api.get(f"/api/votes/?survey={survey.pk}").json()["results"]
    assert [(v["item"], v["user"]) for v in mine] == [(here.pk, "ann")]
    assert ann_api.get(f"/api/votes/?user={bob.pk}").json()["count"] == 0  # only one's own
    manager = api_for(make_person("boss", roles.ADMIN))
    assert {v["user"] for v in manager.get(f"/api/votes/?user={bob.pk}").json()["results"]} == {
        "bob"
    }


@pytest.mark.parametrize(
    "url",
    [
        "/api/votes/?survey=99999999999999999999",
        "/api/votes/?user=1e20",
        "/api/votes/?item=1.5",
        "/api/consensus/?image=-1",
        "/api/consensus/?survey=99999999999999999999",
    ],
)
def test_an_id_filter_out_of_range_is_a_bad_request_not_a_server_error(admin_api, url):
    response = admin_api.get(url)
    assert response.status_code == 400, response.content[:200]


def test_filtering_by_a_hidden_survey_looks_like_filtering_by_none(survey):
    team = make_team("Svalbard crew")
    private = Survey.objects.create(name="Private", gsd_cm=2.4, team=team)
    make_frame(private)
    outsider = api_for(make_person("out"))
    hidden = outsider.get(f"/api/images/?survey={private.pk}")
    missing = outsider.get("/api/images/?survey=999999")
    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())
    assert hidden.json()["count"] == 0
