"""Reads for the labelling queues, and the one selector that hands out the next item.

``item_next_for_user`` is the only place that decides what a person labels next. It writes the
lease that claims the item, in the same transaction as the read, because the claim is the read's
purpose; everything else here only reads.

Locking, PostgreSQL (READ COMMITTED): the candidate row is read with
``SELECT ... FOR UPDATE OF labelitem SKIP LOCKED``, so concurrent requests never wait on each
other and never claim the same row at the same moment: each takes the best row nobody else is
claiming. Lease rows are not part of the locked row, so the statement's snapshot may miss a lease
committed a moment earlier; once the row is locked, a fresh statement counts the live leases again
(a new statement sees every commit so far, and nobody can add a lease to this item while we hold
its lock: a vote takes the same lock). Only then is the lease inserted.

The two reads on this path (the candidate row, and a lease already held) are SQL strings built
here rather than ORM querysets: composing the queryset cost ten times more than running it. Both
databases run the same SQL; only the lock clause differs.

SQLite has no row locks: the settings open every transaction with ``BEGIN IMMEDIATE``, so the
selector's transaction holds the database's write lock from its first statement; claims are
serialised and the same recount is trivially right.

Invariants, for every item at every moment: live leases + counting votes <= votes needed (gold
items excepted: everyone may answer them once); nobody is handed an item they voted on (an
undone vote does not count), skipped, or already hold a lease on; nobody is handed a retired item
except a gold item on purpose; adjudication items go to reviewers only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from labeling.models import (
    LabelItem,
    LabellingSettings,
    Lease,
    QueueKind,
    Skip,
    Survey,
    SurveyQueue,
    Team,
    VolunteerProfile,
    Vote,
)
from labeling.queues import consensus, loading, roles

TILE_KINDS = (QueueKind.CANDIDATES, QueueKind.UNCERTAIN, QueueKind.AUDIT)
VOLUNTEER_KINDS = (*TILE_KINDS, QueueKind.WEB)
ALL_QUEUES = (*VOLUNTEER_KINDS, QueueKind.ADJUDICATION)
_MAX_CLAIM_TRIES = 5
_SETTINGS_CACHE_KEY = "labeling:labelling-settings"


@dataclass(frozen=True)
class Claim:
    """An item handed to a person, with the lease that holds it for them."""

    item: LabelItem
    lease: Lease
    queue: str
    resumed: bool = False


class QueueNotFound(ValueError):
    pass


# --- Settings and rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteSwitches:
    show_model_score: bool
    open_signup: bool


def labelling_settings() -> SiteSwitches:
    """The admin's switches (a row once saved, else the environment's defaults), cached for a few
    seconds per process: the next-item call reads them every time."""
    cached = cache.get(_SETTINGS_CACHE_KEY)
    if cached is not None:
        return cached
    row = LabellingSettings.objects.filter(pk=1).first()
    switches = SiteSwitches(
        show_model_score=row.show_model_score if row else settings.BEARSITE_SHOW_MODEL_SCORE,
        open_signup=row.open_signup if row else settings.BEARSITE_OPEN_SIGNUP,
    )
    cache.set(_SETTINGS_CACHE_KEY, switches, 10)
    return switches


def forget_labelling_settings() -> None:
    cache.delete(_SETTINGS_CACHE_KEY)


_NO_SETTING = "none"


def _queue_setting(survey_id: int, kind: str) -> SurveyQueue | None:
    """A survey's queue setting, cached for ten seconds per process (every vote reads it; an
    admin's change reaches the other processes within that time, this one at once)."""
    key = f"labeling:queue-setting:{survey_id}:{kind}"
    setting = cache.get(key)
    if setting is None:
        setting = SurveyQueue.objects.filter(survey_id=survey_id, kind=kind).first() or _NO_SETTING
        cache.set(key, setting, 10)
    return None if setting == _NO_SETTING else setting


def forget_queue_setting(*, survey_id: int, kind: str) -> None:
    cache.delete(f"labeling:queue-setting:{survey_id}:{kind}")


