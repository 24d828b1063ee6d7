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
    # One validation instance per held-out bear (it may span several overlapping tiles).
    assert len({s.key.split("~")[0] for s in bears if s.split == ds.VAL}) == sum(
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


def test_a_simulated_review_turns_training_frame_false_alarms_into_hard_negatives(demo, tmp_path):
    """Round two of the demo: the candidates the first model put in the queue, answered by the
    ground truth. On training frames a candidate without a bear is a hard negative; one over a
    bear is not (the bear crops cover it); held-out frames' candidates are never used."""
    from labeling.models import LabelItem, QueueKind

    survey, out = demo
    manifest = load_manifest(out)
    version = registered(tmp_path, "round-one", threshold=0.5)
    made = {"empty_train": [], "bear_train": [], "held_out": []}
    for frame in survey.images.order_by("pk"):
        split = ds.frame_split(frame.sha256)
        bears = manifest.bears_in(frame.original_name)
        # A candidate in the corner farthest from every bear, and one centred on a bear.
        corner = (frame.width - 224, frame.height - 224, frame.width, frame.height)
        if not any(corner[0] - 60 <= b.x and corner[1] - 60 <= b.y for b in bears):
            item = LabelItem.objects.create(
                kind=QueueKind.CANDIDATES,
                survey=survey,
                image=frame,
                x0=corner[0],
                y0=corner[1],
                x1=corner[2],
                y1=corner[3],
                model_version_id=version.pk,
            )
            made["empty_train" if split == ds.TRAIN else "held_out"].append(item.pk)
        if bears:
            b = bears[0]
            x0 = int(min(max(b.x - 112, 0), frame.width - 224))
            y0 = int(min(max(b.y - 112, 0), frame.height - 224))
            item = LabelItem.objects.create(
                kind=QueueKind.CANDIDATES,
                survey=survey,
                image=frame,
                x0=x0,
                y0=y0,
                x1=x0 + 224,
                y1=y0 + 224,
                model_version_id=version.pk,
            )
            made["bear_train" if split == ds.TRAIN else "held_out"].append(item.pk)
    # Another model's candidates are not this review's.
    other = registered(tmp_path, "someone-else", threshold=0.5)
    LabelItem.objects.create(
        kind=QueueKind.CANDIDATES,
        survey=survey,
        image=survey.images.first(),
        x0=0,
        y0=0,
        x1=224,
        y1=224,
        model_version_id=other.pk,
    )
    assert made["empty_train"] and made["bear_train"] and made["held_out"]

    plan = ds.plan_from_ground_truth(
        survey=survey,
        ground_truth_dir=out,
        tile=224,
        background_per_frame=3,
        rejected_from_versions=[version.pk],
    )
    hard = [s for s in plan.specs if s.source == ds.HARD_NEGATIVE]
    assert sorted(s.item_id for s in hard) == sorted(made["empty_train"])
    assert all(s.label == 0 and s.split == ds.TRAIN for s in hard)
    assert f"{len(made['empty_train'])} without a bear" in " ".join(plan.notes)
    # A later round keeps the earlier rounds' rejections; a tile raised twice counts once.
    again = registered(tmp_path, "round-two", threshold=0.5)
    for pk in made["empty_train"][:2]:
        first_item = LabelItem.objects.get(pk=pk)
        first_item.pk = None
        first_item.model_version_id = again.pk
        first_item.save()
    both = ds.plan_from_ground_truth(
        survey=survey,
        ground_truth_dir=out,
        tile=224,
        background_per_frame=3,
        rejected_from_versions=[version.pk, again.pk],
    )
    assert len([s for s in both.specs if s.source == ds.HARD_NEGATIVE]) == len(hard)
    # Without the review, the plan is what it was.
    plain = ds.plan_from_ground_truth(
        survey=survey, ground_truth_dir=out, tile=224, background_per_frame=3
    )
    assert not [s for s in plain.specs if s.source == ds.HARD_NEGATIVE]
    assert len(plain.specs) == len(plan.specs) - len(hard)


def test_held_out_frames_are_validated_on_their_own_inference_tiles(demo):
    """The threshold and the gate's false positives per frame are measured on the tiles
    inference will score: every held-out grid tile clear of bears is a negative, and each bear
    is the grid tile that holds it."""
    survey, out = demo
    manifest = load_manifest(out)
    plan = ds.plan_from_ground_truth(
        survey=survey, ground_truth_dir=out, tile=224, background_per_frame=3
    )
    held_out = [f for f in survey.images.all() if ds.frame_split(f.sha256) == ds.VAL]
    for frame in held_out:
        grid = plan_tiles(
            frame.height, frame.width, tile=224, min_overlap=survey.min_tile_overlap_px
        )
        boxes = {grid.box(r, c) for r in range(grid.rows) for c in range(grid.cols)}
        mine = [s for s in plan.specs if s.image_id == frame.pk]
        assert all(tuple(s.box) in boxes for s in mine), "validation tiles lie on the grid"
        bears = manifest.bears_in(frame.original_name)
        positives = [s for s in mine if s.label == 1]
        # One instance per bear: every grid tile holding its whole box (found if any is flagged).
        instances = sorted({s.key.split("~")[0] for s in positives})
        assert len(instances) == len(bears)
        for n, bear in enumerate(bears):
            tiles = [s.box for s in positives if s.key.startswith(f"gt-bear-grid:{frame.pk}:{n}~")]
            holding = [
                b
                for b in boxes
                if b[0] <= bear.box[0]
                and bear.box[2] <= b[2]
                and b[1] <= bear.box[1]
                and bear.box[3] <= b[3]
            ]
            assert sorted(map(tuple, tiles)) == sorted(holding)

        def clear(box, bears=bears):
            return all(
                box[2] <= b.box[0] - b.shadow_margin_px
                or box[0] >= b.box[2] + b.shadow_margin_px
                or box[3] <= b.box[1] - b.shadow_margin_px
                or box[1] >= b.box[3] + b.shadow_margin_px
                for b in bears
            )

        negatives = {tuple(s.box) for s in mine if s.label == 0}
        assert negatives == {b for b in boxes if clear(b)}


@pytest.mark.django_db(transaction=True)  # scoring is queued on commit, as in the command
def test_the_demo_command_trains_reviews_scores_and_reports_held_out_figures(demo):
    """The whole of `manage.py demo_model` at toy size (one epoch a round, the network at a
    quarter of the tile): a first model is trained and promoted, the survey scored, its false
    candidates on training frames reviewed into a second run that fine-tunes it, and the
    active model's held-out figures against the ground truth are printed and stored."""
    import json

    from inference.models import ModelVersion
    from inference.selectors import active_model

    survey, out = demo
    stdout = io.StringIO()
    call_command(
        "demo_model",
        epochs=1,
        review_epochs=1,
        batch_size=8,
        min_positives=2,
        input_scale=4,
        background_per_frame=4,
        crops_per_bear=1,
        stdout=stdout,
    )
    text = stdout.getvalue()
    first, review = TrainingRun.objects.order_by("pk")
    assert first.status == review.status == "succeeded"
    assert "random initialisation" in first.note  # no ImageNet weights in tests
    assert review.base_version == first.produced_version
    assert review.dataset["rejected_from_versions"] == [first.produced_version_id]
    assert "Simulated review round" in text
    assert f"training run #{review.pk} fine-tunes" in text
    # Whichever the gate kept is the active model, scored on every frame and evaluated.
    active = active_model()
    assert active in (first.produced_version, review.produced_version)
    assert active.preprocessing["input_scale"] == 4
    assert FrameScore.objects.filter(model_version=active).count() == survey.images.count()
    report = json.loads(text.strip().splitlines()[-1])
    assert report["model_version"] == active.pk
    held = report["heldout"]
    assert held["bears"] == sum(
        len(load_manifest(out).bears_in(f.original_name))
        for f in survey.images.all()
        if ds.frame_split(f.sha256) == ds.VAL
    )
    assert f"recall {held['found']}/{held['bears']}" in text
    assert ModelVersion.objects.get(pk=active.pk).metrics["heldout_eval"]["heldout"] == held
