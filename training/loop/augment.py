"""Label-preserving augmentation of one tile, driven by an explicit generator.

Aerial tiles have no "up": the eight rotations/reflections of a tile (90 degree turns and a flip)
are equally likely views of the same scene. On top of that a mild rescale (the survey's altitude
varies by some percent) and a brightness change (sun, haze, exposure).

Invariants:
- Input and output are uint8 ``C x H x W`` of the same shape; the input is not modified.
- The result depends only on the tile and the generator's state, so a sampler slot's
  ``aug_seed`` reproduces the same picture (resume replays epochs exactly).
- No border of constant colour is introduced: zooming out pads by reflection, so the network
  cannot learn "a black frame means augmented" (both classes are augmented anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    rotate_flip: bool = True
    scale_jitter: float = 0.1  # zoom factor drawn from [1 - j, 1 + j]
    brightness_jitter: float = 0.15  # brightness factor drawn from [1 - j, 1 + j]

    def __post_init__(self) -> None:
        if not 0 <= self.scale_jitter < 0.5:
            raise ValueError(f"scale_jitter must be in [0, 0.5), got {self.scale_jitter}")
        if not 0 <= self.brightness_jitter < 1:
            raise ValueError(f"brightness_jitter must be in [0, 1), got {self.brightness_jitter}")


DEFAULT_AUGMENT = AugmentParams()


def _uniform(g: torch.Generator, jitter: float) -> float:
    return 1.0 + (torch.rand((), generator=g).item() * 2.0 - 1.0) * jitter


def _rescale(tile: torch.Tensor, s: float) -> torch.Tensor:
    """Zoom by ``s`` around the centre, keeping the shape (float ``C x H x W`` in, out)."""
    _, h, w = tile.shape
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) == (h, w):
        return tile
    x = F.interpolate(tile[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    if s > 1:  # zoom in: crop the centre
        top, left = (nh - h) // 2, (nw - w) // 2
        return x[:, top : top + h, left : left + w]
    # Zoom out: reflect-pad back to size (reflection needs pad < size, true for mild scales).
    pt, pl = (h - nh) // 2, (w - nw) // 2
    return F.pad(x[None], (pl, w - nw - pl, pt, h - nh - pt), mode="reflect")[0]


def augment(
    tile: torch.Tensor, generator: torch.Generator, params: AugmentParams = DEFAULT_AUGMENT
) -> torch.Tensor:
    """A randomly rotated/flipped, rescaled and brightened copy of a uint8 ``C x H x W`` tile."""
    if tile.dtype != torch.uint8 or tile.ndim != 3:
        raise ValueError(f"expected a uint8 C x H x W tile, got {tile.dtype} {tuple(tile.shape)}")
    g = generator
    out = tile
    if params.rotate_flip:
        k = int(torch.randint(0, 4, (), generator=g))
        flip = bool(torch.randint(0, 2, (), generator=g))
        if tile.shape[1] != tile.shape[2]:
            k = 2 * (k % 2)  # only half turns keep a non-square shape
        out = torch.rot90(out, k, dims=(1, 2))
        if flip:
            out = torch.flip(out, dims=(2,))
    # Draw every number even when its jitter is zero, so changing one range does not shift
    # the others' draws.
    s = _uniform(g, params.scale_jitter)
    b = _uniform(g, params.brightness_jitter)
    if params.scale_jitter == 0 and params.brightness_jitter == 0:
        return out.contiguous() if out is not tile else tile.clone()
    x = out.float()
    if params.scale_jitter:
        x = _rescale(x, s)
    if params.brightness_jitter:
        x = x * b
    return x.round_().clamp_(0, 255).to(torch.uint8)
