"""Training tiles as plain samples, and the dataset that turns them into uint8 tensors.

The Django side builds :class:`TileSample` lists from consensus labels (confirmed bears, rejected
candidates, audit negatives, edited Web images); this module knows nothing of rows or storage.

Invariants:
- A dataset item is ``(tile, label)``: ``tile`` uint8 ``3 x tile_size x tile_size`` (normalising
  and casting happen on the device, so workers move 1 byte per pixel), ``label`` 1 for a bear.
- With ``augment=False`` an item is the tile as loaded (resized only if its size differs), so
  evaluation sees exactly what inference would see.
- ``samples`` order is part of the run's identity: sampler indices point into it, and
  :func:`samples_fingerprint` hashes it in order.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .augment import DEFAULT_AUGMENT, AugmentParams, augment


@dataclass(frozen=True)
class TileSample:
    """One labelled tile. ``load`` returns it as an ``H x W x 3`` uint8 array (RGB)."""

    load: Callable[[], np.ndarray]
    label: int  # 1 = bear, 0 = background
    group: str  # the survey frame (or Web source) it came from: the unit of the validation split
    key: str  # stable id, e.g. "tile:123" or "web:45"; part of the data fingerprint


def load_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file (JPEG, PNG, TIFF...) to ``H x W x 3`` uint8 RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))  # a writable copy: torch refuses read-only views


def file_sample(path: str | Path, *, label: int, group: str, key: str | None = None) -> TileSample:
    """A sample read from an image file on each access (picklable, for DataLoader workers)."""
    return TileSample(
        load=functools.partial(load_image_file, str(path)),
        label=int(label),
        group=group,
        key=key or str(path),
    )


def array_sample(array: np.ndarray, *, label: int, group: str, key: str) -> TileSample:
    """A sample held in memory (tests, small sets)."""
    return TileSample(
        load=functools.partial(np.asarray, array), label=int(label), group=group, key=key
    )


def samples_fingerprint(samples: Sequence[TileSample]) -> str:
    """SHA-256 over (key, label, group) in order: two runs on the same data share it."""
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.key}\x1f{int(s.label)}\x1f{s.group}\x1e".encode())
    return h.hexdigest()


def to_tile_tensor(array: np.ndarray, tile_size: int) -> torch.Tensor:
    """``H x W x {1,3,4}`` (or ``H x W``) uint8 array -> uint8 ``3 x tile_size x tile_size``."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise ValueError(f"tiles must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an H x W x 3 image, got shape {a.shape}")
    if not a.flags.writeable:
        a = a.copy()  # torch.from_numpy warns on read-only arrays
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 4:
        t = t[:3]  # alpha carries no evidence of a bear
    if t.shape[1:] != (tile_size, tile_size):
        # A tile of another size (an edited Web crop) is rescaled, not cropped: the lead's
        # dataset builder already cropped it around the bear at the survey's ground resolution.
        x = F.interpolate(
            t[None].float(),
            size=(tile_size, tile_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0]
        t = x.round_().clamp_(0, 255).to(torch.uint8)
    return t.contiguous()


class TileDataset(Dataset):
    """Items ``(uint8 tile, label)``; an index may be an int or a sampler ``(index, aug_seed)``.

    ``augment=True`` applies :func:`~training.loop.augment.augment` seeded by the slot's
    ``aug_seed`` (a plain int index is never augmented). ``cache=True`` keeps decoded tiles in
    memory (per process; 150 kB per 224 px tile), for sets small enough to hold.
    """

    def __init__(
        self,
        samples: Sequence[TileSample],
        *,
        tile_size: int = 224,
        augment: bool = True,
        augment_params: AugmentParams = DEFAULT_AUGMENT,
        cache: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.tile_size = tile_size
        self.augment = augment
        self.augment_params = augment_params
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    @property
    def labels(self) -> list[int]:
        return [int(s.label) for s in self.samples]

    @property
    def groups(self) -> list[str]:
        return [s.group for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def tile(self, index: int) -> torch.Tensor:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sample = self.samples[index]
        try:
            t = to_tile_tensor(sample.load(), self.tile_size)
        except Exception as exc:
            raise RuntimeError(f"cannot load training tile {sample.key}: {exc}") from exc
        if self._cache is not None:
            self._cache[index] = t
        return t

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(item, tuple | list):
            index, aug_seed = int(item[0]), int(item[1])
        else:
            index, aug_seed = int(item), None
        t = self.tile(index)
        if self.augment and aug_seed is not None:
            t = augment(t, torch.Generator().manual_seed(aug_seed), self.augment_params)
        return t, int(self.samples[index].label)
