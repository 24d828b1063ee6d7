"""A polar bear seen from straight above, drawn as a small lit sprite.

The bear is a union of ellipsoids laid out along its body axis (rump, torso, chest, neck, head,
snout, ears, paws, tail) in units of its nose-to-tail length, so it scales with the survey's
ground sample distance. Poses move and bend those parts: ``walking`` (legs in a gait),
``standing``, ``lying`` (sprawled, fore paws beside the head), ``curled`` (the body bent into a
C, head towards the rump) and ``sitting`` (short and wide, high, so a longer shadow).

Invariants: the sprite is a square patch centred on the body origin; everything the bear changes
in a frame (fur, its cast shadow, leg shadows) lies inside that patch; the shadow never reaches
further than ``MAX_SHADOW_LENGTHS`` body lengths from the body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labeling.demo.fields import Light

POSES: tuple[str, ...] = ("walking", "standing", "lying", "curled", "sitting")
POSE_WEIGHTS: tuple[float, ...] = (0.34, 0.16, 0.24, 0.16, 0.10)

# A bear's shadow is capped at this many body lengths beyond the body so that ground truth can
# promise "everything the bear changed lies within its box plus a margin" (a real low sun can
# throw longer shadows; the demo trades that for a checkable promise).
MAX_SHADOW_LENGTHS = 0.5

# Half the side of the sprite patch, in body lengths (body reach ~0.52, plus the shadow, plus blur).
_BODY_REACH = 0.56


@dataclass(frozen=True)
class _Part:
    u: float  # along the body, head positive (body lengths)
    v: float  # across the body (body lengths)
    a: float  # semi-axis along u
    b: float  # semi-axis along v
    rot_deg: float = 0.0
    head: bool = False  # turns with the head


@dataclass(frozen=True)
class BearSprite:
    """A rendered bear: ``alpha`` (body coverage), ``rgb`` (lit fur, 8-bit scale, float32) and
    ``shadow`` (coverage of the cast shadow on the ground), all on a (2R+1)^2 patch whose centre
    pixel is the body origin. ``box`` is the tight box of ``alpha`` > 0.1 relative to that
    centre (x0, y0, x1, y1, exclusive ends); ``centroid`` is the alpha-weighted centre, relative."""

    pose: str
    length_px: float
    angle_deg: float
    radius: int
    alpha: np.ndarray
    rgb: np.ndarray
    shadow: np.ndarray
    box: tuple[int, int, int, int]
    centroid: tuple[float, float]
    paws: tuple[tuple[float, float], ...]  # paw positions relative to the centre (px), for trails


def _parts(
    pose: str, rng: np.random.Generator
) -> tuple[list[_Part], float, float, float, float, list[tuple[float, float]]]:
    """Parts, bend curvature (1/body length), head yaw (deg), belly height and back height above
    the belly (both body lengths), paw positions (body coordinates, before bending)."""
    yaw = 0.0
    bend = 0.0
    if pose in ("walking", "standing"):
        phase = rng.uniform(0.0, 2.0 * math.pi) if pose == "walking" else 0.0
        stride = 0.075 if pose == "walking" else 0.0
        f, g = stride * math.sin(phase), stride * math.sin(phase + math.pi)
        yaw = rng.uniform(-15, 15) if pose == "walking" else rng.uniform(-40, 40)
        bend = rng.uniform(-0.35, 0.35)
        paws = [(0.17 + f, -0.165), (0.17 + g, 0.165), (-0.27 + g, -0.155), (-0.27 + f, 0.155)]
        parts = [
            _Part(-0.22, 0.0, 0.19, 0.185, 0),
            _Part(-0.02, 0.0, 0.25, 0.195, 0),
            _Part(0.13, 0.0, 0.15, 0.175, 0),
            _Part(0.27, 0.0, 0.11, 0.09, 0, True),
            _Part(0.375, 0.0, 0.085, 0.068, 0, True),
            _Part(0.46, 0.0, 0.045, 0.037, 0, True),
            _Part(0.345, -0.058, 0.022, 0.02, 0, True),
            _Part(0.345, 0.058, 0.022, 0.02, 0, True),
            _Part(-0.41, 0.0, 0.05, 0.045, 0),
        ] + [_Part(pu, pv, 0.075, 0.05, 0) for pu, pv in paws]
        belly, back = 0.28, 0.24
    elif pose in ("lying", "curled"):
        yaw = rng.uniform(-25, 25)
        if pose == "curled":
            bend = rng.choice([-1.0, 1.0]) * rng.uniform(3.3, 4.0)
            yaw = math.copysign(rng.uniform(15, 40), bend)
            fore = [(0.22, -0.15, 0.09, 0.05, -20), (0.22, 0.15, 0.09, 0.05, 20)]
            hind = [(-0.3, -0.15, 0.09, 0.05, 20), (-0.3, 0.15, 0.09, 0.05, -20)]
        else:
            spread = rng.uniform(0.0, 1.0)
            fore = [(0.31, -0.135, 0.12, 0.05, -8), (0.31, 0.135, 0.12, 0.05, 8)]
            hind = [
                (-0.36, -0.13 - 0.03 * spread, 0.1, 0.05, 25 * spread),
                (-0.36, 0.13 + 0.03 * spread, 0.1, 0.05, -25 * spread),
            ]
        paws = [(u, v) for u, v, *_ in fore + hind]
        parts = [
            _Part(-0.22, 0.0, 0.19, 0.2, 0),
            _Part(0.0, 0.0, 0.26, 0.215, 0),
            _Part(0.15, 0.0, 0.14, 0.19, 0),
            _Part(0.28, 0.0, 0.1, 0.09, 0, True),
            _Part(0.38, 0.0, 0.085, 0.07, 0, True),
            _Part(0.46, 0.0, 0.045, 0.037, 0, True),
            _Part(0.35, -0.06, 0.022, 0.02, 0, True),
            _Part(0.35, 0.06, 0.022, 0.02, 0, True),
            _Part(-0.42, 0.0, 0.05, 0.045, 0),
        ] + [_Part(u, v, a, b, r) for u, v, a, b, r in fore + hind]
        belly, back = 0.0, (0.16 if pose == "curled" else 0.14)
    elif pose == "sitting":
        yaw = rng.uniform(-35, 35)
        paws = [(0.25, -0.09), (0.25, 0.09), (-0.05, -0.235), (-0.05, 0.235)]
        parts = [
            _Part(-0.12, 0.0, 0.2, 0.23, 0),
            _Part(0.04, 0.0, 0.16, 0.2, 0),
            _Part(0.12, 0.0, 0.1, 0.16, 0),
            _Part(0.17, 0.0, 0.08, 0.09, 0, True),
            _Part(0.24, 0.0, 0.08, 0.07, 0, True),
            _Part(0.31, 0.0, 0.04, 0.035, 0, True),
            _Part(0.215, -0.055, 0.022, 0.02, 0, True),
            _Part(0.215, 0.055, 0.022, 0.02, 0, True),
            _Part(0.25, -0.09, 0.05, 0.04, 0),
            _Part(0.25, 0.09, 0.05, 0.04, 0),
            _Part(-0.05, -0.235, 0.09, 0.045, 0),
            _Part(-0.05, 0.235, 0.09, 0.045, 0),
        ]
        belly, back = 0.0, 0.36
    else:
        raise ValueError(f"unknown pose {pose!r}; expected one of {POSES}")
    return parts, bend, yaw, belly, back, paws


def _unbend(u: np.ndarray, v: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Map straight body coordinates to coordinates along an arc of curvature ``k`` (1/length):
    ``s`` is the arc length from the origin and ``t`` the signed distance from the arc."""
    if abs(k) < 1e-3:
        return u, v
    sign = 1.0 if k > 0 else -1.0
    r0 = 1.0 / abs(k)
    vv = v * sign
    dy = vv - r0
    r = np.sqrt(u * u + dy * dy)
    phi = np.arctan2(u, -dy)
    return (r0 * phi).astype(np.float32), ((r0 - r) * sign).astype(np.float32)


