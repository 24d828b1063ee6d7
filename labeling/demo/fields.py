"""Smooth random fields, periodic grain and the light model shared by the demo renderers.

Everything here is vectorised numpy (plus Pillow's C resamplers); nothing loops over pixels.
Every function takes its ``numpy.random.Generator`` explicitly, so a caller that seeds it gets
the same field back on every run and on every machine that has the same numpy and Pillow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


def smooth_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cell: float,
    *,
    stretch: float = 1.0,
    angle_deg: float = 0.0,
) -> np.ndarray:
    """A smooth random field of ``shape`` (rows, cols), float32, mean ~0 and std ~1.

    ``cell`` is the correlation length in pixels. ``stretch`` > 1 elongates the features by that
    factor along ``angle_deg`` (image coordinates, clockwise from +x), as wind drifts snow.
    """
    h, w = shape
    cell = max(float(cell), 1.0)
    if stretch == 1.0:
        gh, gw = int(h / cell) + 4, int(w / cell) + 4
        grid = rng.standard_normal((gh, gw), dtype=np.float32)
        big = Image.fromarray(grid, "F").resize(
            (max(1, round(gw * cell)), max(1, round(gh * cell))), Image.Resampling.BICUBIC
        )
        off = int(cell * 1.5)
        out = np.asarray(big)[off : off + h, off : off + w]
    else:
        # Draw on a square canvas big enough to hold the frame at any angle, stretched along x,
        # rotate it, then cut the middle: the features end up elongated along angle_deg.
        side = int(math.hypot(h, w)) + 4
        cx, cy = cell * stretch, cell
        gh, gw = int(side / cy) + 4, int(side / cx) + 4
        grid = rng.standard_normal((gh, gw), dtype=np.float32)
        big = Image.fromarray(grid, "F").resize(
            (max(1, round(gw * cx)), max(1, round(gh * cy))), Image.Resampling.BICUBIC
        )
        # PIL rotates counter-clockwise on screen; our angles are clockwise (y points down).
        big = big.rotate(angle_deg, resample=Image.Resampling.BILINEAR)
        bh, bw = big.size[1], big.size[0]
        y0, x0 = (bh - h) // 2, (bw - w) // 2
        out = np.asarray(big)[y0 : y0 + h, x0 : x0 + w]
    # A bicubic-interpolated unit-normal grid has std ~0.6; rescale by that fixed figure (not by
    # the sample std, which would make small fields noisier than large ones).
    return (out * (1.0 / 0.6)).astype(np.float32)


def fractal_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cell: float,
    octaves: int = 3,
    gain: float = 0.5,
) -> np.ndarray:
    """Sum of ``octaves`` smooth fields, each half the size of the last; std ~1."""
    total = np.zeros(shape, np.float32)
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amp * smooth_noise(rng, shape, cell)
        norm += amp * amp
        amp *= gain
        cell = max(cell / 2.0, 1.0)
    return total / math.sqrt(norm)


def periodic_grain(
    rng: np.random.Generator, size: int, sigmas: tuple[float, ...], amps: tuple[float, ...]
) -> np.ndarray:
    """A (size, size) float32 noise tile that wraps seamlessly (it is filtered in Fourier space).

    The spectrum is that of white noise seen through a sum of Gaussian blurs, ``amps[i]`` times
    a blur of ``sigmas[i]`` pixels (sigma 0 = unblurred); the tile has std ``sqrt(sum amps^2)``.
    Tiling it leaves no seams, so a 24 MP frame can reuse one tile. One FFT pair per call.
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f2 = (fy * fy + fx * fx).astype(np.float32)
    transfer = np.zeros_like(f2)
    for sigma, amp in zip(sigmas, amps, strict=True):
        g = np.exp(-2.0 * (math.pi * sigma) ** 2 * f2)
        # a blurred unit white noise has std sqrt(mean g^2): normalise each term to std ``amp``
        transfer += g * (amp / math.sqrt(float(np.mean(g * g))))
    white = rng.standard_normal((size, size), dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=(size, size)).astype(np.float32)
    target = math.sqrt(sum(a * a for a in amps))
    return field * (target / (float(field.std()) or 1.0))


def tile_to(tile: np.ndarray, shape: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    """Repeat a periodic ``tile`` to cover ``shape``, starting at ``offset`` (dy, dx) in the tile."""
    th, tw = tile.shape[:2]
    h, w = shape
    oy, ox = offset[0] % th, offset[1] % tw
    reps = (-(-(h + oy) // th), -(-(w + ox) // tw)) + (1,) * (tile.ndim - 2)
    return np.tile(tile, reps)[oy : oy + h, ox : ox + w]


def shifted(padded: np.ndarray, pad: int, shape: tuple[int, int], dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]`` for an array ``a`` that was edge-padded by ``pad``."""
    h, w = shape
    return padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]


# Spectral make-up of daylight on the ice, white-balanced below so that flat sunlit snow is
# neutral. Shadows keep only the sky term, which is why they come out blue, as on real snow.
_SUN_RGB = np.array([1.00, 0.96, 0.86], np.float32)
_SKY_RGB = np.array([0.62, 0.71, 0.90], np.float32)


@dataclass(frozen=True)
class Light:
    """Sun and camera for one frame.

    ``sun_dir`` is the unit vector in image coordinates (x right, y down) pointing *towards* the
    sun; shadows fall along ``-sun_dir``. ``level`` is the 8-bit value a flat, sunlit surface of
    albedo 1 would get (the camera's exposure). ``sun_strength`` is 1 under a clear sky and small
    under overcast, where shadows fade.
    """

    sun_dir: tuple[float, float]
    elevation_deg: float
    sun_strength: float = 1.0
    level: float = 250.0

    @property
    def k_sun(self) -> np.ndarray:
        s = self.sun_strength * _SUN_RGB
        return (s / (s + _SKY_RGB)).astype(np.float32)

    @property
    def k_sky(self) -> np.ndarray:
        """Per-channel brightness left in full shadow, relative to flat sunlit ground (< 1, bluish)."""
        s = self.sun_strength * _SUN_RGB
        return (_SKY_RGB / (s + _SKY_RGB)).astype(np.float32)

    @property
    def sun3(self) -> np.ndarray:
        el = math.radians(self.elevation_deg)
        return np.array(
            [math.cos(el) * self.sun_dir[0], math.cos(el) * self.sun_dir[1], math.sin(el)],
            np.float32,
        )

    @property
    def shadow_per_height(self) -> float:
        """Length of the shadow cast by one unit of height (same unit)."""
        return 1.0 / math.tan(math.radians(self.elevation_deg))

    def lambert(self, nx: np.ndarray, ny: np.ndarray, nz: np.ndarray) -> np.ndarray:
        """Direct light on a surface with unit normal (nx, ny, nz), relative to flat ground (=1)."""
        s = self.sun3
        dot = nx * s[0] + ny * s[1] + nz * s[2]
        return np.clip(dot / s[2], 0.0, 2.5).astype(np.float32)

    def radiance(
        self, albedo: np.ndarray, lam: np.ndarray, shadow: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """8-bit-scaled RGB (float32, unclipped) of ``albedo`` (..., 3) under direct light ``lam``
        (...) with ``shadow`` (...) in [0, 1] blocking the sun."""
        direct = (np.asarray(lam, np.float32) * (1.0 - np.asarray(shadow, np.float32)))[..., None]
        return (albedo * (direct * self.k_sun + self.k_sky) * self.level).astype(np.float32)
