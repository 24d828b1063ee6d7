"""The demo model's data (simulated from ground truth, held-out frames never trained on) and its
report card against the ground truth."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command

from inference.engine.tiling import plan_tiles
from inference.models import FrameScore
from labeling.demo.synth import load_manifest
from labeling.models import Survey
from tests.training.runfixtures import registered
from training import dataset as ds
from training.demo import evaluate_against_ground_truth, match_frame
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, tmp_path):
    settings.BEARSITE_TRAINING_DIR = tmp_path / "training"
    settings.BEARSITE_VAL_PERCENT = 30
    out = tmp_path / "demo"
    call_command(
        "make_demo_survey", frames=8, width=640, height=480, out=str(out), stdout=io.StringIO()
    )
    return Survey.objects.get(name="Demo survey"), out


def test_demo_labels_come_from_training_frames_and_held_out_frames_stay_out(demo):
    survey, out = demo
    manifest = load_manifest(out)
    plan = ds.plan_from_ground_truth(
        survey=survey, ground_truth_dir=out, tile=224, background_per_frame=3
    )
    frames = {f.pk: f for f in survey.images.all()}
    held_out = {pk for pk, f in frames.items() if ds.frame_split(f.sha256) == ds.VAL}
    assert held_out and held_out != set(frames)
    for s in plan.specs:
        if s.image_id is not None:
            # A tile of a held-out frame is a validation tile, never a training one.
            assert (s.split == ds.VAL) == (s.image_id in held_out)
    bears = [s for s in plan.specs if s.source == ds.BEAR]
    assert len([s for s in bears if s.split == ds.VAL]) == sum(
        len(manifest.bears_in(frames[pk].original_name)) for pk in held_out
    )
    # Background tiles keep clear of every bear and its shadow.
    for s in plan.specs:
        if s.source != ds.BACKGROUND:
            continue
        for bear in manifest.bears_in(frames[s.image_id].original_name):
            m = bear.shadow_margin_px
            x0, y0, x1, y1 = s.box
            assert (
                x1 <= bear.box[0] - m
                or x0 >= bear.box[2] + m
                or y1 <= bear.box[1] - m
                or y0 >= bear.box[3] + m
            )
    # The demo's Web bear photos, with their generator boxes as the curated boxes.
    webs = [s for s in plan.specs if s.source == ds.WEB]
    assert len(webs) == sum(1 for w in manifest.web if w.is_bear) * 2
    assert all(s.split == ds.TRAIN and s.bg_image_id not in held_out for s in webs)
    assert "simulated" in " ".join(plan.notes)


def test_match_frame_counts_found_bears_and_false_alarms():
    boxes = [(0, 0, 224, 224), (300, 300, 524, 524), (600, 0, 824, 224)]
    bears = [(100, 100), (110, 120), (400, 410), (1000, 1000)]
    assert match_frame(boxes, bears) == (3, 1)
    assert match_frame([], bears) == (0, 0)


def test_report_card_scores_held_out_frames_against_the_ground_truth(demo, tmp_path):
    survey, out = demo
    manifest = load_manifest(out)
    version = registered(tmp_path, "demo-like", threshold=0.5)
    version.preprocessing = {"tile_size": 224}
    tiles = None
    expected = {ds.VAL: [0, 0, 0], ds.TRAIN: [0, 0, 0]}  # bears, found, false positives
    for n, frame in enumerate(survey.images.order_by("pk")):
        tiles = plan_tiles(
            frame.height, frame.width, tile=224, min_overlap=survey.min_tile_overlap_px
        )
        grid = np.zeros(tiles.shape, np.float32)
        split = ds.frame_split(frame.sha256)
        bears = manifest.bears_in(frame.original_name)
        expected[split][0] += len(bears)
        if bears:  # the model flags the tile best centred on the first bear, nothing else
            first = bears[0]
            r = min(range(tiles.rows), key=lambda r: abs(tiles.ys[r] + 112 - first.y))
            c = min(range(tiles.cols), key=lambda c: abs(tiles.xs[c] + 112 - first.x))
            grid[r, c] = 0.9
            x0, y0, x1, y1 = tiles.box(r, c)
            expected[split][1] += sum(1 for b in bears if x0 <= b.x < x1 and y0 <= b.y < y1)
        if n % 2 == 0 and not manifest.bears_in(frame.original_name):  # a false alarm
            grid[0, 0] = 0.8
            expected[split][2] += 1
        FrameScore.objects.create(
            image=frame,
            model_version=version,
            tile=224,
            rows=tiles.rows,
            cols=tiles.cols,
            ys=list(tiles.ys),
            xs=list(tiles.xs),
            grid=grid.astype(np.float16).tobytes(),
            max_score=float(grid.max()),
        )
    report = evaluate_against_ground_truth(survey=survey, version=version, ground_truth_dir=out)
    for key, split in (("heldout", ds.VAL), ("training_frames", ds.TRAIN)):
        bears, found, fps = expected[split]
        assert (report[key]["bears"], report[key]["found"], report[key]["false_positives"]) == (
            bears,
            found,
            fps,
        )
        if bears:
            assert report[key]["recall"] == pytest.approx(found / bears)
    assert report["heldout"]["frames"] + report["training_frames"]["frames"] == 8
    assert report["unscored_frames"] == []


def test_demo_model_if_missing_leaves_an_active_model_alone(demo, tmp_path):
    registered(tmp_path, "already-active", active=True)
    stdout = io.StringIO()
    call_command("demo_model", if_missing=True, stdout=stdout)
    assert "A model is active already" in stdout.getvalue()
    assert not TrainingRun.objects.exists()