def _bend_point(s: float, t: float, k: float) -> tuple[float, float]:
    """Inverse of ``_unbend`` for one point."""
    if abs(k) < 1e-3:
        return s, t
    sign = 1.0 if k > 0 else -1.0
    r0 = 1.0 / abs(k)
    phi = s / r0
    tt = t * sign
    return (r0 - tt) * math.sin(phi), (r0 - (r0 - tt) * math.cos(phi)) * sign


def _body(
    parts: list[_Part],
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    cos_t: float,
    sin_t: float,
    length: float,
    bend: float,
    yaw_rad: float,
    shift: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance in pixels (positive inside) to the bear's outline at offsets (xs, ys), and
    the shape of its back (0 at the outline, ~1 along the spine).

    Parts are joined by a smooth maximum so that the creases between them fill in, as fur and fat
    do; ``shift`` displaces the evaluation point (the cast shadow is the body seen from the sun).
    """
    gx = xs + shift[0]
    gy = ys + shift[1]
    u = (gx * cos_t + gy * sin_t) / length
    v = (-gx * sin_t + gy * cos_t) / length
    s0, t0 = _unbend(u, v, bend)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    pivot = 0.2
    hs = pivot + (s0 - pivot) * cy + t0 * sy
    ht = -(s0 - pivot) * sy + t0 * cy
    k = 0.025 * length  # blending radius of the smooth union, pixels
    dists = []
    bumps = []
    for p in parts:
        s, t = (hs, ht) if p.head else (s0, t0)
        du, dv = s - p.u, t - p.v
        if p.rot_deg:
            cr, sr = math.cos(math.radians(p.rot_deg)), math.sin(math.radians(p.rot_deg))
            du, dv = du * cr + dv * sr, -du * sr + dv * cr
        ea, eb = du / p.a, dv / p.b
        q = np.sqrt(ea * ea + eb * eb) + 1e-6
        # first-order distance to the ellipse, (1 - q) / |grad q|, in pixels
        grad = np.sqrt((ea / p.a) ** 2 + (eb / p.b) ** 2) / q + 1e-6
        dists.append(np.clip((1.0 - q) / grad * length, -4.0 * length, length))
        # an ellipsoid whose height follows the part's width (paws and ears are low)
        bumps.append(min(1.0, p.b / 0.19) * np.sqrt(np.maximum(1.0 - q * q, 0.0)))
    return _smooth_max(dists, k), _smooth_max(bumps, 0.04)


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Separable mean filter of half-width ``r`` with edge padding (two passes ~ a Gaussian)."""
    out = a
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float32)
        n = out.shape[axis]
        hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = (hi - lo) / (2 * r + 1)
    return out