def queue_rules(
    *, survey: Survey | None, kind: str, setting: SurveyQueue | None = None
) -> consensus.QueueRules:
    """The consensus rules for items of ``kind`` in ``survey``: the survey's queue setting where
    there is one, else the defaults in settings (BEARSITE_DEFAULT_VOTES, BEARSITE_QUEUE_RULES)."""
    if setting is None and survey is not None:
        setting = _queue_setting(survey.pk, kind)
    defaults = settings.BEARSITE_QUEUE_RULES.get(kind, {})
    length_px = (
        survey.animal_length_px if survey is not None else None
    ) or settings.BEARSITE_FALLBACK_ANIMAL_LENGTH_PX
    if setting is not None:
        return consensus.QueueRules(
            votes_needed=setting.votes_needed,
            agree=setting.agree_votes,
            no_bear_below=setting.no_bear_below,
            point_tolerance_px=setting.point_agree_lengths * length_px,
            weighted_majority=0.75 if setting.weight_by_accuracy else None,
        )
    return consensus.QueueRules(
        votes_needed=settings.BEARSITE_DEFAULT_VOTES.get(kind, 2),
        agree=defaults.get("agree", 2),
        no_bear_below=defaults.get("no_bear_below"),
        point_tolerance_px=settings.BEARSITE_POINT_AGREE_LENGTHS * length_px,
    )


def _gold_key(user_id: int) -> str:
    return f"labeling:gold-record:{user_id}"


def gold_record(*, user) -> tuple[int, int]:
    """(gold items answered, answered right) for the gold rate, cached for a minute per process:
    the rate moves slowly, and the next-item call reads it every time. The vote that records a
    gold answer refreshes it in its own process."""
    key = _gold_key(user.pk)
    record = cache.get(key)
    if record is None:
        record = VolunteerProfile.objects.filter(user=user).values_list(
            "gold_answered", "gold_correct"
        ).first() or (0, 0)
        cache.set(key, tuple(record), 60)
    return tuple(record)


def forget_gold_record(*, user_id: int) -> None:
    cache.delete(_gold_key(user_id))


def point_tolerance_px(item: LabelItem) -> float:
    length_px = (
        item.survey.animal_length_px if item.survey_id else None
    ) or settings.BEARSITE_FALLBACK_ANIMAL_LENGTH_PX
    return settings.BEARSITE_POINT_AGREE_LENGTHS * length_px


def gold_rate_for(*, answered: int, correct: int) -> float:
    return consensus.gold_rate(
        answered=answered,
        correct=correct,
        start=settings.BEARSITE_GOLD_RATE_MAX,
        floor=settings.BEARSITE_GOLD_RATE_MIN,
        ramp=settings.BEARSITE_GOLD_RAMP,
        trusted=settings.BEARSITE_GOLD_TRUSTED_ACCURACY,
    )


# --- Visibility ---------------------------------------------------------------------------------


def visible_surveys(*, user) -> QuerySet[Survey]:
    """Surveys whose items this person may see: unarchived, and without a team or of one of
    their teams (staff see every survey)."""
    qs = Survey.objects.filter(archived=False)
    if roles.sees_every_survey(user):
        return qs
    return qs.filter(Q(team__isnull=True) | Q(team__members=user))


def visible_items(*, user) -> QuerySet[LabelItem]:
    """Items this person may see, in pages and in the API. Web images belong to no survey and are
    visible to every volunteer; adjudication items only to reviewers."""
    surveys = visible_surveys(user=user).values("pk")
    qs = LabelItem.objects.filter(Q(survey__isnull=True) | Q(survey_id__in=surveys))
    if not roles.can_review(user):
        qs = qs.exclude(status=LabelItem.Status.ADJUDICATION, is_gold=False)
    return qs


def item_visible_to(*, user, item: LabelItem, hide_adjudication: bool = True) -> bool:
    """``visible_items`` for one item. A vote passes ``hide_adjudication=False``: a volunteer
    whose item went to a reviewer meanwhile is told so, not told it does not exist."""
    if (
        hide_adjudication
        and item.status == LabelItem.Status.ADJUDICATION
        and not item.is_gold
        and not roles.can_review(user)
    ):
        return False
    if item.survey_id is None or roles.sees_every_survey(user):
        return True
    survey = item.survey
    if survey.archived:
        return False
    if survey.team_id is None:
        return True
    return Team.members.through.objects.filter(team_id=survey.team_id, user_id=user.pk).exists()


