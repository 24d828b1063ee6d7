"""Small builders for the labelling-queue tests: people with a role, survey frames and queue
items (optionally with real tile and context pictures in storage), Web images.

Import as ``from tests.labeling.queue_helpers import ...``."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from labeling.models import LabelItem, QueueKind, Survey, SurveyImage, Team, WebImage
from labeling.queues import roles

_counter = itertools.count()
PASSWORD = "labelling-pw-2026"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """PBKDF2 costs ~0.5 s per account on the CI machines; the tests make dozens of accounts.
    Test modules import this fixture to use it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Per-process caches (permissions, switches) must not leak from one test's accounts into
    # the next test's, which may reuse their ids.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def make_person(username: str, role: str = roles.VOLUNTEER, *, teams=(), staff: bool = False):
    user = get_user_model().objects.create_user(
        username, f"{username}@example.org", PASSWORD, is_staff=staff
    )
    if role:
        user.groups.add(roles.role_group(role))
    for team in teams:
        team.members.add(user)
    return user


def make_team(name: str, *members) -> Team:
    team = Team.objects.create(name=name)
    team.members.add(*members)
    return team


def make_frame(survey: Survey, *, width: int = 2000, height: int = 1500) -> SurveyImage:
    n = next(_counter)
    return SurveyImage.objects.create(
        survey=survey,
        file=f"surveys/{survey.pk}/frame{n}.jpg",
        original_name=f"frame{n}.jpg",
        sha256=f"{n:064d}",
        size_bytes=1000,
        format="JPEG",
        width=width,
        height=height,
    )


def _png(seed: int, size: int = 224, *, bear: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (215 + rng.integers(-12, 12, (size, size, 3))).astype(np.uint8)
    if bear:
        c = size // 2
        pixels[c - 12 : c + 12, c - 30 : c + 30] = (226, 214, 170)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(seed: int, width: int, height: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (200 + rng.integers(-20, 20, (height, width, 3))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def make_items(
    survey: Survey,
    kind: str = QueueKind.CANDIDATES,
    n: int = 1,
    *,
    scores=None,
    votes_needed: int = 2,
    frame: SurveyImage | None = None,
    pictures: bool = False,
    **fields,
) -> list[LabelItem]:
    """``n`` items on one frame, tiles 224 px apart (frame coordinates), scores falling unless
    given. ``pictures`` stores a real tile PNG and context JPEG for each (pages need them)."""
    frame = frame or make_frame(survey, width=224 * (n + 2), height=1000)
    items = []
    for i in range(n):
        score = scores[i] if scores is not None else round(0.99 - i * 0.01, 4)
        x0, y0 = 224 * (i + 1), 300
        item = LabelItem(
            kind=kind,
            survey=survey,
            image=frame,
            x0=x0,
            y0=y0,
            x1=x0 + 224,
            y1=y0 + 224,
            score=score,
            priority=score if kind == QueueKind.CANDIDATES else -abs(0.5 - score),
            votes_needed=votes_needed,
            context_box=[x0 - 224, y0 - 224, x0 + 448, y0 + 448],
            model_version_id=1,
            **fields,
        )
        if pictures:
            seed = next(_counter)
            item.tile_crop = default_storage.save(
                f"crops/t{seed}.png", ContentFile(_png(seed, bear=i % 2 == 0))
            )
            item.context_crop = default_storage.save(
                f"crops/c{seed}.jpg", ContentFile(_jpeg(seed, 336, 336))
            )
        items.append(item)
    return LabelItem.objects.bulk_create(items)


def make_web_items(n: int = 1, *, votes_needed: int = 1, pictures: bool = False) -> list[LabelItem]:
    items = []
    for _ in range(n):
        k = next(_counter)
        name = f"web/bear{k}.jpg"
        if pictures:
            name = default_storage.save(name, ContentFile(_jpeg(k, 640, 480)))
        web = WebImage.objects.create(
            file=name,
            original_name=f"bear{k}.jpg",
            sha256=f"w{k:063d}",
            phash=f"{k:016x}",
            format="JPEG",
            width=640,
            height=480,
        )
        items.append(
            LabelItem.objects.create(kind=QueueKind.WEB, web_image=web, votes_needed=votes_needed)
        )
    return items
