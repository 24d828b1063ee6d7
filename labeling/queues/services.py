"""Writes for the labelling queues: votes, undo, skips, leases, gold items, queue settings,
invitations and volunteer accounts (keyword-only, one function per action).

Locking: every write that changes an item's votes or leases first locks the item row
(``SELECT ... FOR UPDATE``; on SQLite the IMMEDIATE transaction holds the write lock), the same
lock the next-item selector takes, so capacity checks and consensus see a settled picture. An
item's consensus is recomputed from its counting votes by ``consensus.decide`` after every vote
and undo, never patched by hand. Every vote is kept: undo marks it ``undone_at``.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.models import (
    InviteCode,
    LabelItem,
    LabellingSettings,
    Lease,
    QueueKind,
    Skip,
    Survey,
    SurveyQueue,
    Team,
    UnusableReason,
    VolunteerProfile,
    Vote,
    WebImage,
)
from labeling.queues import consensus, loading, roles, selectors


class QueueError(Exception):
    """A refused action, with a message a volunteer can read. ``status`` is the HTTP status the
    API answers with."""

    status = 400

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


class ItemNotFound(QueueError):
    status = 404


class ItemConflict(QueueError):
    status = 409


class NotAllowed(QueueError):
    status = 403


UNSET = object()  # "leave as it is", where None is a meaningful value
TILE_ANSWERS = (consensus.BEAR, consensus.NO_BEAR, consensus.UNSURE)
WEB_ANSWERS = (consensus.USABLE, consensus.UNUSABLE)
MAX_POINTS = 50


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    item: LabelItem
    gold: consensus.GoldVerdict | None = None


@dataclass(frozen=True)
class UndoResult:
    vote: Vote
    claim: selectors.Claim


# --- Votes --------------------------------------------------------------------------------------


def _lock_item(item_id: int) -> LabelItem:
    """The item, its row locked, with its survey and Web image."""
    item = loading.load_item(item_id, lock=True)
    if item is None:
        raise ItemNotFound("There is no such item.", code="not_found")
    return item


def _clean_points(item: LabelItem, points) -> list[list[float]]:
    """Points in frame coordinates, inside the item's tile or its context view."""
    if not points:
        return []
    if len(points) > MAX_POINTS:
        raise QueueError(f"At most {MAX_POINTS} points per vote.", code="too_many_points")
    boxes = [(item.x0, item.y0, item.x1, item.y1)]
    if item.context_box and len(item.context_box) == 4:
        boxes.append(tuple(item.context_box))
    out = []
    for p in points:
        try:
            x, y = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise QueueError("A point is [x, y] in frame pixels.", code="bad_point") from None
        if not any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes):
            raise QueueError(
                "A point lies outside the tile and its context view.", code="point_outside"
            )
        out.append([round(x, 1), round(y, 1)])
    return out


def _clean_boxes(item: LabelItem, boxes) -> list[list[float]]:
    """Boxes in the Web image's pixels, clipped to it; zero-area boxes are refused."""
    if not boxes:
        return []
    if len(boxes) > MAX_POINTS:
        raise QueueError(f"At most {MAX_POINTS} boxes per vote.", code="too_many_boxes")
    width = item.web_image.width if item.web_image_id else item.x1
    height = item.web_image.height if item.web_image_id else item.y1
    out = []
    for b in boxes:
        try:
            x0, y0, x1, y1 = (float(v) for v in b)
        except (TypeError, ValueError):
            raise QueueError("A box is [x0, y0, x1, y1] in image pixels.", code="bad_box") from None
        x0, x1 = sorted((min(max(x0, 0), width), min(max(x1, 0), width)))
        y0, y1 = sorted((min(max(y0, 0), height), min(max(y1, 0), height)))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise QueueError("A box must enclose the bear (it has no area).", code="empty_box")
        out.append([round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)])
    return out