# --- The next item ------------------------------------------------------------------------------


def _lease_expiry(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.BEARSITE_LEASE_MINUTES)


def _tables() -> dict[str, str]:
    return {
        "item": LabelItem._meta.db_table,
        "lease": Lease._meta.db_table,
        "vote": Vote._meta.db_table,
        "skip": Skip._meta.db_table,
        "survey": Survey._meta.db_table,
        "members": Team.members.through._meta.db_table,
        "queue": SurveyQueue._meta.db_table,
    }


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


# The two reads on the hot path are written in SQL: the ORM spent ten times longer composing
# them than the database spent running them (tens of milliseconds per request on two cores).
# They are plain SQL that SQLite and PostgreSQL both run; the lock clause is added where the
# database has one. The tests run them on both.


def _candidate_sql(
    *,
    queue: str,
    gold: bool,
    user,
    now_db,
    survey_id: int | None,
    skip_ids,
    order: str,
    start: float | None,
    wrapped: bool,
) -> tuple[str, list]:
    t = _tables()
    where: list[str] = []
    params: list = []
    if gold:
        kinds = TILE_KINDS if queue in TILE_KINDS else (QueueKind.WEB,)
        where.append(f"li.is_gold = %s AND li.kind IN ({_in(kinds)})")
        params += [True, *kinds]
    elif queue == QueueKind.ADJUDICATION:
        kinds = VOLUNTEER_KINDS
        where.append("li.status = %s AND li.is_gold = %s")
        params += [LabelItem.Status.ADJUDICATION, False]
        # One reviewer at a time: the reviewer's answer is final.
        where.append(
            f"NOT EXISTS (SELECT 1 FROM {t['lease']} l WHERE l.item_id = li.id AND l.expires_at > %s)"
        )
        params.append(now_db)
    else:
        kinds = (queue,)
        where.append("li.kind = %s AND li.status = %s AND li.is_gold = %s")
        params += [queue, LabelItem.Status.OPEN, False]
        where.append(
            f"li.votes_count + (SELECT COUNT(*) FROM {t['lease']} l WHERE l.item_id = li.id "
            "AND l.expires_at > %s) < li.votes_needed"
        )
        params.append(now_db)
    if any(k != QueueKind.WEB for k in kinds):
        # Survey items: unarchived surveys without a team or of one of this person's teams.
        visible = f"SELECT s.id FROM {t['survey']} s WHERE s.archived = %s"
        params_visible: list = [False]
        if not roles.sees_every_survey(user):
            visible += (
                f" AND (s.team_id IS NULL OR s.team_id IN "
                f"(SELECT m.team_id FROM {t['members']} m WHERE m.user_id = %s))"
            )
            params_visible.append(user.pk)
        survey_rule = f"li.survey_id IN ({visible})"
        if not gold and queue in TILE_KINDS:
            survey_rule += (
                f" AND li.survey_id NOT IN (SELECT q.survey_id FROM {t['queue']} q "
                "WHERE q.kind = %s AND q.enabled = %s)"
            )
            params_visible += [queue, False]
        if QueueKind.WEB in kinds:  # adjudication: Web items have no survey
            survey_rule = f"(li.survey_id IS NULL OR ({survey_rule}))"
        where.append(survey_rule)
        params += params_visible
    if survey_id is not None:
        where.append("li.survey_id = %s")
        params.append(survey_id)
    # Never what this person voted on (an undone vote does not count), skipped, or holds.
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {t['vote']} v WHERE v.item_id = li.id AND v.user_id = %s "
        "AND v.undone_at IS NULL)"
    )
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {t['skip']} k WHERE k.item_id = li.id AND k.user_id = %s)"
    )
    # Any lease of theirs, live or expired (an expired one is deleted by beat within a minute).
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {t['lease']} o WHERE o.item_id = li.id AND o.user_id = %s)"
    )
    params += [user.pk, user.pk, user.pk]
    if skip_ids:
        where.append(f"li.id NOT IN ({_in(skip_ids)})")
        params += list(skip_ids)
    if order == "random":
        where.append("li.random_key < %s" if wrapped else "li.random_key >= %s")
        params.append(start)
        order_by = "li.random_key, li.id"
    elif order == "random-small":
        # Gold items are few: one query that wraps round, rather than an index range and a
        # second query when the range is empty.
        order_by = "CASE WHEN li.random_key >= %s THEN 0 ELSE 1 END, li.random_key, li.id"
        order_params = [start]
    elif order == "priority":
        order_by = "li.priority DESC, li.id"
    else:
        order_by = "li.id"
    sql = (
        f"SELECT li.id, li.votes_count, li.votes_needed FROM {t['item']} li "
        f"WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT 1"
    )
    if order == "random-small":
        params += order_params
    if not gold and connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE OF li SKIP LOCKED"
    # SQLite: no row locks; the IMMEDIATE transaction holds the write lock (module docstring).
    return sql, params


