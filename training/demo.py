"""The demo model's honest report card: detections on the demo survey against its ground truth.

The demo survey (``make_demo_survey``) comes with ``ground_truth.json``. After the demo model
has scored the survey, each frame's score grid is turned into detections exactly as the
inference job does for the review queues (``merge_detections`` at the model's review threshold)
and compared with the true bears:

- a bear is **found** when the tile a volunteer is shown for a detection (the tile-sized box
  centred on the detection, kept inside the frame, as the candidate queue renders it) contains
  the bear's centre;
- a detection whose shown tile contains no bear centre is a **false positive**;
- recall = found / bears, false positives per frame = false positives / frames.

The figures are given separately for the held-out frames (the fixed validation split, never
trained on: the ones that count) and for the training frames (seen in training: flattering).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from inference.models import FrameScore, ModelVersion
from labeling.models import Survey
from training.dataset import TRAIN, VAL, frame_split


@dataclass
class FrameOutcome:
    frame: str
    split: str
    bears: int
    found: int
    detections: int
    false_positives: int


@dataclass
class Figures:
    frames: int
    bears: int
    found: int
    detections: int
    false_positives: int

    @property
    def recall(self) -> float | None:
        return self.found / self.bears if self.bears else None

    @property
    def fp_per_frame(self) -> float | None:
        return self.false_positives / self.frames if self.frames else None

    def as_dict(self) -> dict:
        return {**asdict(self), "recall": self.recall, "fp_per_frame": self.fp_per_frame}


def shown_box(
    x: float, y: float, tile: int, width: int, height: int
) -> tuple[float, float, float, float]:
    """The candidate tile a volunteer sees for a detection centred on (x, y)."""
    x0 = min(max(x - tile / 2, 0), max(width - tile, 0))
    y0 = min(max(y - tile / 2, 0), max(height - tile, 0))
    return (x0, y0, x0 + tile, y0 + tile)


def match_frame(
    boxes: Sequence[tuple[float, float, float, float]], bears: Sequence[tuple[float, float]]
) -> tuple[int, int]:
    """(bears found, false-positive detections) for one frame."""

    def inside(b, p):
        return b[0] <= p[0] < b[2] and b[1] <= p[1] < b[3]

    found = sum(1 for p in bears if any(inside(b, p) for b in boxes))
    false_pos = sum(1 for b in boxes if not any(inside(b, p) for p in bears))
    return found, false_pos


def _total(outcomes: list[FrameOutcome]) -> Figures:
    return Figures(
        frames=len(outcomes),
        bears=sum(o.bears for o in outcomes),
        found=sum(o.found for o in outcomes),
        detections=sum(o.detections for o in outcomes),
        false_positives=sum(o.false_positives for o in outcomes),
    )


def evaluate_against_ground_truth(
    *,
    survey: Survey,
    version: ModelVersion,
    ground_truth_dir: str | Path,
    threshold: float | None = None,
) -> dict:
    """Figures for ``version`` on ``survey`` (every frame must have been scored by it)."""
    import numpy as np

    from inference.engine.predictor import FrameScores
    from inference.engine.selection import merge_detections
    from inference.engine.tiling import TileGrid
    from labeling.demo.synth import load_manifest

    manifest = load_manifest(Path(ground_truth_dir))
    threshold = version.review_threshold if threshold is None else threshold
    frames = {f.original_name: f for f in survey.images.all()}
    scores = {
        fs.image_id: fs
        for fs in FrameScore.objects.filter(model_version=version, image__survey=survey)
    }
    outcomes, unscored = [], []
    for name in manifest.frames:
        frame = frames.get(name)
        fs = scores.get(frame.pk) if frame else None
        if fs is None:
            unscored.append(name)
            continue
        tiles = TileGrid(
            height=frame.height, width=frame.width, tile=fs.tile, ys=tuple(fs.ys), xs=tuple(fs.xs)
        )
        dets = merge_detections(
            FrameScores(grid=fs.as_array().astype(np.float32), tiles=tiles), threshold
        )
        boxes = [shown_box(d.x, d.y, fs.tile, frame.width, frame.height) for d in dets]
        bears = [(b.x, b.y) for b in manifest.bears_in(name)]
        found, fps = match_frame(boxes, bears)
        outcomes.append(
            FrameOutcome(
                frame=name,
                split=frame_split(frame.sha256),
                bears=len(bears),
                found=found,
                detections=len(dets),
                false_positives=fps,
            )
        )
    held = [o for o in outcomes if o.split == VAL]
    seen = [o for o in outcomes if o.split == TRAIN]
    return {
        "model_version": version.pk,
        "threshold": threshold,
        "rule": "a bear is found when the candidate tile shown for a detection contains its centre",
        "heldout": _total(held).as_dict(),
        "training_frames": _total(seen).as_dict(),
        "all_frames": _total(outcomes).as_dict(),
        "unscored_frames": unscored,
        "frames": [asdict(o) for o in outcomes],
    }
