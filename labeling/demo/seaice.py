"""One synthetic aerial frame of sea ice, seen straight down, with or without polar bears.

The scene is built in three layers, each from its own child of the frame's seed so that one layer
never shifts the random draws of another:

1. the *ground* at 1/8 resolution: snow with drifts and wind-carved sastrugi, dirty (sediment)
   ice, wind-scoured blue ice, pressure ridges, leads of open water or grey new ice, lit by the
   sun from a height field (Lambert shading plus cast shadows), upsampled by Pillow and given a
   seamless full-resolution grain;
2. *objects* at full resolution in small patches: ice blocks and cream rubble with shadows,
   yellowish stained snow, footprint trails (also the trails that lead to the bears), seals;
3. the *bears*, whose number, places, poses and sprites are drawn whether or not they are then
   painted, so ``draw_bears=False`` yields the very same background pixels.

Invariants: a painted bear changes pixels only inside its sprite patch, which lies wholly inside
the frame; bears' boxes (grown by a quarter length) never overlap; objects keep clear of bears.
All sizes are in metres and converted with the ground sample distance, so a frame at 1.2 cm/px
shows the same ice at twice the pixel size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from labeling.demo.aerial_bear import (
    MAX_SHADOW_LENGTHS,
    POSE_WEIGHTS,
    POSES,
    BearSprite,
    composite_sprite,
    render_aerial_bear,
)
from labeling.demo.fields import (
    Light,
    fractal_noise,
    periodic_grain,
    shifted,
    smooth_noise,
    tile_to,
)

_LOW = 8  # the ground layer is computed at 1/_LOW of the frame's resolution


@dataclass(frozen=True)
class PlacedBear:
    """A bear as painted: centroid (x, y), heading, nose-to-tail length, tight box (x0, y0, x1, y1
    with exclusive ends) in frame pixels; ``age_class`` is adult, subadult or cub."""

    x: float
    y: float
    length_px: float
    angle_deg: float
    pose: str
    box: tuple[int, int, int, int]
    age_class: str
    patch: tuple[int, int, int, int]  # x0, y0, x1, y1 of every pixel the bear may change


@dataclass
class _Ground:
    """What the object and bear layers need to know about the ground (all at 1/_LOW scale)."""

    unsafe: np.ndarray  # bool: water, new ice or ridge: no bear stands here
    ridge: np.ndarray  # float 0..1: ridge profile (where rubble piles up)
    lead_edge: np.ndarray  # bool: within a couple of metres of open water or new ice
    water: np.ndarray  # bool
    wet: np.ndarray  # bool: water or new ice
    wet_cover: np.ndarray  # float 0..1: share of water or new ice
    dry_rgb: np.ndarray  # colour of the floe alone (float, 8-bit scale)
    wet_rgb: np.ndarray  # colour of the lead's water or new ice alone


def default_light(
    rng: np.random.Generator, azimuth_deg: float | None, elevation_deg: float | None
) -> Light:
    """Sun and exposure for a frame; azimuth is the image direction of the sun, clockwise from
    +x. Three frames in four are sunny, the rest hazy (faint shadows)."""
    az = rng.uniform(0.0, 360.0)
    el = rng.uniform(18.0, 40.0)
    strength = rng.uniform(0.75, 1.0) if rng.random() < 0.75 else rng.uniform(0.12, 0.5)
    level = rng.uniform(246.0, 262.0)
    if azimuth_deg is not None:
        az = azimuth_deg
    if elevation_deg is not None:
        el = elevation_deg
    a = math.radians(az)
    return Light(
        sun_dir=(math.cos(a), math.sin(a)),
        elevation_deg=float(el),
        sun_strength=float(strength),
        level=float(level),
    )


def _sines(rng: np.random.Generator, n: int, wavelength: float) -> list[tuple[float, float, float]]:
    """Random (amplitude, wavenumber, phase) triples for a smooth 1-D wiggle with std ~1."""
    out = []
    for i in range(n):
        lam = wavelength / (1.7**i) * rng.uniform(0.8, 1.25)
        out.append((0.7**i, 2 * math.pi / lam, rng.uniform(0, 2 * math.pi)))
    norm = math.sqrt(sum(a * a for a, _, _ in out) / 2.0)
    return [(a / norm, k, p) for a, k, p in out]


def _wiggle(terms: list[tuple[float, float, float]], s: np.ndarray) -> np.ndarray:
    out = np.zeros_like(s)
    for a, k, p in terms:
        out += a * np.sin(k * s + p)
    return out


def _band(
    rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, w_m: float, h_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (m) across, and position (m) along, a wandering line through the frame."""
    cx, cy = rng.uniform(0.15, 0.85) * w_m, rng.uniform(0.15, 0.85) * h_m
    th = rng.uniform(0, math.pi)
    dx, dy = math.cos(th), math.sin(th)
    along = (X - cx) * dx + (Y - cy) * dy
    across = -(X - cx) * dy + (Y - cy) * dx
    wander = _sines(rng, 3, rng.uniform(25.0, 80.0))
    return across - rng.uniform(1.0, 6.0) * _wiggle(wander, along), along