def _check_answer(
    item: LabelItem, answer: str, points, boxes, reason: str
) -> tuple[list, list, str]:
    if item.kind == QueueKind.WEB:
        if answer not in WEB_ANSWERS:
            raise QueueError("A Web image is 'usable' or 'unusable'.", code="bad_answer")
        if answer == consensus.USABLE:
            clean_boxes = _clean_boxes(item, boxes)
            if not clean_boxes:
                raise QueueError(
                    "Draw a box around each bear of a usable image.", code="boxes_needed"
                )
            return [], clean_boxes, ""
        if reason not in UnusableReason.values:
            raise QueueError(
                "Say why the image is unusable: " + ", ".join(UnusableReason.labels) + ".",
                code="reason_needed",
            )
        return [], [], reason
    if answer not in TILE_ANSWERS:
        raise QueueError("A tile is 'bear', 'no_bear' or 'unsure'.", code="bad_answer")
    if answer != consensus.BEAR and points:
        raise QueueError(
            "Points mark bears; a 'no bear' or 'unsure' vote has none.", code="points_without_bear"
        )
    return _clean_points(item, points), [], ""


def _vote_in(vote: Vote, weight: float = 1.0) -> consensus.VoteIn:
    return consensus.VoteIn(
        answer=vote.answer,
        points=tuple(tuple(p) for p in vote.points or ()),
        boxes=tuple(tuple(b) for b in vote.boxes or ()),
        reason=vote.unusable_reason,
        weight=weight,
        is_review=vote.is_review,
    )


@dataclass(frozen=True)
class CastVote:
    """A counting vote, as consensus reads it."""

    user_id: int
    answer: str
    points: list
    boxes: list
    unusable_reason: str
    is_review: bool
    is_gold_answer: bool


def _json(value):
    return json.loads(value) if isinstance(value, str) else (value or [])


