"""Training tiles from consensus labels: what goes in, on which side of the split, and the
pixels that come out."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from labeling.models import LabelItem, QueueKind
from tests.training.runfixtures import bear_item, labelled_survey, usable_web_item, web_photo
from training import dataset as ds

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def training_settings(settings, tmp_path):
    settings.BEARSITE_TRAINING_DIR = tmp_path / "training"
    settings.BEARSITE_VAL_PERCENT = 50
    settings.BEARSITE_CROPS_PER_BEAR = 3
    settings.BEARSITE_BACKGROUND_PER_FRAME = 4
    return settings


def test_the_split_is_by_frame_content_fixed_and_at_the_set_rate(settings):
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    settings.BEARSITE_VAL_PERCENT = 20
    first = [ds.frame_split(s) for s in shas]
    assert first == [ds.frame_split(s) for s in shas]  # the same every run
    share = first.count(ds.VAL) / len(first)
    assert 0.18 < share < 0.22
    # New frames join at the rate; the frames already there keep their side.
    more = [hashlib.sha256(f"new{i}".encode()).hexdigest() for i in range(2000)]
    assert 0.17 < [ds.frame_split(s) for s in more].count(ds.VAL) / 2000 < 0.23
    assert [ds.frame_split(s) for s in shas] == first


def test_labels_become_tiles_on_their_frames_side_of_the_split():
    survey, frames = labelled_survey(frames=8)
    plan = ds.plan_from_labels(tile=32)
    by_source = {}
    for s in plan.specs:
        by_source.setdefault(s.source, []).append(s)
        frame = next(f for f in frames if f.pk == s.image_id)
        assert s.split == ds.frame_split(frame.sha256)  # never by tile
        assert s.group == f"frame:{frame.pk}"
    # Every bear: 3 jittered crops on the training side, exactly one on the validation side.
    for frame in frames:
        crops = [s for s in by_source[ds.BEAR] if s.image_id == frame.pk]
        assert len(crops) == (3 if ds.frame_split(frame.sha256) == ds.TRAIN else 1)
    # Each rejected candidate is a hard negative with the candidate's own tile.
    assert len(by_source[ds.HARD_NEGATIVE]) == 8
    assert all(s.box == (150, 150, 182, 182) and s.label == 0 for s in by_source[ds.HARD_NEGATIVE])
    assert plan.labels_used == 16


def test_bear_crops_are_jittered_but_keep_the_bear_inside():
    survey, frames = labelled_survey(frames=8)
    plan = ds.plan_from_labels(tile=32)
    length = survey.animal_length_px
    offsets = set()
    for s in (s for s in plan.specs if s.source == ds.BEAR):
        item = LabelItem.objects.get(pk=s.item_id)
        x, y = item.consensus_points[0]
        x0, y0, x1, y1 = s.box
        assert x1 - x0 == 32 and y1 - y0 == 32
        assert x0 + length / 2 - 1 <= x <= x1 - length / 2 + 1
        assert y0 + length / 2 - 1 <= y <= y1 - length / 2 + 1
        offsets.add((round(x - x0), round(y - y0)))
    assert len(offsets) > 10  # not always centred


def test_background_tiles_stay_away_from_bears_and_uncleared_candidates():
    survey, frames = labelled_survey(frames=8)
    frame = frames[0]
    # A candidate nobody has answered yet may hold a bear: no background tile may overlap it.
    LabelItem.objects.create(
        kind=QueueKind.CANDIDATES, survey=survey, image=frame, x0=0, y0=0, x1=128, y1=128, score=0.8
    )
    plan = ds.plan_from_labels(tile=32)
    backgrounds = [s for s in plan.specs if s.source == ds.BACKGROUND]
    assert len(backgrounds) == 8 * 4
    bears = {
        s.image_id: LabelItem.objects.get(pk=s.item_id).consensus_points[0]
        for s in plan.specs
        if s.source == ds.BEAR
    }
    for s in backgrounds:
        x, y = bears[s.image_id]
        x0, y0, x1, y1 = s.box
        assert not (x0 - 4 <= x < x1 + 4 and y0 - 4 <= y < y1 + 4)
        if s.image_id == frame.pk:
            assert x0 >= 128 or y0 >= 128
    # The same frames give the same background tiles in the next run (a fixed validation set).
    assert [s.box for s in ds.plan_from_labels(tile=32).specs if s.source == ds.BACKGROUND] == [
        s.box for s in backgrounds
    ]


def test_unsure_and_open_items_are_not_labels():
    survey, frames = labelled_survey(frames=8)
    item = bear_item(frames[0], 200, 200)
    item.consensus = LabelItem.Answer.UNSURE
    item.save()
    LabelItem.objects.filter(pk=bear_item(frames[1], 210, 210).pk).update(
        status=LabelItem.Status.OPEN
    )
    plan = ds.plan_from_labels(tile=32)
    assert plan.labels_used == 16
    assert ds.count_consensus_labels() == 16


def test_edited_web_image_is_rotated_scaled_and_placed_on_survey_ice():
    photo = np.full((200, 300, 3), 100, np.uint8)
    photo[50:90, 60:220] = (250, 30, 30)  # a 160 x 40 "bear" on grey ground
    ice = np.full((224, 224, 3), 235, np.uint8)
    red = lambda t: (t[..., 0] > 200) & (t[..., 1] < 90)  # noqa: E731
    flat = ds.edit_web_photo(
        photo, (60, 50, 220, 90), length_px=80, angle_deg=0, out=224, background=ice
    )
    assert flat.shape == (224, 224, 3)
    ys, xs = np.nonzero(red(flat))
    assert 74 <= xs.max() - xs.min() + 1 <= 84  # its length is the survey's bear length
    assert 16 <= ys.max() - ys.min() + 1 <= 24
    assert abs(xs.mean() - 112) < 3 and abs(ys.mean() - 112) < 3  # centred, one bear only
    assert (flat[:40] == 235).all() and (flat[:, :40] == 235).all()  # the rest is survey ice
    turned = ds.edit_web_photo(
        photo, (60, 50, 220, 90), length_px=80, angle_deg=90, out=224, background=ice
    )
    ys, xs = np.nonzero(red(turned))
    assert 74 <= ys.max() - ys.min() + 1 <= 84 and xs.max() - xs.min() + 1 <= 24
    # Without a survey tile the photo's own surroundings fill the tile.
    alone = ds.edit_web_photo(photo, (60, 50, 220, 90), length_px=80, angle_deg=45, out=224)
    assert alone.shape == (224, 224, 3) and (alone[:8, :8] > 0).all()


def test_usable_web_images_train_with_their_source_as_group(media_root):
    survey, frames = labelled_survey(frames=8)
    web = web_photo(author="J. Okpik")
    usable_web_item(web, [(40, 30, 120, 70)])
    plan = ds.plan_from_labels(tile=32)
    webs = [s for s in plan.specs if s.source == ds.WEB]
    assert len(webs) == 2  # BEARSITE_WEB_COPIES
    assert {s.split for s in webs} == {ds.TRAIN}
    assert {s.group for s in webs} == {"web:author:j. okpik"}
    assert len({s.angle for s in webs}) == 2
    # Scaled to the survey's bear length (4 px here).
    assert webs[0].length_px == pytest.approx(survey.animal_length_px)
    # Each is placed on a training-side background tile of a survey frame.
    grounds = {s.key: s for s in plan.specs if s.source == ds.BACKGROUND and s.split == ds.TRAIN}
    assert all(
        (w.bg_image_id, w.bg_box) in {(g.image_id, g.box) for g in grounds.values()} for w in webs
    )
    paths = ds.materialise(webs)
    tile = np.asarray(Image.open(paths[webs[0].key]))
    assert tile.shape == (32, 32, 3)
    assert ((tile[..., 0] > 180) & (tile[..., 1] < 90)).sum() > 0  # the red "bear" is in it


def test_tiles_are_cut_once_and_reused(monkeypatch):
    labelled_survey(frames=8)
    plan = ds.plan_from_labels(tile=32)
    decoded = []
    real = ds._decode_stored
    monkeypatch.setattr(ds, "_decode_stored", lambda name: decoded.append(name) or real(name))
    paths = ds.materialise(plan.specs)
    assert len(decoded) == 8  # each frame decoded once for all of its tiles
    for s in plan.specs[:5]:
        frame = np.asarray(Image.open(paths[s.key]))
        assert frame.shape[:2] == (s.box[3] - s.box[1], s.box[2] - s.box[0])
    decoded.clear()
    assert ds.materialise(plan.specs) == paths
    assert decoded == []  # a resumed run re-uses the cache


def test_snapshot_round_trip_reproduces_the_specs():
    labelled_survey(frames=8)
    plan = ds.plan_from_labels(tile=32)
    doc = ds.snapshot_document(plan, ds.summarise(plan))
    assert ds.specs_from_document(doc) == plan.specs
    summary = doc["summary"]
    assert summary["train_tiles"] + summary["val_tiles"] == len(plan.specs)
    assert summary["val_positives"] == sum(1 for s in plan.specs if s.split == ds.VAL and s.label)


def test_no_bear_in_a_validation_frame_asks_for_more_labels(settings):
    survey, frames = labelled_survey(frames=8)
    LabelItem.objects.filter(
        image__in=[f for f in frames if ds.frame_split(f.sha256) == ds.VAL],
        consensus=LabelItem.Answer.BEAR,
    ).delete()
    plan = ds.plan_from_labels(tile=32)
    with pytest.raises(ds.DatasetError, match="label more bears"):
        ds.check_plan(plan)