def _ground(
    rng: np.random.Generator, width: int, height: int, m2px: float, light: Light
) -> tuple[np.ndarray, _Ground]:
    """The ground layer at 1/_LOW resolution: RGB (float32, 8-bit scale) and its masks."""
    hl, wl = -(-height // _LOW) + 1, -(-width // _LOW) + 1
    px_m = _LOW / m2px  # metres per low-res pixel
    xs = ((np.arange(wl, dtype=np.float32) + 0.5) * _LOW - 0.5) / m2px
    ys = ((np.arange(hl, dtype=np.float32) + 0.5) * _LOW - 0.5) / m2px
    X, Y = xs[None, :], ys[:, None]
    shape = (hl, wl)
    w_m, h_m = width / m2px, height / m2px
    diag_m = math.hypot(w_m, h_m)

    def cells(metres: float) -> float:
        return max(metres / px_m, 1.0)

    # Snow: albedo ~0.93 varying over metres; drifts and sastrugi (elongated down-wind) as height.
    snow = 0.93 + 0.02 * fractal_noise(rng, shape, cells(6.0), 3)
    albedo = np.repeat(snow[..., None], 3, axis=2) * np.array([1.0, 1.0, 1.005], np.float32)
    wind = rng.uniform(0, 180)
    hgt = 0.06 * smooth_noise(rng, shape, cells(rng.uniform(4.0, 10.0)))
    hgt += rng.uniform(0.002, 0.012) * smooth_noise(
        rng, shape, cells(0.5), stretch=rng.uniform(3, 7), angle_deg=wind
    )
    hgt += 0.004 * smooth_noise(rng, shape, cells(0.25))

    # Sediment-laden ("dirty") ice: broad cream-brown tint on some floes.
    if rng.random() < 0.4:
        dirt = np.clip(
            (fractal_noise(rng, shape, cells(rng.uniform(4, 12)), 3) - rng.uniform(0.3, 1.2)) * 0.7,
            0,
            1,
        )
        dirt = (dirt * rng.uniform(0.4, 0.9))[..., None]
        tint = np.array([0.89, 0.85, 0.72], np.float32) * rng.uniform(0.97, 1.03)
        albedo = albedo * (1 - dirt) + tint * dirt
    # Wind-scoured blue ice: smooth, darker, bluish patches.
    if rng.random() < 0.25:
        blue = np.clip(
            (fractal_noise(rng, shape, cells(rng.uniform(3, 10)), 4) - rng.uniform(1.0, 1.6)) * 1.5,
            0,
            1,
        )
        blue *= rng.uniform(0.4, 0.8)
        albedo = (
            albedo * (1 - blue[..., None])
            + np.array([0.74, 0.81, 0.86], np.float32) * blue[..., None]
        )
        hgt -= 0.05 * blue

    # Pressure ridges: a wandering band of heaped rubble, rough at block scale.
    ridge = np.zeros(shape, np.float32)
    for _ in range(min(rng.poisson(0.35 + diag_m / 110.0), 4)):
        across, _along = _band(rng, X, Y, w_m, h_m)
        half = rng.uniform(1.2, 3.5) * (1 + 0.25 * smooth_noise(rng, shape, cells(8.0)))
        prof = np.clip(1.0 - (across / half) ** 2, 0.0, 1.0) ** 0.7
        ridge = np.maximum(ridge, prof)
        top = rng.uniform(0.7, 2.2)
        hgt += top * prof * (0.75 + 0.25 * smooth_noise(rng, shape, cells(2.0)))
        hgt += 0.25 * top * prof * smooth_noise(rng, shape, cells(1.0))
    ridge_t = np.clip(ridge * 2.0, 0, 1)[..., None]
    albedo = albedo * (1 - ridge_t) + np.array([0.86, 0.92, 0.96], np.float32) * ridge_t

    # Leads: open water (black-blue) or refrozen grey nilas with frost flowers; floe edges stand
    # ~0.3 m above the water and throw shadows onto it. Coverages are soft (0..1) so that the
    # upsampled edges are smooth, not stair-stepped.
    water = np.zeros(shape, np.float32)
    nilas = np.zeros(shape, np.float32)
    near = np.zeros(shape, bool)
    n_leads = min(rng.poisson(0.3 + diag_m / 160.0), 3)
    for _ in range(n_leads):
        across, along = _band(rng, X, Y, w_m, h_m)
        half = math.exp(rng.uniform(math.log(0.4), math.log(7.0))) * (
            1 + 0.3 * _wiggle(_sines(rng, 2, 30.0), along)
        )
        jag = (
            0.1 * smooth_noise(rng, shape, cells(0.9)) + 0.3 * smooth_noise(rng, shape, cells(2.5))
        ) * np.minimum(half, 2.5)
        cover = np.clip((half - np.abs(across) - jag) / (0.8 * px_m) + 0.5, 0.0, 1.0)
        near |= np.abs(across) < half + 2.5
        if rng.random() < 0.6:
            np.maximum(water, cover, out=water)
        else:
            np.maximum(nilas, cover, out=nilas)
    nilas = np.minimum(nilas, 1.0 - water)
    wet = water + nilas
    # Floe edges are rounded a little, so their shading does not step with the coarse grid.
    wp = np.pad(wet, 1, mode="edge")
    wet_soft = sum(shifted(wp, 1, shape, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    hgt = hgt * (1.0 - wet_soft) - 0.3 * wet_soft
    # Colours of the dry floe and of what fills the leads are kept apart: the leads' edges are
    # redrawn crisp at full resolution from the two (see _crisp_edges).
    wet_alb = np.broadcast_to(
        np.array([0.035, 0.055, 0.08], np.float32), albedo.shape
    )  # open water
    if nilas.any():
        # grey new ice, darker where thinner, with faint rafting streaks
        grey = 0.22 + 0.05 * fractal_noise(rng, shape, cells(4.0), 2)
        grey += 0.03 * smooth_noise(
            rng, shape, cells(0.8), stretch=6.0, angle_deg=float(rng.uniform(0, 180))
        )
        nil_alb = np.clip(grey, 0.08, 0.4)[..., None] * np.array([0.97, 1.0, 1.04], np.float32)
        share = (nilas / np.maximum(wet, 1e-6))[..., None]
        wet_alb = wet_alb * (1.0 - share) + nil_alb * share
    water_share = water / np.maximum(wet, 1e-6)

    # Lambert shading from the height field and cast shadows by marching towards the sun.
    gy, gx = np.gradient(hgt, px_m)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    lam = light.lambert(-gx / norm, -gy / norm, 1.0 / norm)
    tan_el = math.tan(math.radians(light.elevation_deg))
    steps = (1, 2, 3, 4, 6, 8, 11, 15, 20, 26, 33, 41)
    pad = steps[-1] + 1
    padded = np.pad(hgt, pad, mode="edge")
    shadow = np.zeros(shape, np.float32)
    sx, sy = light.sun_dir
    for t in steps:
        dx, dy = int(round(t * sx)), int(round(t * sy))
        if dx == 0 and dy == 0:
            continue
        rise = shifted(padded, pad, shape, dy, dx) - hgt - math.hypot(dx, dy) * px_m * tan_el
        np.maximum(shadow, np.clip(rise / 0.2, 0.0, 1.0), out=shadow)
    # soften the hard, integer-stepped shadow edges
    sp = np.pad(shadow, 1, mode="edge")
    shadow = sum(shifted(sp, 1, shape, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    dry_rgb = light.radiance(albedo, lam, shadow)
    # Water is flat, mirrors the sky a little and shows no sunlit texture.
    wet_lam = lam * (1.0 - water_share) + water_share
    wet_rgb = light.radiance(wet_alb, wet_lam, shadow) + water_share[..., None] * np.array(
        [6.0, 10.0, 16.0], np.float32
    )
    rgb = dry_rgb * (1.0 - wet[..., None]) + wet_rgb * wet[..., None]

    lead_edge = near & (wet < 0.5)
    ground = _Ground(
        unsafe=(wet > 0.01) | (ridge > 0.02),
        ridge=ridge,
        lead_edge=lead_edge,
        water=water > 0.5,
        wet=wet > 0.5,
        wet_cover=wet,
        dry_rgb=dry_rgb,
        wet_rgb=wet_rgb,
    )
    return rgb, ground


def _to_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def _crisp_edges(big: np.ndarray, ground: _Ground, noise: np.ndarray) -> None:
    """Redraw lead edges at full resolution (in place): bilinear upsampling of the coarse ground
    would leave them soft and stair-stepped. Only 128 px tiles that hold an edge are touched."""
    cover = ground.wet_cover
    edge = (cover > 0.01) & (cover < 0.99)
    if not edge.any():
        return
    H, W = big.shape[:2]
    t = 16  # low-res pixels per tile
    hl, wl = cover.shape
    th, tw = -(-hl // t), -(-wl // t)
    hit = np.zeros((th * t, tw * t), bool)
    hit[:hl, :wl] = edge
    tiles = np.argwhere(hit.reshape(th, t, tw, t).any(axis=(1, 3)))
    cov_im = Image.fromarray(cover.astype(np.float32), "F")
    dry_im = Image.fromarray(_to_u8(ground.dry_rgb), "RGB")
    wet_im = Image.fromarray(_to_u8(ground.wet_rgb), "RGB")
    n = noise.shape[0]
    for ty, tx in tiles:
        y0, x0 = int(ty) * t * _LOW, int(tx) * t * _LOW
        y1, x1 = min(y0 + t * _LOW, H), min(x0 + t * _LOW, W)
        if y0 >= y1 or x0 >= x1:
            continue
        size = (x1 - x0, y1 - y0)
        box = (x0 / _LOW, y0 / _LOW, x1 / _LOW, y1 / _LOW)
        c = np.asarray(cov_im.resize(size, Image.Resampling.BILINEAR, box=box))
        # a little full-resolution raggedness, then a steep ramp (~2 px) for a crisp edge
        c = c + 0.12 * tile_to(noise, c.shape, (y0 % n, x0 % n))
        c = np.clip((c - 0.5) * 4.0 + 0.5, 0.0, 1.0)[..., None]
        dry = np.asarray(dry_im.resize(size, Image.Resampling.BILINEAR, box=box), np.float32)
        wet = np.asarray(wet_im.resize(size, Image.Resampling.BILINEAR, box=box), np.float32)
        big[y0:y1, x0:x1] = _to_u8(dry * (1.0 - c) + wet * c)


def _upsample(
    rgb_low: np.ndarray,
    width: int,
    height: int,
    grain: np.ndarray,
    offset: tuple[int, int],
    ground: _Ground,
    noise: np.ndarray,
) -> np.ndarray:
    """Bilinear upsampling by Pillow, crisp lead edges, and a seamless grain tile (signed, added
    with saturation). The big steps stay in Pillow's C code: at 24 MP one numpy pass ~0.1 s."""
    low = Image.fromarray(_to_u8(rgb_low), "RGB")
    big = low.resize(
        (width, height), Image.Resampling.BILINEAR, box=(0, 0, width / _LOW, height / _LOW)
    )
    if ground.wet_cover.max() > 0.01:
        arr = np.array(big)
        _crisp_edges(arr, ground, noise)
        big = Image.fromarray(arr)
    tile = Image.fromarray(grain, "RGB")
    t = grain.shape[0]
    tex = Image.new("RGB", (width, height))
    for y in range(-(offset[0] % t), height, t):
        for x in range(-(offset[1] % t), width, t):
            tex.paste(tile, (x, y))
    return np.array(ImageChops.add(big, tex, 1.0, -128))


# ---------------------------------------------------------------------------------------------
# objects


def _clip_patch(shape: tuple[int, ...], x0: int, y0: int, w: int, h: int):
    """Slices of the image and of a (h, w) patch placed at (x0, y0), or None if it misses."""
    H, W = shape[:2]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return (slice(iy0, iy1), slice(ix0, ix1)), (
        slice(iy0 - y0, iy1 - y0),
        slice(ix0 - x0, ix1 - x0),
    )


def _speckle(noise: np.ndarray, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An (h, w) window of the frame's shared unit-normal noise tile (cheaper than fresh draws)."""
    n = noise.shape[0]
    return tile_to(noise, (h, w), (int(rng.integers(0, n)), int(rng.integers(0, n))))


def _block(
    img: np.ndarray,
    rng: np.random.Generator,
    light: Light,
    noise: np.ndarray,
    x: float,
    y: float,
    r_px: float,
    h_px: float,
    albedo: np.ndarray,
) -> None:
    """An ice block: an irregular polygon with one or two tilted faces and its swept shadow."""
    n = int(rng.integers(5, 9))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    rad = r_px * rng.uniform(0.6, 1.0, n)
    squash, rot = rng.uniform(0.45, 1.0), rng.uniform(0, math.pi)
    px, py = rad * np.cos(ang), rad * np.sin(ang) * squash
    vx = px * math.cos(rot) - py * math.sin(rot)
    vy = px * math.sin(rot) + py * math.cos(rot)
    reach = h_px * light.shadow_per_height
    sdx, sdy = -light.sun_dir[0] * reach, -light.sun_dir[1] * reach
    # two faces meeting along a random line through the block, each with its own tilt
    cols = []
    sun_az = math.atan2(light.sun_dir[1], light.sun_dir[0])
    for lo, hi in ((0, 35), (20, 60)):  # a top face, often tipped to the sun, and a steeper one
        tilt = math.radians(rng.uniform(lo, hi))
        az = sun_az + rng.uniform(-1.6, 1.6) if lo == 0 else rng.uniform(0, 2 * math.pi)
        lam = light.lambert(
            np.float32(math.sin(tilt) * math.cos(az)),
            np.float32(math.sin(tilt) * math.sin(az)),
            np.float32(math.cos(tilt)),
        )
        cols.append(light.radiance(albedo, lam))
    split = rng.uniform(0, math.pi)
    two = rng.random() < 0.7
    ax0 = math.floor(min(vx.min(), vx.min() + sdx)) - 2
    ay0 = math.floor(min(vy.min(), vy.min() + sdy)) - 2
    ax1 = math.ceil(max(vx.max(), vx.max() + sdx)) + 3
    ay1 = math.ceil(max(vy.max(), vy.max() + sdy)) + 3
    x0, y0 = int(math.floor(x)) + ax0, int(math.floor(y)) + ay0
    w, h = ax1 - ax0, ay1 - ay0
    where = _clip_patch(img.shape, x0, y0, w, h)
    if where is None:
        return
    # The shadow is drawn at 1x (a penumbra is soft anyway); the top face at 2x over its own
    # bounding box and averaged down, so block edges are antialiased.
    ox, oy = x - x0, y - y0
    top_pts = [(ox + a, oy + b) for a, b in zip(vx, vy, strict=True)]
    sh_pts = [(ox + a + sdx, oy + b + sdy) for a, b in zip(vx, vy, strict=True)]
    sh_im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(sh_im)
    d.polygon(sh_pts, fill=255)
    for i in range(n):  # sweep every edge from the block to its shadow
        j = (i + 1) % n
        d.polygon([top_pts[i], top_pts[j], sh_pts[j], sh_pts[i]], fill=255)
    tx0, ty0 = int(math.floor(ox + vx.min())) - 1, int(math.floor(oy + vy.min())) - 1
    tw, th = int(math.ceil(ox + vx.max())) + 2 - tx0, int(math.ceil(oy + vy.max())) + 2 - ty0
    top_im = Image.new("L", (2 * tw, 2 * th), 0)
    ImageDraw.Draw(top_im).polygon([(2 * (a - tx0), 2 * (b - ty0)) for a, b in top_pts], fill=255)
    top = np.zeros((h, w), np.float32)
    top[ty0 : ty0 + th, tx0 : tx0 + tw] = np.asarray(
        top_im.resize((tw, th), Image.Resampling.BOX), np.float32
    )
    isl, psl = where
    a = top[psl][..., None] * (1.0 / 255.0)
    sh = np.asarray(sh_im, np.float32)[psl][..., None] * ((1.0 - light.k_sky) / 255.0)
    gx_ = np.arange(w, dtype=np.float32)[psl[1]][None, :] - ox
    gy_ = np.arange(h, dtype=np.float32)[psl[0]][:, None] - oy
    side = (((gx_ * math.cos(split) + gy_ * math.sin(split)) > 0) & two)[..., None]
    col = (
        np.where(side, cols[1], cols[0])
        * (1.0 + 0.02 * _speckle(noise, rng, *a.shape[:2]))[..., None]
    )
    ground = img[isl].astype(np.float32)
    out = ground * (1.0 - sh) * (1.0 - a) + col * a
    img[isl] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _stain(
    img: np.ndarray,
    rng: np.random.Generator,
    noise: np.ndarray,
    x: float,
    y: float,
    r_px: float,
    tint: np.ndarray,
    strength: float,
) -> None:
    """A soft, irregular patch of stained snow (urine, sediment, seal blood, algae)."""
    n = int(rng.integers(2, 6))
    ext = int(r_px * 1.6) + 2
    x0, y0 = int(x) - ext, int(y) - ext
    where = _clip_patch(img.shape, x0, y0, 2 * ext, 2 * ext)
    if where is None:
        return
    g = np.arange(2 * ext, dtype=np.float32) - ext
    gx_, gy_ = g[None, :], g[:, None]
    field = np.zeros((2 * ext, 2 * ext), np.float32)
    stretch, rot = rng.uniform(1.0, 2.6), rng.uniform(0, math.pi)
    c, s = math.cos(rot), math.sin(rot)
    for _ in range(n):
        cx, cy = rng.normal(0, 0.35 * r_px, 2)
        sig = r_px * rng.uniform(0.3, 0.6)
        u = ((gx_ - cx) * c + (gy_ - cy) * s) / stretch
        v = -(gx_ - cx) * s + (gy_ - cy) * c
        field += np.exp(-(u * u + v * v) / (2 * sig * sig))
    # Ragged edges and a blotchy inside: the envelope is cut by a smooth noise field.
    ragged = smooth_noise(rng, (2 * ext, 2 * ext), max(r_px * 0.25, 2.0))
    grainy = 1.0 + 0.15 * _speckle(noise, rng, 2 * ext, 2 * ext)
    alpha = np.clip((field - 0.45 + 0.25 * ragged) * 2.0, 0, 1) * strength * grainy
    alpha = np.clip(alpha, 0, 1)[..., None]
    isl, psl = where
    ground = img[isl].astype(np.float32)
    out = ground * (1.0 - alpha[psl] * (1.0 - tint))
    img[isl] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _print(
    img: np.ndarray, light: Light, x: float, y: float, r_px: float, depth: float, heading: float
) -> None:
    """One paw print: an oval depression, long along the walk, whose sun-side wall shades it."""
    ext = int(1.3 * r_px) + 3
    x0, y0 = int(x) - ext, int(y) - ext
    where = _clip_patch(img.shape, x0, y0, 2 * ext + 1, 2 * ext + 1)
    if where is None:
        return
    g = np.arange(2 * ext + 1, dtype=np.float32) - ext
    gx_, gy_ = g[None, :] + (int(x) - x), g[:, None] + (int(y) - y)
    ch, sh = math.cos(heading), math.sin(heading)
    along = (gx_ * ch + gy_ * sh) / 1.25
    across = (-gx_ * sh + gy_ * ch) / 0.85
    d = np.sqrt(along * along + across * across)
    inside = np.clip((r_px - d) / 1.2 + 0.5, 0, 1)
    toward_sun = (gx_ * light.sun_dir[0] + gy_ * light.sun_dir[1]) / max(r_px, 1.0)
    shade = inside * np.clip(0.35 + 0.6 * toward_sun, 0.1, 1.0) * depth
    isl, psl = where
    ground = img[isl].astype(np.float32)
    out = ground * (1.0 - shade[psl][..., None] * (1.0 - light.k_sky))
    img[isl] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _trail(
    img: np.ndarray,
    rng: np.random.Generator,
    light: Light,
    m2px: float,
    start: tuple[float, float],
    heading: float,
    length_m: float,
    unsafe: np.ndarray,
    scale: float = 1.0,
) -> None:
    """A walking bear's trail: alternating left/right prints along a gently wandering path that
    starts at ``start`` and leads *away* along ``heading`` (radians); it ends at water or new
    ice (``unsafe`` at 1/_LOW scale), which holds no prints."""
    step = rng.uniform(0.55, 0.8) * scale * m2px
    gauge = 0.17 * scale * m2px
    r_px = 0.11 * scale * m2px
    depth = rng.uniform(0.35, 0.9)
    x, y = start
    turn = 0.0
    for i in range(int(length_m * m2px / step)):
        turn = 0.85 * turn + rng.normal(0, 0.06)
        heading += turn
        x += step * math.cos(heading)
        y += step * math.sin(heading)
        side = gauge * (1 if i % 2 else -1)
        ly, lx = int(y) // _LOW, int(x) // _LOW
        if 0 <= ly < unsafe.shape[0] and 0 <= lx < unsafe.shape[1] and unsafe[ly, lx]:
            break
        px, py = x - side * math.sin(heading), y + side * math.cos(heading)
        _print(
            img, light, px, py, r_px * rng.uniform(0.8, 1.1), depth * rng.uniform(0.7, 1.0), heading
        )


def _seal(
    img: np.ndarray,
    rng: np.random.Generator,
    light: Light,
    noise: np.ndarray,
    m2px: float,
    x: float,
    y: float,
) -> None:
    """A ringed seal hauled out by a lead: a dark grey spindle with a paler belly edge and shadow."""
    L = rng.uniform(1.1, 1.5) * m2px
    th = rng.uniform(0, 2 * math.pi)
    ext = int(0.75 * L) + 4
    x0, y0 = int(x) - ext, int(y) - ext
    where = _clip_patch(img.shape, x0, y0, 2 * ext, 2 * ext)
    if where is None:
        return
    g = np.arange(2 * ext, dtype=np.float32) - ext
    gx_, gy_ = g[None, :], g[:, None]

    def cover(ox: float, oy: float, soft: float) -> np.ndarray:
        u = ((gx_ + ox) * math.cos(th) + (gy_ + oy) * math.sin(th)) / L
        v = (-(gx_ + ox) * math.sin(th) + (gy_ + oy) * math.cos(th)) / L
        half = 0.13 * np.sqrt(np.clip(1 - (2 * u) ** 2, 0, 1))  # spindle: wide middle, thin ends
        return np.clip((half - np.abs(v)) * L / soft + 0.5, 0, 1)

    body = cover(0, 0, 1.0)
    reach = min(0.25 * light.shadow_per_height, 0.6) * L
    sh = cover(light.sun_dir[0] * reach, light.sun_dir[1] * reach, 2.0)
    albedo = np.array([0.2, 0.2, 0.22], np.float32) * rng.uniform(0.7, 1.3)
    col = light.radiance(albedo[None, None, :], np.ones(body.shape, np.float32))
    col *= (1.0 + 0.12 * _speckle(noise, rng, 2 * ext, 2 * ext))[..., None]
    isl, psl = where
    ground = img[isl].astype(np.float32)
    ground *= 1.0 - sh[psl][..., None] * (1.0 - light.k_sky)
    a = body[psl][..., None]
    img[isl] = np.clip(ground * (1 - a) + col[psl] * a + 0.5, 0, 255).astype(np.uint8)


_ICE_ALBEDOS = (
    np.array([0.96, 0.97, 0.98], np.float32),  # snow-capped
    np.array([0.80, 0.90, 0.97], np.float32),  # bare blue ice
    np.array([0.92, 0.88, 0.76], np.float32),  # cream, sediment-laden rubble
    np.array([0.90, 0.84, 0.68], np.float32),  # yellowish dirty block
)


def _objects(
    img: np.ndarray,
    rng: np.random.Generator,
    light: Light,
    m2px: float,
    ground: _Ground,
    keep_clear: list[tuple[float, float, float]],
    trails_to_bears: list[tuple[float, float, float, float]],
) -> None:
    """Paint the full-resolution objects; none lands within ``keep_clear`` discs (x, y, r)."""
    H, W = img.shape[:2]
    noise = rng.standard_normal((256, 256), dtype=np.float32)
    area_m2 = W * H / (m2px * m2px)
    clear = np.array(keep_clear, np.float32).reshape(-1, 3)

    def free(x: float, y: float, r: float) -> bool:
        if not len(clear):
            return True
        d = np.hypot(clear[:, 0] - x, clear[:, 1] - y)
        return bool(np.all(d > clear[:, 2] + r))

    def low(mask: np.ndarray, x: float, y: float):
        return mask[min(int(y) // _LOW, mask.shape[0] - 1), min(int(x) // _LOW, mask.shape[1] - 1)]

    # Ridge rubble: blocks heaped where the ridge profile is high.
    ridge_area = float(ground.ridge.mean()) * area_m2
    for _ in range(rng.poisson(2.5 * ridge_area)):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        if rng.random() > low(ground.ridge, x, y):
            continue
        r = math.exp(rng.uniform(math.log(0.25), math.log(1.2))) * m2px
        if not free(x, y, r):
            continue
        albedo = _ICE_ALBEDOS[rng.choice(4, p=[0.5, 0.3, 0.12, 0.08])]
        _block(img, rng, light, noise, x, y, r, rng.uniform(0.25, 0.8) * r, albedo)

    # Scattered blocks on level ice and brash along lead edges; the density varies by frame.
    density = math.exp(rng.uniform(math.log(0.002), math.log(0.03)))
    for _ in range(rng.poisson(density * area_m2)):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        r = math.exp(rng.uniform(math.log(0.2), math.log(1.0))) * m2px
        if low(ground.water, x, y) or not free(x, y, r):
            continue
        albedo = _ICE_ALBEDOS[rng.choice(4, p=[0.45, 0.2, 0.2, 0.15])]
        _block(img, rng, light, noise, x, y, r, rng.uniform(0.2, 0.8) * r, albedo)
    edge_area = float(ground.lead_edge.mean()) * area_m2
    for _ in range(rng.poisson(0.25 * edge_area)):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        if not (low(ground.lead_edge, x, y) or low(ground.water, x, y)):
            continue
        r = math.exp(rng.uniform(math.log(0.15), math.log(0.8))) * m2px
        if free(x, y, r):
            _block(
                img,
                rng,
                light,
                noise,
                x,
                y,
                r,
                rng.uniform(0.1, 0.5) * r,
                _ICE_ALBEDOS[int(rng.integers(0, 3))],
            )

    # Stained snow: mostly yellowish (the hue of bear fur), some pinkish or brown.
    stain_density = math.exp(rng.uniform(math.log(0.003), math.log(0.025)))
    tints = (
        np.array([1.0, 0.96, 0.78], np.float32),
        np.array([0.98, 0.93, 0.72], np.float32),
        np.array([0.97, 0.93, 0.84], np.float32),
        np.array([0.96, 0.86, 0.85], np.float32),
        np.array([0.88, 0.84, 0.77], np.float32),
    )
    for _ in range(rng.poisson(stain_density * area_m2)):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        r = math.exp(rng.uniform(math.log(0.3), math.log(1.6))) * m2px
        if low(ground.unsafe, x, y) or not free(x, y, r):
            continue
        tint = tints[rng.choice(5, p=[0.35, 0.3, 0.15, 0.1, 0.1])]
        _stain(img, rng, noise, x, y, r, tint, rng.uniform(0.35, 1.0))

    # Seals hauled out beside open water.
    if ground.water.any():
        for _ in range(rng.poisson(0.6)):
            for _try in range(30):
                x, y = rng.uniform(0, W), rng.uniform(0, H)
                if low(ground.lead_edge, x, y) and free(x, y, m2px):
                    _seal(img, rng, light, noise, m2px, x, y)
                    break

    # Old trails criss-crossing the floe, then the fresh ones that end at a bear.
    for _ in range(min(rng.poisson(0.3 + math.hypot(W, H) / m2px / 120.0), 4)):
        start = (rng.uniform(0, W), rng.uniform(0, H))
        _trail(
            img,
            rng,
            light,
            m2px,
            start,
            rng.uniform(0, 2 * math.pi),
            rng.uniform(8, 60),
            ground.wet,
        )
    for x, y, heading, scale in trails_to_bears:
        _trail(img, rng, light, m2px, (x, y), heading, rng.uniform(6, 40), ground.wet, scale)


# ---------------------------------------------------------------------------------------------
# bears

_AGE_SIZES = {"adult": (0.9, 1.15), "subadult": (0.75, 0.9), "cub": (0.5, 0.65)}


def _plan_bears(
    rng: np.random.Generator,
    n_bears: int,
    width: int,
    height: int,
    m2px: float,
    bear_length_m: float,
    light: Light,
    unsafe: np.ndarray,
) -> list[tuple[BearSprite, int, int, str]]:
    """Sprites and integer centres for ``n_bears`` bears; raises ValueError if they cannot fit."""
    planned: list[tuple[BearSprite, int, int, str]] = []
    family = n_bears >= 2 and rng.random() < 0.3  # a mother with cubs
    for i in range(n_bears):
        age = (
            "adult"
            if (family and i == 0)
            else ("cub" if family else ("subadult" if rng.random() < 0.2 else "adult"))
        )
        lo, hi = _AGE_SIZES[age]
        length = bear_length_m * rng.uniform(lo, hi) * m2px
        pose = POSES[rng.choice(len(POSES), p=POSE_WEIGHTS)]
        sprite = render_aerial_bear(
            rng,
            pose=pose,
            length_px=length,
            angle_deg=rng.uniform(0, 360),
            light=light,
            yellowness=rng.uniform(0.5, 1.3),
        )
        r = sprite.radius
        if width < 2 * r + 1 or height < 2 * r + 1:
            raise ValueError(
                f"a {width}x{height} frame is too small for a bear {length:.0f} px long"
            )
        gap = 0.25 * length
        x0, y0, x1, y1 = sprite.box
        placed = False
        for attempt in range(400):
            if family and i > 0 and attempt < 200:
                mother = planned[0]
                a = rng.uniform(0, 2 * math.pi)
                d = rng.uniform(0.9, 2.2) * mother[0].length_px
                cx, cy = int(mother[1] + d * math.cos(a)), int(mother[2] + d * math.sin(a))
                if not (r <= cx < width - r and r <= cy < height - r):
                    continue
            else:
                cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
            bx0, by0, bx1, by1 = cx + x0 - gap, cy + y0 - gap, cx + x1 + gap, cy + y1 + gap
            if any(
                bx0 < ox + ob[2] and ox + ob[0] < bx1 and by0 < oy + ob[3] and oy + ob[1] < by1
                for os_, ox, oy, _ in planned
                for ob in [os_.box]
            ):
                continue
            if attempt < 300:  # prefer level ice: no water, new ice or ridge under the bear
                ly0, ly1 = max(int(cy + y0) // _LOW, 0), int(cy + y1) // _LOW + 1
                lx0, lx1 = max(int(cx + x0) // _LOW, 0), int(cx + x1) // _LOW + 1
                if unsafe[ly0:ly1, lx0:lx1].any():
                    continue
            placed = True
            break
        if not placed:
            raise ValueError(f"could not place {n_bears} bears apart in a {width}x{height} frame")
        planned.append((sprite, cx, cy, age))
    return planned


def render_scene(
    width: int,
    height: int,
    *,
    seed: int | Sequence[int],
    gsd_cm: float = 2.4,
    bear_length_m: float = 2.0,
    n_bears: int = 0,
    draw_bears: bool = True,
    sun_azimuth_deg: float | None = None,
    sun_elevation_deg: float | None = None,
) -> tuple[np.ndarray, list[PlacedBear], Light]:
    """Render one frame; see the module docstring. Returns (H, W, 3) uint8 RGB, the bears (empty
    list when ``n_bears`` is 0, *the same list* whether or not they are drawn) and the light."""
    if width < 16 or height < 16:
        raise ValueError("frames must be at least 16 px on each side")
    if gsd_cm <= 0 or bear_length_m <= 0 or n_bears < 0:
        raise ValueError("gsd_cm and bear_length_m must be positive and n_bears >= 0")
    m2px = 100.0 / gsd_cm
    seq = np.random.SeedSequence(
        int(seed) if isinstance(seed, int | np.integer) else [int(v) for v in seed]
    )
    r_light, r_ground, r_bears, r_objects, r_grain = (
        np.random.default_rng(s) for s in seq.spawn(5)
    )

    light = default_light(r_light, sun_azimuth_deg, sun_elevation_deg)
    rgb_low, ground = _ground(r_ground, width, height, m2px, light)

    planned = _plan_bears(
        r_bears, n_bears, width, height, m2px, bear_length_m, light, ground.unsafe
    )
    keep_clear = []
    trails = []
    for sprite, cx, cy, _age in planned:
        keep_clear.append((cx, cy, 0.6 * sprite.length_px))
        # A trail behind a walking bear (and some others) leads off the way it came.
        if r_bears.random() < (0.75 if sprite.pose == "walking" else 0.3):
            th = math.radians(sprite.angle_deg)
            tail = (
                cx - 0.45 * sprite.length_px * math.cos(th),
                cy - 0.45 * sprite.length_px * math.sin(th),
            )
            trails.append(
                (tail[0], tail[1], th + math.pi, sprite.length_px / (bear_length_m * m2px))
            )

    size = 256 if max(width, height) <= 512 else 512
    grain = periodic_grain(r_grain, size, (0.0, 0.8, 2.5), (1.6, 1.4, 1.6))
    chroma = periodic_grain(r_grain, size, (0.0, 1.0), (0.8, 0.5))
    tile = np.stack([grain + chroma, grain, grain - chroma], axis=-1) + 128.0
    tile = np.clip(tile + 0.5, 0, 255).astype(np.uint8)
    offset = (int(r_grain.integers(0, size)), int(r_grain.integers(0, size)))
    edge_noise = periodic_grain(r_grain, 256, (3.0,), (1.0,))  # wraps: no seams when tiled
    img = _upsample(rgb_low, width, height, tile, offset, ground, edge_noise)

    _objects(img, r_objects, light, m2px, ground, keep_clear, trails)

    bears = []
    for sprite, cx, cy, age in planned:
        if draw_bears:
            composite_sprite(img, sprite, cx, cy, light.k_sky)
        x0, y0, x1, y1 = sprite.box
        r = sprite.radius
        bears.append(
            PlacedBear(
                x=round(cx + sprite.centroid[0], 2),
                y=round(cy + sprite.centroid[1], 2),
                length_px=round(sprite.length_px, 2),
                angle_deg=round(sprite.angle_deg % 360.0, 2),
                pose=sprite.pose,
                box=(cx + x0, cy + y0, cx + x1, cy + y1),
                age_class=age,
                patch=(cx - r, cy - r, cx + r + 1, cy + r + 1),
            )
        )
    return img, bears, light


__all__ = ["PlacedBear", "render_scene", "default_light", "MAX_SHADOW_LENGTHS"]
