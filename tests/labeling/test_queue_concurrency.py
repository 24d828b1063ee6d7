"""Twenty volunteers at once, each in its own thread with its own database connection, asking
for items and voting; some walk away from an item. On PostgreSQL this exercises
``SELECT ... FOR UPDATE SKIP LOCKED``; on SQLite the IMMEDIATE transactions. A monitor thread
checks the invariants against committed data all along, and runs the lease-expiry task."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from labeling.models import LabelItem, Lease, QueueKind, Survey, Vote
from labeling.queues import services
from labeling.queues.selectors import item_next_for_user
from tests.labeling.queue_helpers import fast_passwords, make_items, make_person  # noqa: F401

WORKERS = 20
ITEMS = 60
DEADLINE_S = 90


def _over_leased(now) -> list[int]:
    """Items whose live leases plus counting votes exceed what they need (committed state)."""
    t_item, t_lease, t_vote = LabelItem._meta.db_table, Lease._meta.db_table, Vote._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT li.id FROM {t_item} li WHERE "
            f"(SELECT COUNT(*) FROM {t_vote} v WHERE v.item_id = li.id AND v.undone_at IS NULL "
            " AND v.is_gold_answer = %s AND v.is_review = %s) "
            f"+ (CASE WHEN li.status = 'open' THEN (SELECT COUNT(*) FROM {t_lease} l "
            "   WHERE l.item_id = li.id AND l.expires_at > %s) ELSE 0 END) > li.votes_needed",
            [False, False, connection.ops.adapt_datetimefield_value(now)],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_parallel_volunteers_never_overfill_an_item_and_expired_leases_return(settings):
    settings.BEARSITE_LEASE_MINUTES = 0.03  # 1.8 s: walked-away items come back during the test
    survey = Survey.objects.create(name="Concurrency", gsd_cm=2.4)
    rng = random.Random(11)
    items = make_items(survey, n=ITEMS, scores=[rng.random() for _ in range(ITEMS)], votes_needed=2)
    by_score = sorted(items, key=lambda i: -i.score)
    for rank, item in enumerate(by_score):
        # The five best items need one vote: the volunteers who walk away take exactly those,
        # so nobody else can have them until the leases expire.
        item.votes_needed = 1 if rank < 5 else rng.choice([1, 2, 3])
    LabelItem.objects.bulk_update(items, ["votes_needed"])
    people = [make_person(f"vol{n}").pk for n in range(WORKERS)]
    walked_away: dict[int, int] = {}
    errors: list[BaseException] = []
    conflicts: list[str] = []
    violations: list[tuple] = []
    done = threading.Event()
    start = threading.Barrier(WORKERS + 1)

    def volunteer(user_id: int, index: int) -> None:
        from django.contrib.auth import get_user_model

        try:
            user = get_user_model().objects.get(pk=user_id)
            local = random.Random(index)
            if index % 4 == 0:
                # Every fourth volunteer takes an item before the crowd starts, and closes the tab.
                claim = item_next_for_user(user=user, queue=QueueKind.CANDIDATES, rng=local)
                walked_away[claim.item.pk] = user_id
                start.wait()
                return
            start.wait()
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                claim = item_next_for_user(user=user, queue=QueueKind.CANDIDATES, rng=local)
                if claim is None:
                    mine = Vote.objects.filter(user=user, undone_at__isnull=True).values("item_id")
                    if not LabelItem.objects.filter(status="open").exclude(pk__in=mine).exists():
                        return
                    time.sleep(0.05)  # everything left is held by others, for now
                    continue
                item = claim.item
                # Everyone agrees on each item, so items retire (or go to a reviewer).
                if item.pk % 3 == 0:
                    answer = {"answer": "bear", "points": [[item.x0 + 112, item.y0 + 112]]}
                else:
                    answer = {"answer": "no_bear"}
                try:
                    services.vote_submit(user=user, item_id=item.pk, **answer)
                except services.ItemConflict as exc:
                    conflicts.append(exc.code)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def monitor() -> None:
        try:
            while not done.is_set():
                now = timezone.now()
                bad = _over_leased(now)
                if bad:
                    violations.append((now, bad))
                services.leases_release_expired()
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=volunteer, args=(pk, i)) for i, pk in enumerate(people)]
    watcher = threading.Thread(target=monitor)
    for th in threads:
        th.start()
    watcher.start()
    start.wait()
    for th in threads:
        th.join(DEADLINE_S + 30)
    done.set()
    watcher.join(10)

    assert not errors, errors
    assert not violations, violations[:3]
    assert all(not th.is_alive() for th in threads)
    by_item = {i.pk: i for i in LabelItem.objects.all()}
    # Every item was finished, including those walked away from: their leases expired and
    # the items went back to the queue for the others.
    assert {i.status for i in by_item.values()} <= {"retired", "adjudication"}
    assert sorted(walked_away) == sorted(i.pk for i in by_score[:5])
    for item_id, user_id in walked_away.items():
        assert not Vote.objects.filter(item_id=item_id, user_id=user_id).exists()
        assert by_item[item_id].votes_count == 1  # answered by someone else, after the expiry
    # Never voted beyond what an item needs; never twice by one person.
    for item in by_item.values():
        votes = list(
            Vote.objects.filter(item=item, undone_at__isnull=True).values_list("user_id", flat=True)
        )
        assert len(votes) == item.votes_count <= item.votes_needed
        assert len(set(votes)) == len(votes)
    print(
        f"\n{Vote.objects.count()} votes by {WORKERS} volunteers on {ITEMS} items, "
        f"{len(conflicts)} late votes refused ({sorted(set(conflicts))}), "
        f"{len(walked_away)} items walked away from and finished by others"
    )