def _smooth_max(values: list[np.ndarray], k: float) -> np.ndarray:
    """log-sum-exp union with blending scale ``k``: equals the max far from ties, rounds creases."""
    m = np.maximum.reduce(values)
    acc = np.zeros_like(m)
    for v in values:
        acc += np.exp((v - m) / k)
    return (m + k * np.log(acc)).astype(np.float32)


def render_aerial_bear(
    rng: np.random.Generator,
    *,
    pose: str,
    length_px: float,
    angle_deg: float,
    light: Light,
    yellowness: float = 1.0,
) -> BearSprite:
    """Draw one bear of nose-to-tail ``length_px`` heading ``angle_deg`` (image coordinates,
    clockwise from +x, i.e. towards +y) under ``light``. ``yellowness`` ~0.5 (white) to ~1.5
    (straw-yellow, an old summer coat) scales how far the fur departs from white."""
    parts, bend, yaw, belly, back, paws = _parts(pose, rng)
    L = float(length_px)
    radius = int(math.ceil((_BODY_REACH + MAX_SHADOW_LENGTHS) * L + 4))
    ax = np.arange(-radius, radius + 1, dtype=np.float32)
    xs, ys = ax[None, :], ax[:, None]
    th = math.radians(angle_deg)
    ct, st = math.cos(th), math.sin(th)
    common = dict(cos_t=ct, sin_t=st, length=L, bend=bend, yaw_rad=math.radians(yaw))
    dist, shape = _body(parts, xs, ys, **common)
    alpha = np.clip(dist / 1.2 + 0.5, 0.0, 1.0)
    # Blur the lumpy union of ellipsoids into one back (fur and fat smooth a bear's outline).
    r = max(1, int(0.06 * L))
    height = back * _box_blur(_box_blur(np.clip(shape, 0.0, None), r), r)  # body lengths

    # Shadow: the body seen from the sun, displaced by its height over the ground, plus the legs
    # of a standing bear as thin strips from each paw to where the belly's shadow falls.
    sun = light.sun_dir
    scale = light.shadow_per_height * L
    reach = min((belly + 0.8 * back) * scale, MAX_SHADOW_LENGTHS * L)
    sdist, _ = _body(parts, xs, ys, shift=(reach * sun[0], reach * sun[1]), **common)
    shadow = np.clip(sdist / 2.5 + 0.5, 0.0, 1.0)
    paw_px = []
    for pu, pv in paws:
        bu, bv = _bend_point(pu, pv, bend)
        paw_px.append((L * (bu * ct - bv * st), L * (bu * st + bv * ct)))
    if belly > 0:
        leg = min(belly * scale, MAX_SHADOW_LENGTHS * L)
        dx, dy = -sun[0] * leg, -sun[1] * leg
        seg2 = dx * dx + dy * dy + 1e-6
        half_w = 0.035 * L
        for px, py in paw_px:
            t = np.clip(((xs - px) * dx + (ys - py) * dy) / seg2, 0.0, 1.0)
            d = np.hypot(xs - px - t * dx, ys - py - t * dy)
            np.maximum(shadow, np.clip((half_w - d) / 1.5 + 0.5, 0.0, 1.0), out=shadow)
    else:
        # fur pressed into the snow darkens a thin ring around a lying bear
        np.maximum(shadow, 0.3 * np.clip((dist + 3.0) / 3.0, 0.0, 1.0), out=shadow)

    # Fur: cream that yellows towards the rump and along the back, with fine grain.
    u_ax = (xs * ct + ys * st) / L
    white = np.array([0.93, 0.93, 0.92], np.float32)
    cream = np.array([0.90, 0.87, 0.76], np.float32)
    yel = np.clip(
        yellowness * (1.0 + 0.35 * np.clip(-u_ax, -0.5, 0.5) + 0.3 * height / back), 0.0, 2.2
    )
    albedo = white - yel[..., None] * (white - cream)
    grain = rng.normal(1.0, 0.035, size=alpha.shape).astype(np.float32)
    albedo = albedo * grain[..., None]

    # Light: normals from the height map; fur scatters light, so flatten Lambert a little.
    h_px = height * L
    gy_, gx_ = np.gradient(h_px)
    norm = np.sqrt(gx_ * gx_ + gy_ * gy_ + 1.0)
    lam = light.lambert(-gx_ / norm, -gy_ / norm, 1.0 / norm)
    lam = np.clip(0.3 + 0.7 * lam, 0.0, 1.6)
    rgb = light.radiance(albedo, lam)

    # Dark nose tip and eyes (tiny from above, but real).
    nose_u, nose_v = _bend_point(0.49 if pose != "sitting" else 0.34, 0.0, bend)
    if pose != "sitting":
        # the nose turns with the head
        ds = nose_u - 0.2
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        nose_u, nose_v = 0.2 + ds * c - nose_v * s, ds * s + nose_v * c
    nx, ny = L * (nose_u * ct - nose_v * st), L * (nose_u * st + nose_v * ct)
    nose = np.clip((0.022 * L - np.hypot(xs - nx, ys - ny)) / 1.0 + 0.5, 0.0, 1.0)
    rgb = rgb * (1.0 - 0.8 * nose[..., None])

    ys_i, xs_i = np.nonzero(alpha > 0.1)
    box = (
        int(xs_i.min()) - radius,
        int(ys_i.min()) - radius,
        int(xs_i.max()) + 1 - radius,
        int(ys_i.max()) + 1 - radius,
    )
    w = alpha.sum()
    centroid = (float((alpha * xs).sum() / w), float((alpha * ys).sum() / w))
    return BearSprite(
        pose=pose,
        length_px=L,
        angle_deg=float(angle_deg),
        radius=radius,
        alpha=alpha,
        rgb=rgb,
        shadow=shadow,
        box=box,
        centroid=centroid,
        paws=tuple(paw_px),
    )


def composite_sprite(
    img: np.ndarray, sprite: BearSprite, cx: int, cy: int, k_sky: np.ndarray
) -> None:
    """Draw ``sprite`` into ``img`` (H, W, 3 uint8, in place) with its centre at pixel (cx, cy).

    The caller guarantees the whole patch lies inside the image (bears stay inside frames)."""
    r = sprite.radius
    sl = (slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1))
    ground = img[sl].astype(np.float32)
    ground *= 1.0 - sprite.shadow[..., None] * (1.0 - k_sky)
    a = sprite.alpha[..., None]
    out = ground * (1.0 - a) + sprite.rgb * a
    img[sl] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
