"""The one-query item loader gives the same values as the ORM (JSON, dates, booleans, files,
relations), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.models import LabelItem
from labeling.queues import loading
from tests.labeling.queue_helpers import fast_passwords, make_items, make_web_items  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_survey_tile_loads_like_the_orm_loads_it(survey):
    (item,) = make_items(survey, n=1, pictures=True, gold_points=[[1.5, 2.5]], is_gold=True)
    LabelItem.objects.filter(pk=item.pk).update(retired_at=timezone.now(), status="retired")
    expected = LabelItem.objects.select_related("survey", "image").get(pk=item.pk)
    with CaptureQueriesContext(connection) as queries:
        loaded = loading.load_item(item.pk)
        for name in loading.ITEM_FIELDS:
            if name not in ("survey", "image", "web_image"):
                assert getattr(loaded, name) == getattr(expected, name), name
        assert loaded.survey.animal_length_px == pytest.approx(expected.survey.animal_length_px)
        assert (loaded.survey.archived, loaded.survey.team_id) == (False, None)
        assert loaded.image.original_name == expected.image.original_name
        assert loaded.web_image is None
        assert loaded.tile_crop.url == expected.tile_crop.url
        assert timezone.is_aware(loaded.retired_at) and loaded.is_gold is True
        assert loaded.context_box == expected.context_box and isinstance(loaded.context_box, list)
    assert len(queries) == 1  # and no lazy loads after it


def test_a_web_image_loads_with_its_photo_and_no_survey():
    (item,) = make_web_items(1)
    loaded = loading.load_item(item.pk, lock=True)
    assert loaded.survey is None and loaded.image is None
    assert (loaded.web_image.width, loaded.web_image.height) == (640, 480)
    assert loading.load_item(item.pk + 1000) is None
