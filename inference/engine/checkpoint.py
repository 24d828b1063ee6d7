"""Model construction and the checkpoint file format (Django-free).

The checkpoint is the source of truth for how to run a model: architecture, class names and
preprocessing travel with the weights, so a predictor never guesses them from settings.

Invariants:
- ``class_names`` always contains ``POSITIVE_CLASS``; its index is the column of P(bear).
- ``preprocessing.input_scale`` (1, 2 or 4) is part of the network: the model averages each
  ``s`` x ``s`` block of the tile before its first convolution (``build_model``), in training
  and in inference alike, so a tile keeps covering the same ground while the network computes
  on ``1/s**2`` of the pixels. Checkpoints without it are full resolution.
- A checkpoint file is written atomically (temporary file in the same folder, fsync, rename), so
  a reader never sees half a file, even if the writer is killed mid-way.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "bearsite-checkpoint/1"
ARCHITECTURES = ("resnet50",)
POSITIVE_CLASS = "bear"
DEFAULT_CLASS_NAMES = ("background", "bear")
INPUT_SCALES = (1, 2, 4)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's file names for the ImageNet weights, newest first; the weights API caches them
# under $TORCH_HOME/hub/checkpoints.
IMAGENET_WEIGHT_FILES = ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason in words a user can act on."""


@dataclass
class Preprocessing:
    tile_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # The network sees the tile averaged down by this factor (see the module docstring).
    input_scale: int = 1

    @property
    def network_input_px(self) -> int:
        return self.tile_size // self.input_scale

    def as_dict(self) -> dict[str, Any]:
        return {
            "tile_size": self.tile_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "input_scale": self.input_scale,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        scale = int(d.get("input_scale", 1))
        if scale not in INPUT_SCALES:
            raise CheckpointError(
                f"input_scale must be one of {', '.join(map(str, INPUT_SCALES))}, not {scale}"
            )
        return cls(
            tile_size=int(d.get("tile_size", 224)),
            mean=tuple(float(x) for x in d.get("mean", IMAGENET_MEAN)),
            std=tuple(float(x) for x in d.get("std", IMAGENET_STD)),
            input_scale=scale,
        )


@dataclass
class Checkpoint:
    state_dict: dict[str, Any]
    arch: str = "resnet50"
    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    # "imagenet", "random" or "finetuned": how the weights came to be, shown to users.
    init: str = "random"
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_snapshot: dict[str, Any] = field(default_factory=dict)
    # Training state: for resume (optimizer, scheduler, epoch, sampler) and, in a final model,
    # the run identity and history by which a rerun recognises it is already done.
    training_state: dict[str, Any] = field(default_factory=dict)

    @property
    def positive_index(self) -> int:
        return self.class_names.index(POSITIVE_CLASS)

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "arch": self.arch,
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing.as_dict(),
            "init": self.init,
            "config": self.config,
            "metrics": self.metrics,
            "data_snapshot": self.data_snapshot,
            "training_state": self.training_state,
            "state_dict": self.state_dict,
        }


def build_model(
    arch: str = "resnet50",
    num_classes: int = 2,
    *,
    input_scale: int = 1,
    zero_init_residual: bool = False,
):
    """A randomly initialised network with a ``num_classes`` head.

    With ``input_scale`` s > 1 the network first averages each s x s block of its input (a box
    filter, so no aliasing) and then runs as usual: same weights and state_dict keys as the
    plain ResNet-50, about 1/s**2 of its compute. It is an ordinary module method, so FX
    tracing (BatchNorm folding) and torch.compile see it.
    """
    from torchvision.models.resnet import Bottleneck, ResNet

    if arch not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if input_scale not in INPUT_SCALES:
        raise CheckpointError(
            f"input_scale must be one of {', '.join(map(str, INPUT_SCALES))}, not {input_scale}"
        )
    if input_scale == 1:
        cls = ResNet
        kwargs = {}
    else:
        cls = _scaled_input_resnet()
        kwargs = {"input_scale": input_scale}
    # torchvision.models.resnet50(weights=None) is exactly ResNet(Bottleneck, [3, 4, 6, 3]).
    return cls(
        Bottleneck,
        [3, 4, 6, 3],
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        **kwargs,
    )


@functools.cache
def _scaled_input_resnet():
    """The class (built on first use, so importing this module does not import torchvision)."""
    import torch.nn.functional as F
    from torchvision.models.resnet import ResNet

    class ScaledInputResNet(ResNet):
        """ResNet whose forward averages ``input_scale`` x ``input_scale`` blocks first."""

        def __init__(self, *args: Any, input_scale: int, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.input_scale = input_scale

        def forward(self, x):
            return super().forward(F.avg_pool2d(x, self.input_scale))

    return ScaledInputResNet


def find_imagenet_weights(explicit: str | os.PathLike | None = None) -> Path | None:
    """The ImageNet ResNet-50 file: an explicit path, else torchvision's cache. Never downloads."""
    if explicit:
        p = Path(explicit)
        return p if p.is_file() else None
    import torch.hub

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in IMAGENET_WEIGHT_FILES:
        if (cache / name).is_file():
            return cache / name
    return None


def imagenet_backbone(weights_path: str | os.PathLike, num_classes: int = 2):
    """ResNet-50 with ImageNet weights from a local file and a new ``num_classes`` head."""
    import torch

    model = build_model("resnet50", num_classes=num_classes)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
        raise CheckpointError(
            f"{weights_path} is not a torchvision ResNet-50 ImageNet file "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> str:
    """Write atomically; returns the file's SHA-256."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt.to_payload(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; raises CheckpointError with the reason."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint file at {path}") from None
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path} holds no model weights (no 'state_dict')")
    if payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a bearsite checkpoint (format {payload.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    class_names = tuple(payload.get("class_names") or ())
    if POSITIVE_CLASS not in class_names or len(class_names) != 2:
        raise CheckpointError(
            f"{path} has classes {list(class_names)}; a bearsite model needs exactly two "
            f"classes, one of them {POSITIVE_CLASS!r}"
        )
    ckpt = Checkpoint(
        state_dict=payload["state_dict"],
        arch=payload.get("arch", "resnet50"),
        class_names=class_names,
        preprocessing=Preprocessing.from_dict(payload.get("preprocessing") or {}),
        init=payload.get("init", "random"),
        config=payload.get("config") or {},
        metrics=payload.get("metrics") or {},
        data_snapshot=payload.get("data_snapshot") or {},
        training_state=payload.get("training_state") or {},
    )
    model_from_checkpoint(ckpt)  # the weights must fit the architecture
    return ckpt


def model_from_checkpoint(ckpt: Checkpoint, *, input_scale: int | None = None):
    """The network of ``ckpt``; ``input_scale`` overrides its preprocessing's (training a new
    model at another input scale from this one's weights)."""
    scale = ckpt.preprocessing.input_scale if input_scale is None else input_scale
    model = build_model(ckpt.arch, num_classes=len(ckpt.class_names), input_scale=scale)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights do not fit a two-class {ckpt.arch}: {exc}") from exc
    return model