def _first_candidate(**kw) -> tuple[int, int, int] | None:
    """The first item in the order the queue claims: candidates by model score and uncertain by
    closeness to the decision boundary (both stored as ``priority``: "priority"), audit and gold
    at random ("random": a stored random key read from a random starting point, wrapping round;
    an index range scan rather than ORDER BY RANDOM(); "random-small" does the same in one
    query for the few gold items), Web images and adjudication oldest first ("oldest")."""
    row = loading.fetch(*_candidate_sql(wrapped=False, **kw))
    if row is None and kw["order"] == "random":
        row = loading.fetch(*_candidate_sql(wrapped=True, **kw))
    return row


_ORDER = {
    QueueKind.CANDIDATES: "priority",
    QueueKind.UNCERTAIN: "priority",
    QueueKind.AUDIT: "random",
    QueueKind.WEB: "oldest",
    QueueKind.ADJUDICATION: "oldest",
}


def item_for_page(pk: int) -> LabelItem:
    """An item with what its payload shows: survey, frame name, Web image (one SQL query)."""
    item = loading.load_item(pk)
    if item is None:
        raise LabelItem.DoesNotExist(pk)
    return item


_full_item = item_for_page


def _resume(*, user, queue: str, survey_id: int | None, exclude, now: datetime) -> Claim | None:
    """A live lease this person already holds in this queue (a reloaded page gets its item back
    instead of claiming another). ``exclude`` names the items the page is showing already. A
    lease on an item that left the queue is gone already (deciding an item drops its leases)."""
    t = _tables()
    sql = (
        f"SELECT l.id, l.item_id FROM {t['lease']} l JOIN {t['item']} li ON li.id = l.item_id "
        "WHERE l.user_id = %s AND l.queue = %s AND l.expires_at > %s "
        f"AND NOT EXISTS (SELECT 1 FROM {t['vote']} v WHERE v.item_id = l.item_id "
        "AND v.user_id = %s AND v.undone_at IS NULL)"
    )
    params: list = [user.pk, queue, connection.ops.adapt_datetimefield_value(now), user.pk]
    if exclude:
        sql += f" AND l.item_id NOT IN ({_in(exclude)})"
        params += list(exclude)
    if survey_id is not None:
        sql += " AND li.survey_id = %s"
        params.append(survey_id)
    sql += " ORDER BY l.created_at, l.id LIMIT 1"
    row = loading.fetch(sql, params)
    if row is None:
        return None
    lease_id, item_id = row
    expires = _lease_expiry(now)
    Lease.objects.filter(pk=lease_id).update(expires_at=expires)
    lease = Lease(pk=lease_id, item_id=item_id, user=user, queue=queue, expires_at=expires)
    return Claim(item=_full_item(item_id), lease=lease, queue=queue, resumed=True)


