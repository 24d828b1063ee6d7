"""Where and how the network runs: device, numeric precision, input preparation, data loaders.

Shared by training and evaluation so that both see tiles the same way.

Invariants:
- Tiles travel as uint8 and are converted, normalised and made channels-last on the device.
- ``precision="auto"`` means bf16 autocast where the hardware has fast bf16 (CUDA with bf16, or a
  CPU with AMX / AVX-512 BF16), fp32 elsewhere. On an AVX2-only CPU, bf16 *training* is
  emulated and measured 10-20x slower than fp32, so "where supported" means "where it is fast".
- Nothing here touches CUDA at import time (Celery forks workers; see LESSONS.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    return d


@functools.cache
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class InputPrep:
    """uint8 ``B x 3 x H x W`` -> normalised float32 on ``device`` (channels-last if asked)."""

    def __init__(
        self,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        channels_last: bool = True,
    ) -> None:
        self.device = device
        self.channels_last = channels_last
        # 1/255 folded into mean and std: one multiply-add per pixel.
        self.scale = (1.0 / (255.0 * torch.tensor(std))).view(1, 3, 1, 1).to(device)
        self.shift = (-torch.tensor(mean) / torch.tensor(std)).view(1, 3, 1, 1).to(device)

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        x = tiles.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.addcmul(self.shift, x.float(), self.scale)


def default_num_workers(device: torch.device) -> int:
    """Decoding is cheap next to a CPU training step (1-2 ms per tile against tens of ms), so on
    a CPU a worker would only take a core from the model; a GPU needs several to stay fed."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if device.type == "cpu":
        return 0
    return max(1, min(8, (cores or 2) - 1))


def make_loader(
    dataset: Dataset,
    *,
    device: torch.device,
    num_workers: int,
    batch_sampler: Sampler | None = None,
    batch_size: int | None = None,
) -> DataLoader:
    kwargs: dict = {
        "num_workers": num_workers,
        "pin_memory": device.type == "cuda",
    }
    if num_workers > 0:
        kwargs |= {"persistent_workers": batch_sampler is not None, "prefetch_factor": 4}
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, **kwargs)
