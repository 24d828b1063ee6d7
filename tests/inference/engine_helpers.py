"""Small inputs and the per-tile reference for the engine's tests (no Django, no network).

The reference is the plain tutorial pipeline: crop each tile with PIL, ``ToTensor`` +
``Normalize`` with the checkpoint's mean and std, run the network in fp32, NCHW, on the CPU.
The engine must agree with it within the stated tolerances.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from inference.engine.checkpoint import Checkpoint, build_model, model_from_checkpoint
from inference.engine.tiling import TileGrid

# Logit(bear) = SCALE * (mean pooled feature - CENTRE). A randomly initialised ResNet-50 maps
# every input to nearly the same feature direction, with a magnitude that grows with the
# tile's contrast; this head turns that magnitude into scores spread over (0, 1) instead of the
# saturated 0 or 1 a random head gives.
SCALE = 0.8
CENTRE = 19.0


def make_checkpoint(seed: int = 0) -> Checkpoint:
    """A two-class ResNet-50 with random weights (fixed by ``seed``) and a calibrated head."""
    import torch

    torch.manual_seed(seed)
    model = build_model("resnet50", num_classes=2)
    with torch.no_grad():
        n = model.fc.in_features
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        # class 1 is "bear" in DEFAULT_CLASS_NAMES
        model.fc.weight[1].fill_(SCALE / n)
        model.fc.bias[1] = -SCALE * CENTRE
    return Checkpoint(state_dict={k: v.clone() for k, v in model.state_dict().items()})


def make_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A frame with smooth low-contrast ice and a few textured patches of varying contrast, so
    tiles differ in score. ``H x W x 3`` uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(150, 220, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC)).astype(
        np.int16
    )
    for _ in range(4):
        h = int(rng.integers(40, min(140, height - 1)))
        w = int(rng.integers(40, min(140, width - 1)))
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        amp = int(rng.integers(10, 90))
        base[y : y + h, x : x + w] += rng.integers(-amp, amp + 1, (h, w, 3), dtype=np.int16)
    return np.clip(base, 0, 255).astype(np.uint8)


def write_jpeg(
    path: Path, image: np.ndarray, *, quality: int = 95, exif: bytes | None = None
) -> Path:
    kw = {"quality": quality}
    if exif is not None:
        kw["exif"] = exif
    Image.fromarray(image).save(path, format="JPEG", **kw)
    return path


def reference_scores(ckpt: Checkpoint, image: np.ndarray, tiles: TileGrid) -> np.ndarray:
    """P(bear) per tile, the tutorial way: PIL crop per tile, ToTensor + Normalize, fp32, NCHW."""
    import torch
    from torchvision import transforms

    model = model_from_checkpoint(ckpt).eval()
    pre = ckpt.preprocessing
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(pre.mean, pre.std)])
    frame = Image.fromarray(image)
    batch = torch.stack(
        [tf(frame.crop(tiles.box(r, c))) for r in range(tiles.rows) for c in range(tiles.cols)]
    )
    with torch.no_grad():
        probs = model(batch).softmax(dim=1)[:, ckpt.positive_index]
    return probs.numpy().reshape(tiles.shape)


def corrupt_jpeg_bytes(image: np.ndarray) -> bytes:
    """A JPEG cut short: a header PIL accepts, then missing data."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return data[: len(data) // 3]
