"""The labelling API and pages: next item, votes, undo, skip, gold marking, team restriction,
the hidden model score, query budgets, dashboards and set-up."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import (
    InviteCode,
    LabelItem,
    Lease,
    Survey,
    SurveyQueue,
    VolunteerProfile,
    Vote,
)
from labeling.queues import roles, services
from tests.labeling.queue_helpers import (  # noqa: F401
    fast_passwords,
    make_items,
    make_person,
    make_team,
    make_web_items,
)

pytestmark = pytest.mark.django_db
NEXT = "/api/queues/{}/next/"


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_next_vote_and_undo_over_the_api(survey):
    items = make_items(survey, n=2, votes_needed=2, pictures=True)
    ann = make_person("ann")
    api = api_for(ann)
    first = api.post(NEXT.format("candidates"), {}, format="json")
    assert first.status_code == 200
    body = first.json()
    assert body["id"] == items[0].pk and body["tile_url"].startswith("/media/")
    assert body["box"] == [items[0].x0, items[0].y0, items[0].x1, items[0].y1]
    assert "score" not in body  # hidden by default: it anchors people
    ahead = api.post(NEXT.format("candidates"), {"exclude": [body["id"]]}, format="json").json()
    assert ahead["id"] == items[1].pk
    point = [items[0].x0 + 30, items[0].y0 + 40]
    voted = api.post(
        "/api/votes/",
        {"item": body["id"], "answer": "bear", "points": [point], "duration_ms": 1500},
        format="json",
    )
    assert voted.status_code == 201, voted.json()
    assert voted.json()["item"] == {"id": items[0].pk, "status": "open", "votes_count": 1}
    assert voted.json()["gold"] is None
    again = api.post("/api/votes/", {"item": body["id"], "answer": "bear"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "already_voted")
    undone = api.post("/api/votes/undo/")
    assert undone.status_code == 200 and undone.json()["id"] == items[0].pk
    assert Vote.objects.get().undone_at is not None
    mine = api.get("/api/votes/").json()
    assert mine["count"] == 1 and mine["results"][0]["points"] == [
        [float(point[0]), float(point[1])]
    ]


def test_an_empty_queue_answers_204_and_an_unknown_one_404(survey):
    api = api_for(make_person("ann"))
    assert api.post(NEXT.format("candidates"), {}, format="json").status_code == 204
    assert api.post(NEXT.format("nonsense"), {}, format="json").status_code == 404


def test_skip_and_release(survey):
    top, second = make_items(survey, n=2, votes_needed=1)
    api = api_for(make_person("ann"))
    assert api.post(NEXT.format("candidates"), {}, format="json").json()["id"] == top.pk
    assert api.post(f"/api/label-items/{top.pk}/skip/").status_code == 204
    assert api.post(NEXT.format("candidates"), {}, format="json").json()["id"] == second.pk
    assert api.post(f"/api/label-items/{second.pk}/release/").status_code == 204
    assert not Lease.objects.exists()


def test_the_score_shows_only_when_the_admin_turns_it_on(survey):
    make_items(survey, n=1, scores=[0.87])
    boss = make_person("boss", roles.ADMIN)
    ann = make_person("ann")
    assert (
        api_for(boss)
        .patch("/api/labelling/settings/", {"show_model_score": True}, format="json")
        .status_code
        == 200
    )
    assert (
        api_for(ann)
        .patch("/api/labelling/settings/", {"show_model_score": False}, format="json")
        .status_code
        == 403
    )
    body = api_for(ann).post(NEXT.format("candidates"), {}, format="json").json()
    assert body["score"] == pytest.approx(0.87)


def test_a_team_survey_is_invisible_to_outsiders_in_pages_and_api(client, survey):
    insider, outsider = make_person("ins"), make_person("out")
    team = make_team("Svalbard crew", insider)
    private = Survey.objects.create(name="Private survey", gsd_cm=2.4, team=team)
    (secret,) = make_items(private, n=1, scores=[0.99], votes_needed=2)
    out_api = api_for(outsider)
    assert out_api.post(NEXT.format("candidates"), {}, format="json").status_code == 204
    assert out_api.get(f"/api/label-items/{secret.pk}/").status_code == 404
    assert out_api.post(f"/api/label-items/{secret.pk}/skip/").status_code == 404
    refused = out_api.post("/api/votes/", {"item": secret.pk, "answer": "no_bear"}, format="json")
    assert refused.status_code == 404
    assert (
        out_api.post(NEXT.format("candidates"), {"survey": private.pk}, format="json").status_code
        == 204
    )
    queues = {q["kind"]: q["open"] for q in out_api.get("/api/queues/").json()["results"]}
    assert queues["candidates"] == 0
    in_api = api_for(insider)
    assert in_api.get(f"/api/label-items/{secret.pk}/").status_code == 200
    rows = in_api.get("/api/queues/").json()["results"]
    assert {q["kind"]: q["open"] for q in rows}["candidates"] == 1
    # Pages: the queue list counts only what the person may see, and the survey filter of the
    # review page refuses a survey outside their teams.
    services.tutorial_mark_seen(user=outsider)
    client.force_login(outsider)
    page = client.get(reverse("label-home")).content.decode()
    assert 'data-queue-count="candidates">0 open' in page
    assert (
        client.get(
            reverse("label-queue", args=["candidates"]) + f"?survey={private.pk}"
        ).status_code
        == 404
    )
    assert (
        "Private survey"
        not in client.get(reverse("label-queue", args=["candidates"])).content.decode()
    )


def test_adjudication_over_the_api(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben = make_person("ann"), make_person("ben")
    rev = make_person("rev", roles.REVIEWER)
    services.vote_submit(
        user=ann, item_id=item.pk, answer="bear", points=[[item.x0 + 9, item.y0 + 9]]
    )
    services.vote_submit(user=ben, item_id=item.pk, answer="no_bear")
    assert api_for(ann).post(NEXT.format("adjudication"), {}, format="json").status_code == 403
    assert api_for(ann).get(f"/api/label-items/{item.pk}/").status_code == 404
    body = api_for(rev).post(NEXT.format("adjudication"), {}, format="json").json()
    assert body["id"] == item.pk
    assert [(v["user"], v["answer"]) for v in body["votes"]] == [
        ("ann", "bear"),
        ("ben", "no_bear"),
    ]
    settled = api_for(rev).post(
        "/api/votes/", {"item": item.pk, "answer": "no_bear", "make_gold": True}, format="json"
    )
    assert settled.status_code == 201
    item.refresh_from_db()
    assert (item.status, item.consensus, item.is_gold) == ("retired", "no_bear", True)


def test_only_reviewers_mark_gold_items(survey):
    (item,) = make_items(survey, n=1)
    point = [item.x0 + 100, item.y0 + 100]
    assert (
        api_for(make_person("ann"))
        .post(f"/api/label-items/{item.pk}/gold/", {"answer": "bear"}, format="json")
        .status_code
        == 403
    )
    rev = api_for(make_person("rev", roles.REVIEWER))
    marked = rev.post(
        f"/api/label-items/{item.pk}/gold/", {"answer": "bear", "points": [point]}, format="json"
    )
    assert marked.status_code == 200 and marked.json()["gold_points"] == [
        [float(point[0]), float(point[1])]
    ]
    assert rev.delete(f"/api/label-items/{item.pk}/gold/").json()["is_gold"] is False


def test_a_gold_answer_comes_back_with_feedback(survey):
    (gold,) = make_items(survey, n=1, is_gold=True, gold_answer="bear")
    gold.gold_points = [[gold.x0 + 112, gold.y0 + 112]]
    gold.save()
    api = api_for(make_person("ann"))
    voted = api.post("/api/votes/", {"item": gold.pk, "answer": "no_bear"}, format="json").json()
    assert voted["gold"] == {
        "correct": False,
        "message": "There was a bear here.",
        "answer": "bear",
        "points": [[gold.x0 + 112.0, gold.y0 + 112.0]],
    }
    me = api.get("/api/labelling/me/").json()
    assert (me["gold_answered"], me["gold_correct"], me["votes"]) == (1, 0, 1)


def test_queue_settings_and_invites_are_for_labelling_admins(survey):
    make_items(survey, n=2, votes_needed=2)
    boss = api_for(make_person("boss", roles.ADMIN))
    ann = api_for(make_person("ann"))
    payload = {"survey": survey.pk, "kind": "candidates", "enabled": False, "votes_needed": 3}
    assert ann.post("/api/queue-settings/", payload, format="json").status_code == 403
    created = boss.post("/api/queue-settings/", payload, format="json")
    assert created.status_code == 201, created.json()
    assert SurveyQueue.objects.get().votes_needed == 3
    assert set(LabelItem.objects.values_list("votes_needed", flat=True)) == {3}
    assert ann.post(NEXT.format("candidates"), {}, format="json").status_code == 204  # queue off
    invite = boss.post(
        "/api/invites/", {"max_uses": 5, "note": "Churchill volunteers"}, format="json"
    )
    assert invite.status_code == 201 and len(invite.json()["code"]) == 9
    assert ann.get("/api/invites/").status_code == 403
    overview = boss.get("/api/labelling/overview/").json()
    assert overview["queues"]["candidates"]["open"] == 2


def test_signup_over_the_api_gives_a_token():
    InviteCode.objects.create(code="POLAR-2026", max_uses=1)
    anon = APIClient()
    made = anon.post(
        "/api/signup/",
        {"username": "kim", "password": "ice-floe-watcher-9", "invite_code": "polar-2026"},
        format="json",
    )
    assert made.status_code == 201 and made.json()["token"]
    used_up = anon.post(
        "/api/signup/",
        {"username": "lee", "password": "ice-floe-watcher-9", "invite_code": "POLAR-2026"},
        format="json",
    )
    assert (used_up.status_code, used_up.json()["code"]) == (400, "bad_invite")
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {made.json()['token']}")
    assert token.get("/api/queues/").status_code == 200


def test_next_and_vote_take_a_handful_of_queries(survey, django_assert_max_num_queries):
    make_items(survey, n=5, votes_needed=2)
    make_web_items(1)
    ann = make_person("ann")
    VolunteerProfile.objects.create(user=ann)  # made by the first vote otherwise
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {services_token(ann)}")
    first = api.post(
        NEXT.format("candidates"), {}, format="json"
    ).json()  # warms the permission cache
    # Token, savepoint, a lease held already?, a gold item (none here), the candidate row, the
    # lease, the item, release.
    with django_assert_max_num_queries(8):
        body = api.post(NEXT.format("candidates"), {"exclude": [first["id"]]}, format="json").json()
    # Token, savepoint, locked item, votes, own lease, vote, queue rules (cached after the first
    # vote), item, profile, release.
    with django_assert_max_num_queries(10):
        assert (
            api.post(
                "/api/votes/", {"item": body["id"], "answer": "no_bear"}, format="json"
            ).status_code
            == 201
        )


def services_token(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


def test_pages_need_the_right_role(client, survey):
    ann = make_person("ann")
    client.force_login(ann)
    assert client.get(reverse("label-home")).status_code == 302  # first visit: the tutorial
    assert client.get(reverse("label-tutorial")).status_code == 200
    client.post(reverse("label-tutorial"), {"next": reverse("label-queue", args=["audit"])})
    page = client.get(reverse("label-queue", args=["audit"]))
    assert page.status_code == 200 and b"data-review" in page.content
    assert client.get(reverse("label-web")).status_code == 200
    assert client.get(reverse("label-review")).status_code == 403
    assert client.get(reverse("label-setup")).status_code == 403
    assert b"Who labelled what" not in client.get(reverse("label-dashboard")).content
    client.force_login(make_person("rev", roles.REVIEWER))
    assert client.get(reverse("label-review")).status_code == 200
    nobody = make_person("nobody", role="")
    client.force_login(nobody)
    assert client.get(reverse("label-home")).status_code == 403


def test_the_admin_dashboard_counts(client, survey):
    items = make_items(survey, n=3, votes_needed=2)
    ann, ben = make_person("ann"), make_person("ben")
    for person in (ann, ben):
        services.vote_submit(user=person, item_id=items[0].pk, answer="no_bear")
    services.vote_submit(user=ann, item_id=items[1].pk, answer="bear")
    services.vote_submit(user=ben, item_id=items[1].pk, answer="no_bear")
    client.force_login(make_person("boss", roles.ADMIN))
    page = client.get(reverse("label-dashboard")).content.decode()
    assert (
        '<tr data-queue="candidates"><th scope="row">Candidates</th><td>1</td><td>1</td><td>1</td>'
        in page
    )
    assert "data-votes-hour>4<" in page
    assert "50% of 2 items" in page  # one settled by agreement, one sent to a reviewer
    assert '<th scope="row">ann</th><td>2</td><td>1</td><td>1</td>' in page


def test_set_up_page_saves_queues_invites_and_switches(client, survey):
    make_items(survey, n=1, votes_needed=2)
    client.force_login(make_person("boss", roles.ADMIN))
    assert client.get(reverse("label-setup")).status_code == 200
    client.post(
        reverse("label-setup"),
        {
            "action": "queue",
            "survey": survey.pk,
            "kind": "candidates",
            "votes_needed": 3,
            "agree_votes": 2,
            "enabled": "on",
        },
    )
    assert SurveyQueue.objects.get(kind="candidates").votes_needed == 3
    client.post(
        reverse("label-setup"), {"action": "invite", "invite-max_uses": 10, "invite-note": "school"}
    )
    assert InviteCode.objects.get().note == "school"
    client.post(reverse("label-setup"), {"action": "switches", "switch-open_signup": "on"})
    from labeling.queues.selectors import labelling_settings

    assert labelling_settings().open_signup and not labelling_settings().show_model_score