def _counting_votes(item: LabelItem) -> list[CastVote]:
    """Every vote that counts (not undone), gold answers included, oldest first. Plain SQL: it
    runs on every vote (see ``loading``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, answer, points, boxes, unusable_reason, is_review, is_gold_answer "
            f"FROM {Vote._meta.db_table} WHERE item_id = %s AND undone_at IS NULL "
            "ORDER BY created_at, id",
            [item.pk],
        )
        rows = cursor.fetchall()
    return [
        CastVote(u, a, _json(p), _json(b), r or "", bool(rev), bool(gold))
        for u, a, p, b, r, rev, gold in rows
    ]


def _recompute(
    item: LabelItem, *, now: datetime, votes: list[Vote] | None = None
) -> consensus.Decision:
    """Decide the item from its counting votes (gold answers left out) and store the decision.
    Leaving ``open`` releases every lease on the item: a reviewer, or nobody, takes it next."""
    if votes is None:
        votes = _counting_votes(item)
    votes = [v for v in votes if not v.is_gold_answer]
    # The item's own number of votes is the truth (set from its queue when it was made, and
    # brought up to date when an admin changes the queue).
    rules = dataclasses.replace(
        selectors.queue_rules(survey=item.survey if item.survey_id else None, kind=item.kind),
        votes_needed=item.votes_needed,
    )
    weights: dict[int, float] = {}
    if rules.weighted_majority is not None:
        for p in VolunteerProfile.objects.filter(user_id__in=[v.user_id for v in votes]):
            weights[p.user_id] = consensus.smoothed_accuracy(
                answered=p.gold_answered, correct=p.gold_correct
            )
    decision = consensus.decide(
        [_vote_in(v, weights.get(v.user_id, 0.5)) for v in votes], rules, score=item.score
    )
    was = item.status
    item.votes_count = len(votes)
    item.status = decision.status
    retired = decision.status == LabelItem.Status.RETIRED
    item.consensus = decision.answer if retired else ""
    item.consensus_points = decision.points if retired else []
    item.consensus_boxes = decision.boxes if retired else []
    item.consensus_reason = decision.reason if retired else ""
    if retired and was != LabelItem.Status.RETIRED:
        item.retired_at = now
    elif not retired:
        item.retired_at = None
    loading.update(
        LabelItem,
        item.pk,
        votes_count=item.votes_count,
        status=item.status,
        consensus=item.consensus,
        consensus_points=item.consensus_points,
        consensus_boxes=item.consensus_boxes,
        consensus_reason=item.consensus_reason,
        retired_at=item.retired_at,
    )
    if was == LabelItem.Status.OPEN and item.status != was:
        Lease.objects.filter(item=item).delete()
    if item.web_image_id and (retired or was == LabelItem.Status.RETIRED):
        curation = decision.answer if retired else WebImage.Curation.UNREVIEWED
        WebImage.objects.filter(pk=item.web_image_id).update(curation=curation)
    return decision


def _bump_profile(
    user,
    *,
    votes_total: int = 0,
    gold_answered: int = 0,
    gold_correct: int = 0,
    last_vote_at: datetime | None = None,
) -> None:
    """Add to the person's counts (in the database, so concurrent votes add up), creating
    their profile on first use."""
    table = VolunteerProfile._meta.db_table
    sql = (
        f"UPDATE {table} SET votes_total = votes_total + %s, gold_answered = gold_answered + %s, "
        "gold_correct = gold_correct + %s, last_vote_at = COALESCE(%s, last_vote_at) "
        "WHERE user_id = %s"
    )
    when = None if last_vote_at is None else connection.ops.adapt_datetimefield_value(last_vote_at)
    with connection.cursor() as cursor:
        cursor.execute(sql, [votes_total, gold_answered, gold_correct, when, user.pk])
        if cursor.rowcount:
            return
    try:
        with transaction.atomic():
            VolunteerProfile.objects.create(
                user=user,
                votes_total=max(votes_total, 0),
                gold_answered=max(gold_answered, 0),
                gold_correct=max(gold_correct, 0),
                last_vote_at=last_vote_at,
            )
    except IntegrityError:  # created meanwhile by another request of theirs
        _bump_profile(
            user,
            votes_total=votes_total,
            gold_answered=gold_answered,
            gold_correct=gold_correct,
            last_vote_at=last_vote_at,
        )


def vote_submit(
    *,
    user,
    item_id: int,
    answer: str,
    points=(),
    boxes=(),
    unusable_reason: str = "",
    duration_ms: int | None = None,
    make_gold: bool = False,
    now: datetime | None = None,
) -> VoteResult:
    """Record one person's answer about one item and settle the item's consensus.

    Refused (``ItemConflict``) when they voted on it already, when it is decided, when it waits
    for a reviewer and they are not one, or when their lease expired and the item no longer needs
    their vote (live leases of others + votes already fill it). A reviewer's vote on an item in
    adjudication is final. An answer to a gold item is judged at once (the verdict comes back)
    and never changes the gold item's consensus. ``make_gold`` (reviewers) turns the item, once
    decided, into a gold item with its consensus as the known answer."""
    now = now or timezone.now()
    if not roles.can_label(user):
        raise NotAllowed("You are not a volunteer here.", code="not_volunteer")
    with transaction.atomic():
        item = _lock_item(item_id)
        if not selectors.item_visible_to(user=user, item=item, hide_adjudication=False):
            raise ItemNotFound("There is no such item.", code="not_found")
        is_review = False
        if not item.is_gold:
            if item.status == LabelItem.Status.RETIRED:
                raise ItemConflict("This item has been decided already.", code="retired")
            if item.status == LabelItem.Status.ADJUDICATION:
                if not roles.can_review(user):
                    raise ItemConflict("This item waits for a reviewer.", code="adjudication")
                is_review = True
        points, boxes, reason = _check_answer(item, answer, points, boxes, unusable_reason)
        votes = _counting_votes(item)
        if any(v.user_id == user.pk for v in votes):
            raise ItemConflict("You answered this item already.", code="already_voted")
        # The vote takes the place of the person's lease: delete it, and look at the others only
        # when theirs was missing or expired (one statement in the usual case).
        mine = _delete_own_lease(item_id=item.pk, user_id=user.pk)
        if not item.is_gold and (mine is None or mine <= now):
            others = Lease.objects.filter(item=item, expires_at__gt=now).count()
            limit = 1 if is_review else item.votes_needed - item.votes_count
            if others >= limit:
                raise ItemConflict(
                    "Your time on this item ran out and someone else has it now.", code="lease_lost"
                )
        verdict = None
        if item.is_gold:
            verdict = consensus.gold_verdict(
                answer=answer,
                points=[tuple(p) for p in points],
                gold_answer=item.gold_answer,
                gold_points=[tuple(p) for p in item.gold_points or ()],
                tolerance=selectors.point_tolerance_px(item),
            )
        vote = loading.insert(
            Vote,
            item=item.pk,
            user=user.pk,
            answer=answer,
            points=points,
            boxes=boxes,
            unusable_reason=reason,
            duration_ms=_clean_duration(duration_ms),
            is_review=is_review,
            is_gold_answer=item.is_gold,
            gold_correct=None if verdict is None else verdict.correct,
            created_at=now,
        )
        if verdict is not None:
            _bump_profile(
                user,
                votes_total=1,
                gold_answered=1,
                gold_correct=int(verdict.correct),
                last_vote_at=now,
            )
            selectors.forget_gold_record(user_id=user.pk)
        else:
            _recompute(item, now=now, votes=[*votes, vote])
            _bump_profile(user, votes_total=1, last_vote_at=now)
            if make_gold and is_review and item.status == LabelItem.Status.RETIRED:
                _make_gold(item, answer=item.consensus, points=item.consensus_points)
    return VoteResult(vote=vote, item=item, gold=verdict)


def _delete_own_lease(*, item_id: int, user_id: int) -> datetime | None:
    """Delete this person's lease on the item; return when it would have expired (None: they
    held none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Lease._meta.db_table} WHERE item_id = %s AND user_id = %s RETURNING expires_at",
            [item_id, user_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    value = row[0]
    if isinstance(value, str):  # SQLite gives back the stored text: UTC, without an offset
        value = parse_datetime(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def _clean_duration(duration_ms) -> int | None:
    if duration_ms in (None, ""):
        return None
    try:
        value = int(duration_ms)
    except (TypeError, ValueError):
        raise QueueError(
            "duration_ms is a whole number of milliseconds.", code="bad_duration"
        ) from None
    # A tab left open over lunch is not an hour of work on one tile: cap it.
    return min(max(value, 0), 3_600_000)


def vote_undo(*, user, now: datetime | None = None) -> UndoResult:
    """Take back this person's last vote, within ``BEARSITE_UNDO_SECONDS``: the vote is kept but
    marked undone, the item's consensus is recomputed (an item the vote retired is open again),
    and the item is handed back to them with a fresh lease so they can answer again."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.BEARSITE_UNDO_SECONDS)
    with transaction.atomic():
        last = Vote.objects.filter(user=user).order_by("-created_at", "-pk").first()
        if last is None or last.undone_at is not None:
            raise ItemConflict("There is no vote to undo.", code="nothing_to_undo")
        if now - last.created_at > window:
            raise ItemConflict(
                f"A vote can be undone within {settings.BEARSITE_UNDO_SECONDS} seconds.",
                code="too_late",
            )
        item = _lock_item(last.item_id)
        vote = Vote.objects.select_for_update().get(pk=last.pk)
        if vote.undone_at is not None:
            raise ItemConflict("There is no vote to undo.", code="nothing_to_undo")
        vote.undone_at = now
        vote.save(update_fields=["undone_at"])
        if vote.is_gold_answer:
            _bump_profile(
                user, votes_total=-1, gold_answered=-1, gold_correct=-int(bool(vote.gold_correct))
            )
            selectors.forget_gold_record(user_id=user.pk)
        else:
            if not item.is_gold:  # a gold item's consensus is its known answer
                _recompute(item, now=now)
            _bump_profile(user, votes_total=-1)
        queue = QueueKind.ADJUDICATION if vote.is_review else item.kind
        Lease.objects.filter(item=item, user=user).delete()
        lease = Lease.objects.create(
            item=item,
            user=user,
            queue=queue,
            expires_at=now + timedelta(minutes=settings.BEARSITE_LEASE_MINUTES),
        )
    return UndoResult(
        vote=vote, claim=selectors.Claim(item=item, lease=lease, queue=queue, resumed=True)
    )


# --- Leases and skips ---------------------------------------------------------------------------


def item_skip(*, user, item_id: int) -> None:
    """Pass on an item: the lease is released and it is never offered to this person again."""
    with transaction.atomic():
        if not LabelItem.objects.filter(pk=item_id).exists():
            raise ItemNotFound("There is no such item.", code="not_found")
        Lease.objects.filter(item_id=item_id, user=user).delete()
        Skip.objects.get_or_create(item_id=item_id, user=user)


def lease_release(*, user, item_id: int) -> int:
    """Give an item back without answering (a page closing releases the item it fetched ahead)."""
    deleted, _ = Lease.objects.filter(item_id=item_id, user=user).delete()
    return deleted


def leases_release_expired(*, now: datetime | None = None) -> int:
    """Delete expired leases (beat, every minute). The selector already ignores them; deleting
    keeps lease counts small. Idempotent: a second run finds nothing."""
    deleted, _ = Lease.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


# --- Gold items ---------------------------------------------------------------------------------


def _make_gold(item: LabelItem, *, answer: str, points, now: datetime | None = None) -> None:
    """A gold item's known answer is its consensus: it is retired with it (training and counts
    use it) and later answers never change it."""
    item.is_gold = True
    item.gold_answer = answer
    item.gold_points = points
    fields = ["is_gold", "gold_answer", "gold_points"]
    if item.status != LabelItem.Status.RETIRED or item.consensus != answer:
        item.status = LabelItem.Status.RETIRED
        item.consensus = answer
        item.consensus_points = points if answer == consensus.BEAR else []
        item.retired_at = item.retired_at or now or timezone.now()
        fields += ["status", "consensus", "consensus_points", "retired_at"]
    item.save(update_fields=fields)


def item_mark_gold(*, user, item_id: int, answer: str, points=()) -> LabelItem:
    """A reviewer records the known answer of an item; it is then mixed into volunteers' queues
    as a gold item (its own consensus, if any, is kept)."""
    if not roles.can_review(user):
        raise NotAllowed("Only reviewers mark gold items.", code="not_reviewer")
    with transaction.atomic():
        item = _lock_item(item_id)
        allowed = WEB_ANSWERS if item.kind == QueueKind.WEB else (consensus.BEAR, consensus.NO_BEAR)
        if answer not in allowed:
            raise QueueError(
                "A gold answer is one of: " + ", ".join(allowed) + ".", code="bad_answer"
            )
        clean = _clean_points(item, points) if answer == consensus.BEAR else []
        _make_gold(item, answer=answer, points=clean)
    return item


def item_unmark_gold(*, user, item_id: int) -> LabelItem:
    if not roles.can_review(user):
        raise NotAllowed("Only reviewers change gold items.", code="not_reviewer")
    with transaction.atomic():
        item = _lock_item(item_id)
        if not item.is_gold:
            # Not a no-op: it would drop everyone's leases on an item people are answering.
            raise ItemConflict("This item is not a gold item.", code="not_gold")
        item.is_gold = False
        item.gold_answer = ""
        item.gold_points = []
        item.save(update_fields=["is_gold", "gold_answer", "gold_points"])
        Lease.objects.filter(item=item).delete()
    return item


# --- Web image curation -------------------------------------------------------------------------


def web_image_curate(
    *,
    user,
    web_image_id: int,
    curation: str,
    boxes=(),
    unusable_reason: str = "",
    now: datetime | None = None,
) -> LabelItem:
    """A reviewer settles a Web image: ``usable`` with a box around each bear, or ``unusable``
    with the reason. Checked exactly as a vote on the curation page is (boxes clipped to the
    image, zero-area boxes refused, a reason for 'unusable').

    It is recorded as the reviewer's final vote (``is_review``) on the image's item, so the
    consensus stays a function of the votes (the latest review decides) and the image's
    ``curation`` follows it. A counting vote of theirs already on the item is marked undone
    (kept) and replaced. Refused on a gold item: its known answer is set with ``item_mark_gold``.
    """
    now = now or timezone.now()
    if not roles.can_review(user):
        raise NotAllowed("Only reviewers curate Web images.", code="not_reviewer")
    if curation not in WEB_ANSWERS:
        raise QueueError("A Web image is 'usable' or 'unusable'.", code="bad_answer")
    with transaction.atomic():
        if not WebImage.objects.filter(pk=web_image_id).exists():
            raise ItemNotFound("There is no such Web image.", code="not_found")
        # Every ingested Web image has its item; one imported some other way gets it now.
        row, _ = LabelItem.objects.get_or_create(
            kind=QueueKind.WEB,
            web_image_id=web_image_id,
            defaults={"votes_needed": settings.BEARSITE_DEFAULT_VOTES.get(QueueKind.WEB, 1)},
        )
        item = _lock_item(row.pk)
        if item.is_gold:
            raise ItemConflict(
                "This image is a gold item: change its known answer instead.", code="gold"
            )
        _, clean_boxes, reason = _check_answer(item, curation, (), boxes, unusable_reason)
        replaced = Vote.objects.filter(item=item, user=user, undone_at__isnull=True).update(
            undone_at=now
        )
        loading.insert(
            Vote,
            item=item.pk,
            user=user.pk,
            answer=curation,
            points=[],
            boxes=clean_boxes,
            unusable_reason=reason,
            is_review=True,
            is_gold_answer=False,
            created_at=now,
        )
        _recompute(item, now=now)
        _bump_profile(user, votes_total=0 if replaced else 1, last_vote_at=now)
    return item


# --- Queue settings -----------------------------------------------------------------------------


def survey_queue_set(
    *,
    survey: Survey,
    kind: str,
    enabled: bool | None = None,
    votes_needed: int | None = None,
    agree_votes: int | None = None,
    no_bear_below: float | None | object = UNSET,
    point_agree_lengths: float | None = None,
    weight_by_accuracy: bool | None = None,
    now: datetime | None = None,
) -> SurveyQueue:
    """Turn a survey's queue on or off and set its rules. A new number of votes applies to the
    open items of that queue at once; an open item that already has enough votes is decided."""
    if kind not in selectors.VOLUNTEER_KINDS or kind == QueueKind.WEB:
        raise QueueError("Survey queues are candidates, uncertain and audit.", code="bad_queue")
    now = now or timezone.now()
    with transaction.atomic():
        defaults = selectors.queue_rules(survey=None, kind=kind)
        setting, _ = SurveyQueue.objects.select_for_update().get_or_create(
            survey=survey,
            kind=kind,
            defaults={
                "votes_needed": defaults.votes_needed,
                "agree_votes": defaults.agree,
                "no_bear_below": defaults.no_bear_below,
                "point_agree_lengths": settings.BEARSITE_POINT_AGREE_LENGTHS,
            },
        )
        for name, value in (
            ("enabled", enabled),
            ("votes_needed", votes_needed),
            ("agree_votes", agree_votes),
            ("point_agree_lengths", point_agree_lengths),
            ("weight_by_accuracy", weight_by_accuracy),
        ):
            if value is not None:
                setattr(setting, name, value)
        if no_bear_below is not UNSET:
            setting.no_bear_below = no_bear_below
        setting.full_clean()
        setting.save()
        selectors.forget_queue_setting(survey_id=survey.pk, kind=kind)
        apply_queue_setting(setting=setting, now=now)
    return setting


def apply_queue_setting(*, setting: SurveyQueue, now: datetime | None = None) -> int:
    """Bring the open items of a survey's queue to its number of votes; decide those that have
    enough. Returns how many items changed."""
    now = now or timezone.now()
    items = LabelItem.objects.filter(
        survey_id=setting.survey_id, kind=setting.kind, status=LabelItem.Status.OPEN, is_gold=False
    )
    changed = items.exclude(votes_needed=setting.votes_needed).update(
        votes_needed=setting.votes_needed
    )
    for pk in (
        items.filter(votes_count__gte=setting.votes_needed).values_list("pk", flat=True).iterator()
    ):
        _recompute(_lock_item(pk), now=now)
    return changed


def labelling_settings_set(
    *, show_model_score: bool | None = None, open_signup: bool | None = None
) -> LabellingSettings:
    current = selectors.labelling_settings()
    row, _ = LabellingSettings.objects.get_or_create(
        pk=1,
        defaults={"show_model_score": current.show_model_score, "open_signup": current.open_signup},
    )
    if show_model_score is not None:
        row.show_model_score = show_model_score
    if open_signup is not None:
        row.open_signup = open_signup
    row.save()
    selectors.forget_labelling_settings()
    return row


# --- People -------------------------------------------------------------------------------------

# No 0/O or 1/I/L: codes are read aloud and typed from paper.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def invite_create(
    *,
    created_by=None,
    team: Team | None = None,
    max_uses: int = 50,
    expires_at: datetime | None = None,
    note: str = "",
    code: str = "",
) -> InviteCode:
    if max_uses < 1:
        raise QueueError("An invite code allows at least one sign-up.", code="bad_max_uses")
    for _ in range(5):
        try:
            with transaction.atomic():
                return InviteCode.objects.create(
                    code=(code or _new_code()).strip().upper(),
                    team=team,
                    max_uses=max_uses,
                    expires_at=expires_at,
                    note=note,
                    created_by=created_by,
                )
        except IntegrityError:
            if code:
                raise QueueError(
                    "That invite code exists already.", code="duplicate_code"
                ) from None
    raise QueueError("Could not make a unique invite code; try again.", code="code_clash")


def volunteer_signup(
    *,
    username: str,
    password: str,
    email: str = "",
    invite_code: str = "",
    now: datetime | None = None,
):
    """Create a volunteer account. An invite code is needed unless open sign-up is on; using
    one counts against its limit (checked and counted in one UPDATE, so two people cannot both
    take its last use) and puts the person in its team."""
    now = now or timezone.now()
    User = get_user_model()
    code_text = (invite_code or "").strip().upper()
    with transaction.atomic():
        invite = None
        if code_text:
            usable = InviteCode.objects.filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now),
                code__iexact=code_text,
                active=True,
                uses__lt=F("max_uses"),
            )
            if not usable.update(uses=F("uses") + 1):
                raise QueueError(
                    "This invite code is not valid: unknown, used up or expired.", code="bad_invite"
                )
            invite = InviteCode.objects.get(code__iexact=code_text)
        elif not selectors.labelling_settings().open_signup:
            raise QueueError("An invite code is needed to join.", code="invite_needed")
        if User.objects.filter(username__iexact=username).exists():
            raise QueueError("That user name is taken.", code="username_taken")
        user = User(username=username, email=email)
        validate_password(password, user)
        user.set_password(password)
        user.save()
        user.groups.add(roles.role_group(roles.VOLUNTEER))
        if invite is not None and invite.team_id:
            invite.team.members.add(user)
        VolunteerProfile.objects.create(user=user, joined_with=invite)
    roles.forget(user)
    return user


def tutorial_mark_seen(*, user, now: datetime | None = None) -> None:
    now = now or timezone.now()
    if not VolunteerProfile.objects.filter(user=user).update(tutorial_seen_at=now):
        VolunteerProfile.objects.get_or_create(user=user, defaults={"tutorial_seen_at": now})
