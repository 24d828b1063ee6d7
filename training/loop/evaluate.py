"""Evaluation on the held-out split: PR curve, average precision, and the operating point.

The split is made by frame (``TileSample.group``), never by tile: neighbouring tiles of one
frame share light, ice and often the same bear, so a tile-level split leaks.

Definitions (the ones the promotion gate relies on):
- A tile is flagged when ``score >= threshold``.
- ``recall = tp / (tp + fn)``; ``precision = tp / (tp + fp)``, 0.0 when nothing is flagged.
- ``fp_per_frame = fp / (number of distinct frames in the split)``: the false alarms a person
  has to dismiss per survey frame, the cost the model exists to cut.
- :func:`threshold_for_recall` returns the highest threshold whose recall reaches the target
  (so the fewest false positives at that recall); with positives present one always exists,
  at worst the lowest positive score.
- One animal, several tiles: positives whose keys share an instance (``"<instance>~<n>"``) are
  the overlapping tiles that all hold the same bear. They count as one positive scored by their
  best tile, because inference finds a bear when any tile holding it is flagged
  (:func:`collapse_instances`; ``metrics_at`` applies it when given the keys). Negatives are
  never merged.
- ``average_precision`` is the step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` over the distinct
  thresholds (scikit-learn's definition, no interpolation).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MAX_CURVE_POINTS = 200


@dataclass(frozen=True)
class PRCurve:
    """Points ordered by decreasing threshold: ``precision[i]``, ``recall[i]`` at
    ``thresholds[i]``."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


@dataclass
class EvalMetrics:
    recall: float
    precision: float
    fp_per_frame: float
    tp: int
    fp: int
    fn: int
    tn: int
    threshold: float | None
    ap: float
    target_recall: float
    frames: int
    positives: int
    negatives: int
    # Hash of the split's (key, label, group): the gate only compares figures from one split.
    split_id: str = ""
    # [[threshold, precision, recall], ...] with at most MAX_CURVE_POINTS points.
    pr_curve: list[list[float]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.tn) / total if total else 0.0

    @property
    def reaches_target(self) -> bool:
        return self.positives > 0 and self.recall >= self.target_recall - 1e-12

    def as_dict(self) -> dict[str, Any]:
        """Plain Python types only (checkpoints load with ``weights_only=True``; JSON for rows)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalMetrics:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})


def _arrays(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return s, y


def pr_curve(scores: Sequence[float], labels: Sequence[int]) -> PRCurve:
    """Precision and recall at every distinct score used as a threshold, highest first."""
    s, y = _arrays(scores, labels)
    n_pos = int(y.sum())
    if s.size == 0 or n_pos == 0:
        return PRCurve(np.zeros(0), np.zeros(0), np.zeros(0))
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # The last index of each run of equal scores: a threshold flags the whole run.
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return PRCurve(precision=tp / (tp + fp), recall=tp / n_pos, thresholds=s[last])


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    curve = pr_curve(scores, labels)
    if curve.recall.size == 0:
        return 0.0
    d_recall = np.diff(np.r_[0.0, curve.recall])
    return float(np.sum(d_recall * curve.precision))


def threshold_for_recall(
    scores: Sequence[float], labels: Sequence[int], target: float
) -> float | None:
    """The highest threshold with ``recall >= target``; None when there are no positives."""
    if not 0 < target <= 1:
        raise ValueError(f"target recall must be in (0, 1], got {target}")
    s, y = _arrays(scores, labels)
    pos = np.sort(s[y == 1])[::-1]
    if pos.size == 0:
        return None
    # 1e-9 keeps 0.95 * 20 = 19.000000000000004 from asking for 20 bears.
    k = max(1, math.ceil(target * pos.size - 1e-9))
    return float(pos[k - 1])


def split_id(keys: Sequence[str], labels: Sequence[int], groups: Sequence[str]) -> str:
    h = hashlib.sha256()
    for k, y, g in zip(keys, labels, groups, strict=True):
        h.update(f"{k}\x1f{int(y)}\x1f{g}\x1e".encode())
    return h.hexdigest()


def _downsample(curve: PRCurve, limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
    n = curve.thresholds.size
    idx = np.unique(np.linspace(0, n - 1, num=min(n, limit)).round().astype(int)) if n else []
    return [
        [float(curve.thresholds[i]), float(curve.precision[i]), float(curve.recall[i])] for i in idx
    ]


INSTANCE_SEP = "~"


def collapse_instances(
    scores: Sequence[float],
    labels: Sequence[int],
    groups: Sequence[str],
    keys: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Merge positives of one instance (keys ``"<instance>~<n>"``) into one, scored by their
    maximum; everything else passes through in order."""
    s, y = _arrays(scores, labels)
    best: dict[str, int] = {}
    out_s: list[float] = []
    out_y: list[int] = []
    out_g: list[str] = []
    out_k: list[str] = []
    for score, label, group, key in zip(s.tolist(), y.tolist(), groups, keys, strict=True):
        if label == 1 and INSTANCE_SEP in key:
            instance = key.split(INSTANCE_SEP, 1)[0]
            at = best.get(instance)
            if at is not None:
                out_s[at] = max(out_s[at], score)
                continue
            best[instance] = len(out_s)
            key = instance
        out_s.append(score)
        out_y.append(int(label))
        out_g.append(group)
        out_k.append(key)
    return np.asarray(out_s, dtype=np.float64), np.asarray(out_y, dtype=np.int64), out_g, out_k


