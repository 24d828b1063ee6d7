"""Votes, consensus on real items, adjudication, undo, gold feedback, Web curation."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import LabelItem, Lease, QueueKind, VolunteerProfile, Vote, WebImage
from labeling.queues import roles, services
from labeling.queues.selectors import item_next_for_user
from tests.labeling.queue_helpers import fast_passwords, make_items, make_person, make_web_items  # noqa: F401

pytestmark = pytest.mark.django_db


def claim(user, queue=QueueKind.CANDIDATES):
    c = item_next_for_user(user=user, queue=queue, rng=random.Random(3))
    assert c is not None
    return c.item


def vote(user, item, answer, **kw):
    return services.vote_submit(user=user, item_id=item.pk, answer=answer, **kw)


def test_two_agreeing_bear_votes_retire_the_item_with_merged_points(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben = make_person("ann"), make_person("ben")
    x, y = item.x0 + 100, item.y0 + 80
    vote(ann, claim(ann), "bear", points=[[x, y]], duration_ms=2400)
    item.refresh_from_db()
    assert (item.status, item.votes_count) == ("open", 1)
    vote(ben, claim(ben), "bear", points=[[x + 10, y + 4]], duration_ms=1800)
    item.refresh_from_db()
    assert (item.status, item.consensus) == ("retired", "bear")
    assert item.consensus_points == [[x + 5, y + 2]]
    assert item.retired_at is not None
    assert sorted(Vote.objects.filter(item=item).values_list("duration_ms", flat=True)) == [
        1800,
        2400,
    ]
    assert not Lease.objects.filter(item=item).exists()


def test_disagreement_goes_to_a_reviewer_whose_answer_is_final(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben, cat = make_person("ann"), make_person("ben"), make_person("cat")
    rev = make_person("rev", roles.REVIEWER)
    vote(ann, claim(ann), "bear", points=[[item.x0 + 50, item.y0 + 50]])
    vote(ben, claim(ben), "no_bear")
    item.refresh_from_db()
    assert item.status == "adjudication"
    assert item_next_for_user(user=cat, queue=QueueKind.CANDIDATES) is None
    with pytest.raises(services.ItemConflict):
        vote(cat, item, "no_bear")  # volunteers cannot settle it
    reviewed = claim(rev, QueueKind.ADJUDICATION)
    assert reviewed.pk == item.pk
    result = vote(rev, reviewed, "bear", points=[[item.x0 + 52, item.y0 + 49]])
    assert result.vote.is_review
    item.refresh_from_db()
    assert (item.status, item.consensus, item.consensus_points) == (
        "retired",
        "bear",
        [[item.x0 + 52.0, item.y0 + 49.0]],
    )
    assert Vote.objects.filter(item=item).count() == 3  # every vote is kept


def test_a_reviewer_can_make_a_settled_item_gold(survey):
    (item,) = make_items(survey, n=1, votes_needed=1, scores=[0.9])
    ann, rev = make_person("ann"), make_person("rev", roles.REVIEWER)
    vote(ann, claim(ann), "unsure")
    vote(rev, claim(rev, QueueKind.ADJUDICATION), "no_bear", make_gold=True)
    item.refresh_from_db()
    assert (item.is_gold, item.gold_answer, item.consensus) == (True, "no_bear", "no_bear")


def test_nobody_votes_twice_on_an_item(survey):
    (item,) = make_items(survey, n=1, votes_needed=3)
    ann = make_person("ann")
    vote(ann, claim(ann), "no_bear")
    with pytest.raises(services.ItemConflict) as err:
        vote(ann, item, "bear")
    assert err.value.code == "already_voted"


def test_a_vote_without_a_lease_counts_only_while_the_item_needs_it(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben, cat = make_person("ann"), make_person("ben"), make_person("cat")
    vote(ann, item, "no_bear")  # no lease, but a free slot: accepted
    assert claim(ben).pk == item.pk  # the last slot, leased to ben
    with pytest.raises(services.ItemConflict) as err:
        vote(cat, item, "no_bear")
    assert err.value.code == "lease_lost"
    vote(ben, item, "no_bear")
    item.refresh_from_db()
    assert (item.status, item.votes_count) == ("retired", 2)


@pytest.mark.parametrize(
    "answer, kw, code",
    [
        ("usable", {}, "bad_answer"),
        ("no_bear", {"points": [[300, 350]]}, "points_without_bear"),
        ("bear", {"points": [[-5000, 10]]}, "point_outside"),
        ("bear", {"points": [["a", 1]]}, "bad_point"),
    ],
)
def test_bad_tile_votes_are_refused_with_a_reason(survey, answer, kw, code):
    (item,) = make_items(survey, n=1)
    ann = make_person("ann")
    with pytest.raises(services.QueueError) as err:
        vote(ann, claim(ann), answer, **kw)
    assert err.value.code == code and err.value.message
    assert not Vote.objects.exists()


def test_points_may_be_placed_in_the_context_view_outside_the_tile(survey):
    (item,) = make_items(survey, n=1)
    ann = make_person("ann")
    vote(ann, claim(ann), "bear", points=[[item.x0 - 100, item.y0 - 100]])
    assert Vote.objects.get().points == [[item.x0 - 100.0, item.y0 - 100.0]]


def test_undo_takes_back_the_last_vote_and_reopens_the_item(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben = make_person("ann"), make_person("ben")
    vote(ann, claim(ann), "no_bear")
    last = vote(ben, claim(ben), "no_bear").vote
    item.refresh_from_db()
    assert (item.status, item.consensus) == ("retired", "no_bear")
    undone = services.vote_undo(user=ben)
    assert undone.vote.pk == last.pk and undone.claim.item.pk == item.pk
    item.refresh_from_db()
    assert (item.status, item.consensus, item.votes_count, item.retired_at) == ("open", "", 1, None)
    assert Lease.objects.filter(item=item, user=ben).exists()  # handed back to answer again
    # Ben answers again; the first answer is kept, marked undone.
    vote(ben, item, "bear")
    item.refresh_from_db()
    assert item.status == "adjudication"
    answers = [
        (v.answer, v.undone_at is None) for v in Vote.objects.filter(user=ben).order_by("pk")
    ]
    assert answers == [("no_bear", False), ("bear", True)]
    assert VolunteerProfile.objects.get(user=ben).votes_total == 1


def test_undo_only_within_the_window_and_only_once(survey, settings):
    settings.BEARSITE_UNDO_SECONDS = 30
    make_items(survey, n=2, votes_needed=2)
    ann = make_person("ann")
    vote(ann, claim(ann), "no_bear")
    with pytest.raises(services.ItemConflict) as err:
        services.vote_undo(user=ann, now=timezone.now() + timedelta(seconds=31))
    assert err.value.code == "too_late"
    services.vote_undo(user=ann)
    with pytest.raises(services.ItemConflict) as err:
        services.vote_undo(user=ann)
    assert err.value.code == "nothing_to_undo"


def test_a_gold_item_gives_feedback_and_keeps_its_answer(survey):
    (gold,) = make_items(
        survey,
        QueueKind.AUDIT,
        n=1,
        is_gold=True,
        gold_answer="bear",
        votes_needed=1,
    )
    gold.gold_points = [[gold.x0 + 112, gold.y0 + 112]]
    gold.status = "retired"
    gold.consensus = "bear"
    gold.save()
    ann, ben = make_person("ann"), make_person("ben")
    missed = vote(ann, gold, "no_bear")
    assert (missed.gold.correct, missed.gold.message) == (False, "There was a bear here.")
    assert missed.gold.points == [[gold.x0 + 112.0, gold.y0 + 112.0]]
    found = vote(ben, gold, "bear", points=[[gold.x0 + 118, gold.y0 + 105]])
    assert (found.gold.correct, found.gold.message) == (True, "Right: there was a bear here.")
    gold.refresh_from_db()
    assert (gold.status, gold.consensus, gold.votes_count) == ("retired", "bear", 0)
    stats = {
        p.user.username: (p.gold_answered, p.gold_correct) for p in VolunteerProfile.objects.all()
    }
    assert stats == {"ann": (1, 0), "ben": (1, 1)}
    services.vote_undo(user=ben)
    assert VolunteerProfile.objects.get(user=ben).gold_correct == 0


def test_gold_answers_never_count_toward_the_gold_item_consensus(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben, rev = make_person("ann"), make_person("ben"), make_person("rev", roles.REVIEWER)
    vote(ann, item, "no_bear")
    vote(ben, item, "no_bear")
    services.item_mark_gold(user=rev, item_id=item.pk, answer="no_bear")
    for n in range(3):
        vote(make_person(f"v{n}"), item, "bear", points=[[item.x0 + 5, item.y0 + 5]])
    item.refresh_from_db()
    assert (item.status, item.consensus, item.votes_count) == ("retired", "no_bear", 2)


def test_web_image_curation(settings):
    usable_item, unusable_item = make_web_items(2)
    ann = make_person("ann")
    with pytest.raises(services.QueueError) as err:
        vote(ann, usable_item, "usable")
    assert err.value.code == "boxes_needed"
    with pytest.raises(services.QueueError) as err:
        vote(ann, unusable_item, "unusable")
    assert err.value.code == "reason_needed"
    vote(ann, usable_item, "usable", boxes=[[600, 400, 10, 20]])  # dragged up-left, clipped
    vote(ann, unusable_item, "unusable", unusable_reason="watermark")
    usable_item.refresh_from_db()
    unusable_item.refresh_from_db()
    assert (usable_item.status, usable_item.consensus, usable_item.consensus_boxes) == (
        "retired",
        "usable",
        [[10.0, 20.0, 600.0, 400.0]],
    )
    assert (unusable_item.consensus, unusable_item.consensus_reason) == ("unusable", "watermark")
    curation = dict(WebImage.objects.values_list("pk", "curation"))
    assert curation == {usable_item.web_image_id: "usable", unusable_item.web_image_id: "unusable"}
    services.vote_undo(user=ann)
    assert WebImage.objects.get(pk=unusable_item.web_image_id).curation == "unreviewed"


def test_changing_the_votes_a_queue_needs_applies_to_open_items(survey):
    items = make_items(survey, n=3, votes_needed=3)
    ann, ben = make_person("ann"), make_person("ben")
    vote(ann, items[0], "no_bear")
    vote(ben, items[0], "no_bear")
    vote(ann, items[1], "no_bear")
    services.survey_queue_set(survey=survey, kind=QueueKind.CANDIDATES, votes_needed=2)
    states = {i.pk: (i.status, i.votes_needed) for i in LabelItem.objects.all()}
    assert states == {
        items[0].pk: ("retired", 3),  # two agreeing votes: decided at once
        items[1].pk: ("open", 2),
        items[2].pk: ("open", 2),
    }


def test_a_gold_item_s_known_answer_is_its_consensus(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, rev = make_person("ann"), make_person("rev", roles.REVIEWER)
    vote(ann, item, "no_bear")
    point = [item.x0 + 40, item.y0 + 60]
    services.item_mark_gold(user=rev, item_id=item.pk, answer="bear", points=[point])
    item.refresh_from_db()
    assert (item.status, item.consensus, item.consensus_points) == (
        "retired",
        "bear",
        [[float(point[0]), float(point[1])]],
    )
    services.vote_undo(user=ann)  # a vote from before it was gold: its answer stays
    item.refresh_from_db()
    assert (item.status, item.consensus) == ("retired", "bear")
    with pytest.raises(services.NotAllowed):
        services.item_mark_gold(user=ann, item_id=item.pk, answer="no_bear")