def _insert_lease(
    *, item_id: int, user, queue: str, now: datetime, limit: int | None
) -> Lease | None:
    """Insert the lease; with ``limit``, only while the item's live leases are fewer. One
    statement, so it counts with a fresh snapshot (module docstring) in the same round trip."""
    t = _tables()["lease"]
    expires = _lease_expiry(now)
    adapt = connection.ops.adapt_datetimefield_value
    values = [item_id, user.pk, queue, adapt(now), adapt(expires)]
    columns = "item_id, user_id, queue, created_at, expires_at"
    if limit is None:
        sql = f"INSERT INTO {t} ({columns}) VALUES (%s, %s, %s, %s, %s) RETURNING id"
        params = values
    else:
        sql = (
            f"INSERT INTO {t} ({columns}) SELECT %s, %s, %s, %s, %s WHERE "
            f"(SELECT COUNT(*) FROM {t} WHERE item_id = %s AND expires_at > %s) < %s RETURNING id"
        )
        params = [*values, item_id, adapt(now), limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return Lease(
        pk=row[0], item_id=item_id, user=user, queue=queue, created_at=now, expires_at=expires
    )


def _claim(
    *,
    user,
    queue: str,
    gold: bool,
    survey_id: int | None,
    exclude,
    rng: random.Random,
    now: datetime,
) -> Claim | None:
    tried = [int(pk) for pk in exclude]
    now_db = connection.ops.adapt_datetimefield_value(now)
    order = "random-small" if gold else _ORDER[queue]
    for _ in range(_MAX_CLAIM_TRIES):
        row = _first_candidate(
            queue=queue,
            gold=gold,
            user=user,
            now_db=now_db,
            survey_id=survey_id,
            skip_ids=tried,
            order=order,
            start=rng.random() if order.startswith("random") else None,
        )
        if row is None:
            return None
        pk, votes_count, votes_needed = row
        if gold:
            limit = None  # everyone may answer a gold item once
        elif queue == QueueKind.ADJUDICATION:
            limit = 1  # one reviewer at a time
        else:
            limit = votes_needed - votes_count
        lease = _insert_lease(item_id=pk, user=user, queue=queue, now=now, limit=limit)
        if lease is None:  # a lease committed since our snapshot filled the item
            tried.append(pk)
            continue
        return Claim(item=_full_item(pk), lease=lease, queue=queue)
    return None


def item_next_for_user(
    *,
    user,
    queue: str,
    survey_id: int | None = None,
    exclude: tuple[int, ...] | list[int] = (),
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Claim | None:
    """Hand ``user`` the next item of ``queue`` with a lease, or None when there is nothing for
    them. A live lease they hold in this queue (outside ``exclude``) is handed back first. In the
    volunteer queues a gold item comes first with probability ``gold_rate_for`` their record;
    gold items of any tile queue are mixed into each tile queue, Web gold into the Web queue,
    served whatever their status, on purpose. Raises ``QueueNotFound`` for an unknown queue and
    ``PermissionError`` for a queue they may not use."""
    if queue not in ALL_QUEUES:
        raise QueueNotFound(queue)
    if queue == QueueKind.ADJUDICATION and not roles.can_review(user):
        raise PermissionError("Only reviewers settle disagreements.")
    rng = rng or random.Random()
    now = now or timezone.now()
    exclude = [int(pk) for pk in exclude]
    with transaction.atomic():
        claim = _resume(user=user, queue=queue, survey_id=survey_id, exclude=exclude, now=now)
        if claim is not None:
            return claim
        common = dict(
            user=user, queue=queue, survey_id=survey_id, exclude=exclude, rng=rng, now=now
        )
        if queue != QueueKind.ADJUDICATION:
            answered, correct = gold_record(user=user)
            if rng.random() < gold_rate_for(answered=answered, correct=correct):
                claim = _claim(gold=True, **common)
                if claim is not None:
                    return claim
        return _claim(gold=False, **common)


# --- Counts and dashboards ----------------------------------------------------------------------


def queue_sizes(*, user=None) -> dict[str, dict[str, int]]:
    """Items per queue and status (gold items apart), for the items ``user`` may see (all when
    None). One grouped query."""
    qs = LabelItem.objects.all() if user is None else visible_items(user=user)
    out: dict[str, dict[str, int]] = {
        k: {"open": 0, "adjudication": 0, "retired": 0, "gold": 0} for k in VOLUNTEER_KINDS
    }
    for kind, status, is_gold, n in (
        qs.values_list("kind", "status", "is_gold").annotate(n=Count("pk")).order_by()
    ):
        row = out.setdefault(kind, {"open": 0, "adjudication": 0, "retired": 0, "gold": 0})
        if is_gold:
            row["gold"] += n
        else:
            row[status] = row.get(status, 0) + n
    return out


def volunteer_summary(*, user) -> dict:
    """A person's own figures: votes (all, today, per queue), gold accuracy and gold rate."""
    profile = VolunteerProfile.objects.filter(user=user).first()
    answered = profile.gold_answered if profile else 0
    correct = profile.gold_correct if profile else 0
    votes = Vote.objects.filter(user=user, undone_at__isnull=True)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    per_kind = dict(votes.values_list("item__kind").annotate(n=Count("pk")).order_by())
    agreed = votes.filter(
        is_gold_answer=False, item__status=LabelItem.Status.RETIRED, answer=F("item__consensus")
    ).count()
    decided = votes.filter(is_gold_answer=False, item__status=LabelItem.Status.RETIRED).count()
    return {
        "votes": sum(per_kind.values()),
        "votes_today": votes.filter(created_at__gte=today).count(),
        "per_queue": per_kind,
        "gold_answered": answered,
        "gold_correct": correct,
        "gold_accuracy": (correct / answered) if answered else None,
        "gold_rate": gold_rate_for(answered=answered, correct=correct),
        "agreed_with_consensus": agreed,
        "decided": decided,
        "tutorial_seen": bool(profile and profile.tutorial_seen_at),
    }


def labelling_overview(*, hours: int = 24, now: datetime | None = None) -> dict:
    """The admin dashboard: queue sizes, votes per hour over the last ``hours``, the agreement
    rate, and who labelled what."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    counting = Vote.objects.filter(undone_at__isnull=True)
    per_hour = {
        row["hour"]: row["n"]
        for row in counting.filter(created_at__gte=since)
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(n=Count("pk"))
        .order_by()
    }
    start = now.replace(minute=0, second=0, microsecond=0)
    hours_list = [start - timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    votes_per_hour = [{"hour": h, "votes": per_hour.get(h, 0)} for h in hours_list]
    # Agreement: of the items that collected two or more volunteer votes and were decided, the
    # share that volunteers settled by agreeing (no reviewer needed).
    decided = LabelItem.objects.filter(
        is_gold=False,
        votes_count__gte=2,
        status__in=[LabelItem.Status.RETIRED, LabelItem.Status.ADJUDICATION],
    ).annotate(
        reviewed=Exists(
            Vote.objects.filter(item=OuterRef("pk"), is_review=True, undone_at__isnull=True)
        )
    )
    n_decided = decided.count()
    n_agreed = decided.filter(status=LabelItem.Status.RETIRED, reviewed=False).count()
    people = list(
        counting.values("user_id", "user__username")
        .annotate(
            votes=Count("pk"),
            bear=Count("pk", filter=Q(answer="bear")),
            no_bear=Count("pk", filter=Q(answer="no_bear")),
            unsure=Count("pk", filter=Q(answer="unsure")),
            web=Count("pk", filter=Q(item__kind=QueueKind.WEB)),
            reviews=Count("pk", filter=Q(is_review=True)),
        )
        .order_by("-votes")[:200]
    )
    profiles = {
        p.user_id: p
        for p in VolunteerProfile.objects.filter(user_id__in=[r["user_id"] for r in people])
    }
    for row in people:
        p = profiles.get(row["user_id"])
        row["gold_answered"] = p.gold_answered if p else 0
        row["gold_accuracy"] = p.gold_accuracy if p else None
        row["last_vote_at"] = p.last_vote_at if p else None
    return {
        "queues": queue_sizes(),
        "votes_per_hour": votes_per_hour,
        "votes_last_hour": counting.filter(created_at__gte=now - timedelta(hours=1)).count(),
        "votes_total": counting.count(),
        "agreement_rate": (n_agreed / n_decided) if n_decided else None,
        "agreement_items": n_decided,
        "people": people,
    }
