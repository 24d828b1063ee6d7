"""The next-item selector: queue order, who gets what, leases, skips, teams, gold injection."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import LabelItem, Lease, QueueKind, SurveyQueue, VolunteerProfile
from labeling.queues import roles, selectors, services
from labeling.queues.selectors import item_next_for_user
from labeling.queues.tasks import release_expired_leases
from tests.labeling.queue_helpers import (  # noqa: F401
    fast_passwords,
    make_items,
    make_person,
    make_team,
    make_web_items,
)

pytestmark = pytest.mark.django_db


def next_id(user, queue=QueueKind.CANDIDATES, **kw):
    claim = item_next_for_user(user=user, queue=queue, rng=kw.pop("rng", random.Random(0)), **kw)
    return None if claim is None else claim.item.pk


def take_all(user, queue, *, answer="no_bear"):
    """Ask for items and answer each until the queue has nothing left for ``user``."""
    seen = []
    while (item_id := next_id(user, queue)) is not None:
        seen.append(item_id)
        services.vote_submit(user=user, item_id=item_id, answer=answer)
    return seen


def test_candidates_come_highest_score_first(survey):
    items = make_items(survey, n=5, scores=[0.6, 0.95, 0.7, 0.99, 0.8], votes_needed=1)
    order = take_all(make_person("ann"), QueueKind.CANDIDATES)
    by_score = sorted(items, key=lambda i: -i.score)
    assert order == [i.pk for i in by_score]


def test_uncertain_come_closest_to_the_boundary_first(survey):
    # priority = -|score - threshold| with threshold 0.5 (as inference stores it)
    items = make_items(
        survey, QueueKind.UNCERTAIN, n=4, scores=[0.1, 0.45, 0.3, 0.49], votes_needed=1
    )
    order = take_all(make_person("ann"), QueueKind.UNCERTAIN)
    assert order == [items[3].pk, items[1].pk, items[2].pk, items[0].pk]


def test_web_images_come_oldest_first():
    items = make_web_items(3)
    order = take_all(make_person("ann"), QueueKind.WEB, answer="unusable") if False else None
    person = make_person("ben")
    seen = []
    while (item_id := next_id(person, QueueKind.WEB)) is not None:
        seen.append(item_id)
        services.vote_submit(
            user=person, item_id=item_id, answer="unusable", unusable_reason="watermark"
        )
    assert order is None and seen == [i.pk for i in items]


def test_audit_order_is_random_not_by_score(survey):
    items = make_items(
        survey, QueueKind.AUDIT, n=40, scores=[i / 100 for i in range(40)], votes_needed=1
    )
    firsts = set()
    for n in range(30):
        person = make_person(f"v{n}")
        claim = item_next_for_user(user=person, queue=QueueKind.AUDIT, rng=random.Random(n))
        firsts.add(claim.item.pk)
        services.lease_release(user=person, item_id=claim.item.pk)
    # 30 people starting at random points of 40 items: many different first items.
    assert len(firsts) >= 12
    # One person walks the whole queue, each item once.
    walked = take_all(make_person("walker"), QueueKind.AUDIT)
    assert sorted(walked) == sorted(i.pk for i in items)


def test_nobody_gets_an_item_twice_or_a_retired_one(survey):
    make_items(survey, n=3, votes_needed=2)
    ann, ben, cat = (make_person(n) for n in ("ann", "ben", "cat"))
    first = take_all(ann, QueueKind.CANDIDATES)
    assert len(first) == 3 and next_id(ann) is None  # ann voted on all three
    second = take_all(ben, QueueKind.CANDIDATES)
    assert sorted(second) == sorted(first)
    assert LabelItem.objects.filter(status="retired").count() == 3  # two "no bear" each
    assert next_id(cat) is None  # retired items are never handed out


def test_no_more_leases_on_an_item_than_the_votes_it_still_needs(survey):
    top, second = make_items(survey, n=2, votes_needed=2)
    ann, ben, cat, dan = (make_person(n) for n in ("ann", "ben", "cat", "dan"))
    assert next_id(ann) == top.pk
    assert next_id(ben) == top.pk  # two votes needed: two leases
    assert next_id(cat) == second.pk
    services.vote_submit(user=ann, item_id=top.pk, answer="no_bear")
    # One vote in, one lease (ben's) live: the top item is full until ben answers or leaves.
    assert next_id(dan) == second.pk
    assert Lease.objects.filter(item=top).count() == 1


def test_asking_again_gives_back_the_item_held(survey):
    top, second, third = make_items(survey, n=3, votes_needed=1)
    ann = make_person("ann")
    assert next_id(ann) == top.pk
    assert next_id(ann) == top.pk  # a reloaded page: the same item, lease renewed
    assert next_id(ann, exclude=[top.pk]) == second.pk  # fetching ahead
    assert next_id(ann, exclude=[top.pk, second.pk]) == third.pk
    assert Lease.objects.filter(user=ann).count() == 3


def test_leases_expire_and_the_item_returns(survey):
    (item,) = make_items(survey, n=1, votes_needed=1)
    ann, ben = make_person("ann"), make_person("ben")
    assert next_id(ann) == item.pk
    assert next_id(ben) is None  # held by ann
    later = timezone.now() + timedelta(minutes=11)
    # Expired leases are ignored at once, before beat deletes them.
    assert next_id(ben, now=later) == item.pk
    # Ann comes back too late: ben holds the only slot now.
    with pytest.raises(services.ItemConflict) as err:
        services.vote_submit(user=ann, item_id=item.pk, answer="bear", now=later)
    assert err.value.code == "lease_lost"
    services.vote_submit(user=ben, item_id=item.pk, answer="no_bear", now=later)


def test_beat_task_deletes_expired_leases_and_a_second_run_does_nothing(survey):
    make_items(survey, n=3, votes_needed=1)
    people = [make_person(n) for n in ("ann", "ben", "cat")]
    for p in people:
        next_id(p)
    Lease.objects.filter(user__in=people[:2]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert release_expired_leases.delay().get() == 2
    assert release_expired_leases.delay().get() == 0
    assert list(Lease.objects.values_list("user__username", flat=True)) == ["cat"]


def test_the_beat_schedule_is_an_editable_row():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="labeling.release_expired_leases")
    assert task.enabled and task.interval.every == 1 and task.interval.period == "minutes"


def test_a_skipped_item_is_not_offered_again_to_that_person(survey):
    top, second = make_items(survey, n=2, votes_needed=1)
    ann, ben = make_person("ann"), make_person("ben")
    assert next_id(ann) == top.pk
    services.item_skip(user=ann, item_id=top.pk)
    assert next_id(ann) == second.pk
    assert next_id(ben) == top.pk  # others still get it


def test_a_disabled_queue_hands_out_nothing(survey):
    make_items(survey, n=2)
    SurveyQueue.objects.create(survey=survey, kind=QueueKind.CANDIDATES, enabled=False)
    assert next_id(make_person("ann")) is None


def test_an_archived_survey_hands_out_nothing(survey):
    make_items(survey, n=2)
    survey.archived = True
    survey.save()
    assert next_id(make_person("ann")) is None


def test_team_surveys_go_to_their_members_only(survey):
    from labeling.models import Survey

    insider, outsider = make_person("ins"), make_person("out")
    team = make_team("Churchill crew", insider)
    private = Survey.objects.create(name="Private", gsd_cm=2.4, team=team)
    (secret,) = make_items(private, n=1, scores=[0.99], votes_needed=5)
    (public,) = make_items(survey, n=1, scores=[0.5], votes_needed=5)
    web = make_web_items(1)[0]
    assert next_id(outsider) == public.pk
    assert next_id(outsider, exclude=[public.pk]) is None
    assert next_id(insider) == secret.pk
    assert next_id(outsider, QueueKind.WEB) == web.pk  # Web images belong to everyone
    with pytest.raises(services.ItemNotFound):
        services.vote_submit(user=outsider, item_id=secret.pk, answer="bear")
    assert secret.pk not in selectors.visible_items(user=outsider).values_list("pk", flat=True)


def test_adjudication_is_for_reviewers_only(survey):
    (item,) = make_items(survey, n=1, votes_needed=2)
    ann, ben = make_person("ann"), make_person("ben")
    rev = make_person("rev", roles.REVIEWER)
    services.vote_submit(user=ann, item_id=item.pk, answer="bear")
    services.vote_submit(user=ben, item_id=item.pk, answer="no_bear")
    item.refresh_from_db()
    assert item.status == "adjudication"
    with pytest.raises(PermissionError):
        item_next_for_user(user=ann, queue=QueueKind.ADJUDICATION)
    assert next_id(rev, QueueKind.ADJUDICATION) == item.pk
    assert (
        next_id(make_person("rev2", roles.REVIEWER), QueueKind.ADJUDICATION) is None
    )  # one at a time


def _serve(user, n, rng):
    """Ask ``n`` times; skip each item; count the gold ones."""
    gold = 0
    for _ in range(n):
        claim = item_next_for_user(user=user, queue=QueueKind.CANDIDATES, rng=rng)
        assert claim is not None
        gold += claim.item.is_gold
        services.item_skip(user=user, item_id=claim.item.pk)
    return gold


@pytest.mark.parametrize("answered, correct, expected", [(0, 0, 0.4), (30, 30, 0.1)])
def test_gold_items_are_injected_at_the_volunteer_s_rate(survey, answered, correct, expected):
    """A statistical assertion: over 300 requests, the share of gold items is within four
    standard deviations of the rate (fixed seed, so the test is deterministic)."""
    make_items(survey, n=300, votes_needed=3)
    make_items(survey, QueueKind.AUDIT, n=200, is_gold=True, gold_answer="no_bear")
    person = make_person("gold-digger")
    VolunteerProfile.objects.create(user=person, gold_answered=answered, gold_correct=correct)
    assert selectors.gold_rate_for(answered=answered, correct=correct) == pytest.approx(expected)
    n = 300
    share = _serve(person, n, random.Random(7)) / n
    sigma = (expected * (1 - expected) / n) ** 0.5
    assert abs(share - expected) < 4 * sigma, share


def test_gold_rate_falls_as_a_volunteer_proves_reliable(survey):
    (gold,) = make_items(survey, n=1, is_gold=True, gold_answer="no_bear")
    rates = []
    person = make_person("learner")
    for n in range(0, 25, 6):
        VolunteerProfile.objects.update_or_create(
            user=person, defaults={"gold_answered": n, "gold_correct": n}
        )
        rates.append(selectors.volunteer_summary(user=person)["gold_rate"])
    assert rates[0] == pytest.approx(0.4) and rates[-1] == pytest.approx(0.1)
    assert rates == sorted(rates, reverse=True)


def test_nothing_left_is_none_not_an_error(survey):
    assert next_id(make_person("ann")) is None
    with pytest.raises(selectors.QueueNotFound):
        item_next_for_user(user=make_person("ben"), queue="nonsense")