def metrics_at(
    scores: Sequence[float],
    labels: Sequence[int],
    groups: Sequence[str],
    threshold: float | None = None,
    *,
    target_recall: float = 0.95,
    keys: Sequence[str] | None = None,
) -> EvalMetrics:
    """Figures at ``threshold``; with ``threshold=None`` at :func:`threshold_for_recall`.
    With ``keys``, one bear's several tiles count once (:func:`collapse_instances`)."""
    s, y = _arrays(scores, labels)
    if len(groups) != s.size:
        raise ValueError(f"{s.size} scores but {len(groups)} groups")
    if keys is not None:
        s, y, groups, keys = collapse_instances(s, y, groups, keys)
    if threshold is None:
        threshold = threshold_for_recall(s, y, target_recall)
    # No positives: nothing can be recalled; flag nothing so false positives are not invented.
    flagged = s >= threshold if threshold is not None else np.zeros(s.size, dtype=bool)
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    tn = int(np.sum(~flagged & (y == 0)))
    frames = len(set(groups))
    curve = pr_curve(s, y)
    return EvalMetrics(
        recall=tp / (tp + fn) if tp + fn else 0.0,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        fp_per_frame=fp / frames if frames else 0.0,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        threshold=None if threshold is None else float(threshold),
        ap=average_precision(s, y),
        target_recall=float(target_recall),
        frames=frames,
        positives=int(y.sum()),
        negatives=int(s.size - y.sum()),
        split_id=split_id(keys, y.tolist(), groups) if keys is not None else "",
        pr_curve=_downsample(curve),
    )


def predict_scores(
    model: Any,
    dataset: Any,
    *,
    positive_index: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 64,
    device: Any = None,
    precision: str = "auto",
    num_workers: int | None = None,
    channels_last: bool = True,
) -> np.ndarray:
    """P(bear) for every item of a (non-augmenting) ``TileDataset``, in dataset order.

    The model is put in eval mode for the pass and its previous mode restored.
    """
    import torch

    from inference.engine.checkpoint import IMAGENET_MEAN, IMAGENET_STD

    from . import runtime

    dev = runtime.resolve_device(device)
    prec = runtime.resolve_precision(precision, dev)
    prep = runtime.InputPrep(
        dev, mean or IMAGENET_MEAN, std or IMAGENET_STD, channels_last=channels_last
    )
    workers = runtime.default_num_workers(dev) if num_workers is None else num_workers
    loader = runtime.make_loader(dataset, device=dev, num_workers=workers, batch_size=batch_size)
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for tiles, _labels in loader:
                with runtime.autocast(dev, prec):
                    logits = model(prep(tiles))
                probs = torch.softmax(logits.float(), dim=1)[:, positive_index]
                out.append(probs.cpu().numpy().astype(np.float64))
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def evaluate_model(
    model: Any,
    samples: Sequence[Any],
    *,
    target_recall: float = 0.95,
    threshold: float | None = None,
    positive_index: int | None = None,
    tile_size: int | None = None,
    batch_size: int = 64,
    device: Any = None,
    precision: str = "auto",
    num_workers: int | None = None,
) -> EvalMetrics:
    """Score ``samples`` (``TileSample`` list) with a model or a ``Checkpoint`` and measure.

    With a ``Checkpoint`` the class order and preprocessing come from it (the checkpoint is the
    source of truth); a bare module must already sit on ``device`` and its figures default to
    bear = column 1, ImageNet normalisation, 224 px. ``threshold=None`` picks the threshold reaching ``target_recall``;
    pass a model's stored threshold to measure it at its deployed operating point.
    """
    from inference.engine.checkpoint import Checkpoint, Preprocessing, model_from_checkpoint

    from .data import TileDataset

    if isinstance(model, Checkpoint):
        import torch

        from . import runtime

        pre = model.preprocessing
        positive_index = model.positive_index if positive_index is None else positive_index
        model = model_from_checkpoint(model).to(runtime.resolve_device(device))
        model.to(memory_format=torch.channels_last)
    else:
        pre = Preprocessing()
    size = tile_size or pre.tile_size
    dataset = TileDataset(samples, tile_size=size, augment=False)
    scores = predict_scores(
        model,
        dataset,
        positive_index=1 if positive_index is None else positive_index,
        mean=pre.mean,
        std=pre.std,
        batch_size=batch_size,
        device=device,
        precision=precision,
        num_workers=num_workers,
    )
    return metrics_at(
        scores,
        dataset.labels,
        dataset.groups,
        threshold,
        target_recall=target_recall,
        keys=[s.key for s in dataset.samples],
    )
