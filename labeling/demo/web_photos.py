"""Web-style photos for the demo: polar bears seen from the side, close up, swimming and from the
air, and things that are not bears (seals, dogs, arctic foxes, walrus, people, empty snowscapes
and empty aerial ice), on varied backgrounds (sea ice under blue or grey sky, tundra, open water,
a zoo enclosure), in varied sizes (400-900 px), JPEG qualities and colour casts, some watermarked.

The animals are built from ellipses and polygons drawn by Pillow at twice the size and averaged
down (antialiasing), then shaded in numpy: lit from above, a soft contact shadow, fur grain. The
bear's box is the tight box of its drawn coverage, clipped to the photo.

Invariants: a bear photo's box lies inside the photo and has positive area; non-bear photos have
no box; the same generator state gives the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from labeling.demo.fields import smooth_noise
from labeling.demo.seaice import render_scene

BEAR_KINDS: tuple[str, ...] = ("side", "closeup", "aerial", "side-lying", "swimming")
OTHER_KINDS: tuple[str, ...] = (
    "snowscape",
    "other-seal",
    "other-dog",
    "other-fox",
    "other-aerial",
    "other-walrus",
    "other-person",
)

_LICENCES = ("CC BY 4.0", "CC BY-SA 4.0", "CC0 1.0", "CC BY 2.0", "CC BY-NC 4.0")
_AUTHORS = (
    "A. Nanook",
    "K. Tulugaq",
    "M. Lindqvist",
    "J. Okpik",
    "S. Barents",
    "P. Kigutaq",
    "E. Sørensen",
    "R. Amaruq",
    "L. Kallak",
    "T. Hudson",
)


def web_photo_plan(n_bears: int, n_other: int, seed: int) -> list[tuple[str, bool]]:
    """(kind, is_bear) for each photo, bear and other kinds cycled evenly, order shuffled."""
    items = [(BEAR_KINDS[i % len(BEAR_KINDS)], True) for i in range(n_bears)]
    items += [(OTHER_KINDS[i % len(OTHER_KINDS)], False) for i in range(n_other)]
    order = np.random.default_rng([seed, 0x3EB]).permutation(len(items))
    return [items[int(i)] for i in order]


# ---------------------------------------------------------------------------------------------
# backgrounds


def _vgrad(h: int, w: int, top: tuple[float, ...], bottom: tuple[float, ...]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(
        (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32), (h, w, 3)
    ).copy()


def _background(rng: np.random.Generator, h: int, w: int, setting: str) -> tuple[np.ndarray, int]:
    """An outdoor scene; returns (RGB float32, horizon row)."""
    horizon = int(h * rng.uniform(0.25, 0.5))
    overcast = rng.random() < 0.35
    if overcast:
        sky = _vgrad(h, w, (178, 184, 192), (222, 225, 230))
    else:
        sky = _vgrad(h, w, (92, 142, 205), (196, 216, 238))
    img = sky
    # distant hills or an ice edge along the horizon
    if rng.random() < 0.6:
        ridge = horizon - (0.04 + 0.12 * rng.random()) * h * np.clip(
            0.5 + 0.5 * smooth_noise(rng, (1, w), max(w / 6, 2))[0], 0.0, 1.4
        )
        rows = np.arange(h, dtype=np.float32)[:, None]
        hills = (rows >= ridge[None, :]) & (rows < horizon)
        tone = np.array((150, 160, 175) if setting != "tundra" else (120, 118, 112), np.float32)
        img[hills] = tone * rng.uniform(0.9, 1.1)
    g = slice(horizon, h)
    gh = h - horizon
    tex = (
        smooth_noise(rng, (gh, w), max(w / 30, 2)) * 0.7
        + smooth_noise(rng, (gh, w), max(w / 120, 2)) * 0.3
    )
    depth = np.linspace(0.6, 1.0, gh, dtype=np.float32)[:, None, None]  # further away = paler
    if setting == "tundra":
        base = np.array((112, 104, 74), np.float32) + 18 * tex[..., None] * np.array(
            (1, 1.1, 0.6), np.float32
        )
        img[g] = base * (0.8 + 0.2 * depth)
    elif setting == "water":
        streaks = smooth_noise(rng, (gh, w), 4.0, stretch=8.0, angle_deg=0.0)
        base = np.array((28, 58, 88), np.float32) + 14 * streaks[..., None]
        img[g] = base + (1 - depth) * np.array((80, 90, 100), np.float32)
    elif setting == "zoo":
        wall = (
            np.array((150, 138, 120), np.float32) + 20 * smooth_noise(rng, (h, w), 6.0)[..., None]
        )
        img = wall
        pool_top = int(h * rng.uniform(0.6, 0.8))
        img[pool_top:] = (
            np.array((60, 150, 160), np.float32)
            + 12 * smooth_noise(rng, (h - pool_top, w), 5.0)[..., None]
        )
        return img, pool_top
    else:  # sea ice / snow
        base = np.array((236, 240, 246), np.float32) - (0 if not overcast else 10)
        blue = np.array((-30, -18, -4), np.float32)
        img[g] = base + blue * np.clip(-tex, 0, 1)[..., None] * 0.5 + 3 * tex[..., None]
        img[g] = img[g] * (0.93 + 0.07 * depth)
    return img, horizon


def _blurred(img: np.ndarray, radius: float) -> np.ndarray:
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), np.float32)


# ---------------------------------------------------------------------------------------------
# animals from primitives


def _ellipse_poly(
    cx: float, cy: float, rx: float, ry: float, rot_deg: float = 0.0, n: int = 40
) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
    x, y = rx * np.cos(t), ry * np.sin(t)
    return list(zip((cx + x * c - y * s).tolist(), (cy + x * s + y * c).tolist(), strict=True))


class _Canvas:
    """Draws shapes given in body units (facing right, ground at y = 0, up negative) into a 2x
    supersampled coverage mask of the photo."""

    def __init__(self, h: int, w: int, x0: float, y0: float, scale: float, flip: bool):
        self.h, self.w = h, w
        self.x0, self.y0, self.scale, self.flip = x0, y0, scale, flip
        self.mask = Image.new("L", (2 * w, 2 * h), 0)
        self.draw = ImageDraw.Draw(self.mask)

    def _pt(self, x: float, y: float) -> tuple[float, float]:
        x = -x if self.flip else x
        return (2 * (self.x0 + x * self.scale), 2 * (self.y0 + y * self.scale))

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, rot: float = 0.0, fill: int = 255
    ) -> None:
        self.draw.polygon(
            [self._pt(x, y) for x, y in _ellipse_poly(cx, cy, rx, ry, rot)], fill=fill
        )

    def poly(self, pts: list[tuple[float, float]], fill: int = 255) -> None:
        self.draw.polygon([self._pt(x, y) for x, y in pts], fill=fill)

    def coverage(self, blur: float = 0.0) -> np.ndarray:
        m = self.mask.resize((self.w, self.h), Image.Resampling.BOX)
        if blur:
            m = m.filter(ImageFilter.GaussianBlur(blur))
        return np.asarray(m, np.float32) / 255.0


def _leg(
    c: _Canvas, x: float, top: float, bottom: float, width: float, swing: float, paw: float
) -> None:
    c.poly(
        [
            (x - width / 2, top),
            (x + width / 2, top),
            (x + swing + width * 0.4, bottom - paw),
            (x + swing - width * 0.4, bottom - paw),
        ]
    )
    c.ellipse(x + swing + width * 0.08, bottom - paw * 0.8, width * 0.62, paw)


def _bear_side(c: _Canvas, rng: np.random.Generator, pose: str) -> list[tuple[float, float, float]]:
    """A polar bear in profile: long neck, small low-carried head, heavy rump, stub tail.
    Returns dark features (x, y, r): nose and eye."""
    if pose == "lying":
        dy = 0.36
        c.ellipse(0.0, -0.52 + dy, 0.37, 0.2)
        c.ellipse(0.15, -0.54 + dy, 0.2, 0.2)
        c.ellipse(-0.24, -0.52 + dy, 0.18, 0.19)
        c.ellipse(0.36, -0.45 + dy, 0.13, 0.09, -5)
        c.ellipse(0.5, -0.4 + dy, 0.1, 0.075)
        c.ellipse(0.6, -0.37 + dy, 0.06, 0.04)
        c.ellipse(0.45, -0.48 + dy, 0.03, 0.03)
        c.ellipse(0.48, -0.035, 0.17, 0.045)  # fore legs stretched on the ice
        c.ellipse(-0.3, -0.05, 0.16, 0.05)
        return [(0.655, -0.38 + dy, 0.018), (0.51, -0.43 + dy, 0.011)]
    walk = pose == "walking"
    head_drop = rng.uniform(-0.03, 0.08)
    c.ellipse(0.0, -0.55, 0.36, 0.2)  # torso
    c.ellipse(0.14, -0.59, 0.2, 0.21)  # shoulders
    c.ellipse(-0.24, -0.58, 0.17, 0.2)  # rump
    c.ellipse(-0.41, -0.62, 0.04, 0.03)  # tail
    c.ellipse(0.34, -0.57 + head_drop / 2, 0.15, 0.1, -8)  # neck
    hy = -0.53 + head_drop
    c.ellipse(0.49, hy, 0.1, 0.075)
    c.ellipse(0.585, hy + 0.03, 0.065, 0.042)
    c.ellipse(0.445, hy - 0.065, 0.03, 0.03)  # ear
    s = 0.06 if walk else 0.0
    for x, sw, w in ((0.22, s, 0.11), (0.3, -s, 0.1), (-0.26, -s, 0.13), (-0.16, s, 0.12)):
        _leg(c, x, -0.5, 0.0, w, sw, 0.035)
        c.ellipse(x, -0.45, w * 0.75, 0.13)  # heavy upper leg, so the legs read as a bear's
    return [(0.632, hy + 0.024, 0.018), (0.5, hy - 0.025, 0.011)]


def _dog_side(c: _Canvas, rng: np.random.Generator, fox: bool) -> list[tuple[float, float, float]]:
    """A husky / samoyed (or, with ``fox``, an arctic fox: short legs, bushy tail)."""
    leg_top = -0.38 if fox else -0.48
    body_y = leg_top - 0.06
    c.ellipse(0.0, body_y, 0.34, 0.13)
    c.ellipse(0.18, body_y - 0.02, 0.14, 0.15)
    c.ellipse(-0.22, body_y, 0.13, 0.14)
    c.ellipse(0.33, body_y - 0.14, 0.08, 0.14, 35)  # neck, held up
    hy = body_y - 0.26
    c.ellipse(0.42, hy, 0.09, 0.075)
    c.ellipse(0.52, hy + 0.025, 0.075, 0.035)
    ear_h = 0.1 if not fox else 0.08
    c.poly([(0.37, hy - 0.03), (0.41, hy - 0.04 - ear_h), (0.45, hy - 0.05)])
    if fox:
        c.ellipse(-0.5, body_y + 0.12, 0.26, 0.085, 25)  # bushy tail, low
    else:
        c.ellipse(-0.33, body_y - 0.16, 0.06, 0.13, 20)  # curled tail over the back
        c.ellipse(-0.27, body_y - 0.24, 0.08, 0.06)
    s = rng.uniform(0.0, 0.06)
    for x, sw in ((0.2, s), (0.26, -s), (-0.24, -s), (-0.17, s)):
        _leg(c, x, leg_top, 0.0, 0.065, sw, 0.025)
    return [(0.595, hy + 0.02, 0.016), (0.43, hy - 0.02, 0.011)]


def _seal_side(c: _Canvas) -> list[tuple[float, float, float]]:
    c.ellipse(0.0, -0.16, 0.5, 0.16)
    c.ellipse(0.47, -0.2, 0.11, 0.09)
    c.ellipse(0.56, -0.17, 0.05, 0.04)
    c.ellipse(0.18, -0.04, 0.08, 0.03, 20)  # fore flipper
    c.poly([(-0.48, -0.14), (-0.68, -0.24), (-0.66, -0.05), (-0.48, -0.1)])  # hind flippers
    return [(0.6, -0.18, 0.012), (0.5, -0.23, 0.016)]


def _walrus_side(c: _Canvas) -> list[tuple[float, float, float]]:
    c.ellipse(-0.05, -0.3, 0.45, 0.3)
    c.ellipse(0.38, -0.4, 0.16, 0.16)
    c.ellipse(0.5, -0.33, 0.09, 0.08)
    c.poly([(-0.48, -0.15), (-0.7, -0.22), (-0.68, -0.02), (-0.48, -0.05)])
    c.ellipse(0.2, -0.04, 0.12, 0.04)
    return [(0.42, -0.46, 0.014)]


def _person(c: _Canvas) -> list[tuple[float, float, float]]:
    c.poly([(-0.12, -1.45), (0.12, -1.45), (0.16, -0.8), (-0.16, -0.8)])  # parka
    c.ellipse(0.0, -1.56, 0.09, 0.11)  # hood
    c.poly([(-0.12, -0.82), (-0.02, -0.82), (-0.03, 0.0), (-0.12, 0.0)])
    c.poly([(0.02, -0.82), (0.12, -0.82), (0.12, 0.0), (0.03, 0.0)])
    return []


def _paint(
    photo: np.ndarray,
    cover: np.ndarray,
    colour: tuple[float, float, float],
    rng: np.random.Generator,
    *,
    belly: tuple[float, float, float] | None = None,
    spots: float = 0.0,
    light_top: float = 0.22,
) -> None:
    """Shade an animal's coverage into ``photo`` (in place): lit from above, a darker belly edge,
    fur grain, and the outline darkened a little, as fur against a bright sky is."""
    ys, xs = np.nonzero(cover > 0.004)
    if len(ys) == 0:
        return
    # work on the animal's bounding box only (plus room for the outline blur)
    y0, y1 = max(int(ys.min()) - 4, 0), int(ys.max()) + 5
    x0, x1 = max(int(xs.min()) - 4, 0), int(xs.max()) + 5
    cov = cover[y0:y1, x0:x1]
    h, w = cov.shape
    t = np.clip((np.arange(h, dtype=np.float32) - 4) / max(h - 8, 1), 0, 1)[:, None]
    lit = (1.0 + light_top * (0.5 - t))[..., None]
    col = np.array(colour, np.float32)[None, None, :] * lit
    if belly is not None:
        mix = np.clip((t - 0.45) * 3, 0, 1)[..., None]
        col = col * (1 - mix) + np.array(belly, np.float32) * mix * lit
    fur = smooth_noise(rng, (h, w), 1.5) * 0.03 + smooth_noise(rng, (h, w), max(w / 25, 3)) * 0.025
    col = col * (1.0 + fur)[..., None]
    if spots:
        dots = np.clip((smooth_noise(rng, (h, w), max(w / 40, 3)) - 1.0) * 2, 0, 1)
        col = col * (1.0 - spots * dots)[..., None]
    soft = Image.fromarray((cov * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    edge = np.clip(cov - np.asarray(soft, np.float32) / 255.0, 0, 1)
    col = col * (1.0 - 0.5 * edge)[..., None]
    a = cov[..., None]
    region = photo[y0:y1, x0:x1]
    region *= 1 - a
    region += col * a


def _disc_patch(photo: np.ndarray, cx: float, cy: float, rx: float, ry: float, soft: float):
    """Coverage (0..1) of a soft ellipse on the photo window that holds it: (slices, alpha)."""
    h, w = photo.shape[:2]
    x0, x1 = max(int(cx - rx - soft - 2), 0), min(int(cx + rx + soft + 3), w)
    y0, y1 = max(int(cy - ry - soft - 2), 0), min(int(cy + ry + soft + 3), h)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    q = np.sqrt((xs / max(rx, 0.5)) ** 2 + (ys / max(ry, 0.5)) ** 2)
    alpha = np.clip((1.0 - q) * min(rx, ry) / soft + 0.5, 0.0, 1.0)
    return (slice(y0, y1), slice(x0, x1)), alpha


def _dark_dots(
    photo: np.ndarray,
    c: _Canvas,
    dots: list[tuple[float, float, float]],
    colour=(25, 22, 22),
    below: int | None = None,
) -> None:
    """Nose and eyes; rows from ``below`` down are hidden (under water)."""
    for x, y, r in dots:
        px, py = c._pt(x, y)
        got = _disc_patch(photo, px / 2, py / 2, r * c.scale, r * c.scale, 0.8)
        if got is None:
            continue
        sl, a = got
        if below is not None:
            rows = np.arange(sl[0].start, sl[0].stop)[:, None]
            a = np.where(rows >= below, 0.0, a)
        a = a[..., None]
        photo[sl] = photo[sl] * (1 - a) + np.array(colour, np.float32) * a


def _contact_shadow(photo: np.ndarray, c: _Canvas, half_len: float, strength: float) -> None:
    """A soft, flat shadow on the ground under the animal."""
    px, py = c._pt(0.0, 0.0)
    got = _disc_patch(
        photo, px / 2, py / 2, half_len * c.scale, 0.05 * c.scale, max(c.scale * 0.05, 1.5)
    )
    if got is None:
        return
    sl, a = got
    a = (a * strength)[..., None]
    photo[sl] = photo[sl] * (1 - a * np.array((0.45, 0.4, 0.3), np.float32))


def _box(cover: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(cover > 0.25)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ---------------------------------------------------------------------------------------------
# whole photos


def _profile_photo(
    rng: np.random.Generator, kind: str
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    w = int(rng.integers(420, 900))
    h = int(w * rng.uniform(0.55, 0.85))
    if kind in ("side", "side-lying"):
        setting = rng.choice(["ice", "ice", "ice", "tundra", "zoo"])
    elif kind in ("other-dog", "other-person"):
        setting = rng.choice(["ice", "ice", "tundra"])
    elif kind == "other-fox":
        setting = rng.choice(["ice", "tundra"])
    else:
        setting = "ice"
    photo, horizon = _background(rng, h, w, str(setting))
    ground = rng.uniform(max(horizon + 0.15 * h, 0.6 * h), 0.93 * h)
    span = {"other-person": 0.18, "other-fox": 0.35}.get(kind, 0.55)
    scale = w * rng.uniform(0.55, 1.0) * span
    if kind == "other-person":
        scale = min(scale, (ground - 0.05 * h) / 1.7)
    else:
        scale = min(scale, (ground - 0.05 * h) / 1.0, w / 1.6)
    x0 = (
        rng.uniform(0.1 * w + 0.7 * scale, 0.9 * w - 0.7 * scale)
        if 0.8 * w > 1.4 * scale
        else w / 2
    )
    c = _Canvas(h, w, x0, ground, scale, flip=bool(rng.random() < 0.5))
    if kind in ("side", "side-lying"):
        dots = _bear_side(
            c, rng, "lying" if kind == "side-lying" else str(rng.choice(["walking", "standing"]))
        )
        tone = rng.uniform(0.0, 1.0)
        colour = (236 - 8 * tone, 226 - 10 * tone, 196 - 30 * tone)
        if setting == "zoo":
            colour = (colour[0] - 25, colour[1] - 30, colour[2] - 40)  # a zoo bear is grubbier
        shadow, belly, spots = 0.55, None, 0.0
    elif kind in ("other-dog", "other-fox"):
        fox = kind == "other-fox"
        dots = _dog_side(c, rng, fox)
        if fox:
            colour, belly = (
                ((242, 242, 240), None) if rng.random() < 0.7 else ((120, 104, 90), (160, 145, 130))
            )
        else:
            colour, belly = (
                ((238, 236, 230), None)
                if rng.random() < 0.4
                else ((110, 110, 115), (235, 233, 228))
            )
        shadow, spots = 0.5, 0.0
    elif kind == "other-seal":
        dots = _seal_side(c)
        colour, belly, spots, shadow = (95, 95, 100), (160, 155, 150), 0.35, 0.5
    elif kind == "other-walrus":
        dots = _walrus_side(c)
        colour, belly, spots, shadow = (150, 104, 82), None, 0.1, 0.5
    else:  # person
        dots = _person(c)
        jacket = [(200, 40, 35), (235, 120, 20), (30, 70, 150), (40, 110, 60)][
            int(rng.integers(0, 4))
        ]
        colour, belly, spots, shadow = jacket, (40, 40, 45), 0.0, 0.5
    cover = c.coverage(blur=0.5)
    _contact_shadow(photo, c, 0.45 if kind != "other-person" else 0.2, shadow)
    _paint(photo, cover, colour, rng, belly=belly, spots=spots)
    if kind == "other-walrus":
        tusk = _Canvas(h, w, c.x0, c.y0, c.scale, c.flip)
        tusk.poly([(0.47, -0.3), (0.5, -0.3), (0.5, -0.1), (0.485, -0.08)])
        a = tusk.coverage()[..., None]
        photo *= 1 - a
        photo += np.array((235, 228, 205), np.float32) * a
    _dark_dots(photo, c, dots)
    return photo, _box(cover) if kind in ("side", "side-lying") else None


def _closeup_photo(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A bear's head and neck filling much of the frame, background out of focus."""
    w = int(rng.integers(400, 800))
    h = int(w * rng.uniform(0.7, 1.25))
    photo, _ = _background(rng, h, w, str(rng.choice(["ice", "tundra", "water", "zoo"])))
    photo = _blurred(photo, rng.uniform(6, 14))
    scale = w * rng.uniform(1.1, 1.8)
    flip = bool(rng.random() < 0.5)
    # head centre near the middle; the neck runs off the bottom/far edge
    hx, hy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.6) * h
    c = _Canvas(h, w, hx - (-0.49 if flip else 0.49) * scale, hy + 0.53 * scale, scale, flip)
    dots = _bear_side(c, rng, "standing")
    cover = c.coverage(blur=0.8)
    tone = rng.uniform(0, 1)
    _paint(photo, cover, (238 - 8 * tone, 228 - 10 * tone, 200 - 30 * tone), rng, light_top=0.3)
    _dark_dots(photo, c, dots)
    return photo, _box(cover)


def _swimming_photo(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Head and a sliver of back above dark water, a V of ripples behind."""
    w = int(rng.integers(450, 900))
    h = int(w * rng.uniform(0.55, 0.8))
    photo, horizon = _background(rng, h, w, "water")
    scale = w * rng.uniform(0.35, 0.6)
    waterline = rng.uniform(max(horizon + 0.2 * h, 0.55 * h), 0.85 * h)
    x0 = rng.uniform(0.3, 0.7) * w
    c = _Canvas(h, w, x0, waterline + 0.3 * scale, scale, flip=bool(rng.random() < 0.5))
    dots = _bear_side(c, rng, "standing")
    cover = c.coverage(blur=0.6)
    cover[int(waterline) :] = 0.0  # under water
    ripple = _Canvas(h, w, x0, waterline, scale, c.flip)
    ripple.poly([(0.6, 0.0), (-0.8, -0.04), (-0.9, 0.05)])
    r = ripple.coverage(blur=2.0)[..., None]
    photo += r * 35
    _paint(photo, cover, (232, 222, 190), rng)
    _dark_dots(photo, c, dots, below=int(waterline))
    return photo, _box(cover)


def _aerial_photo(
    rng: np.random.Generator, with_bear: bool
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """A drone-style aerial shot of ice, reusing the survey renderer at another scale."""
    w = int(rng.integers(480, 860))
    h = int(w * rng.uniform(0.66, 0.9))
    img, bears, _ = render_scene(
        w,
        h,
        seed=(int(rng.integers(0, 2**31)), 7),
        gsd_cm=float(rng.uniform(1.6, 3.2)),
        n_bears=1 if with_bear else 0,
    )
    return img.astype(np.float32), bears[0].box if with_bear else None


def _snowscape_photo(rng: np.random.Generator) -> tuple[np.ndarray, None]:
    """Sea ice to the horizon, often with bright blocks and a ridge in the foreground."""
    w = int(rng.integers(480, 900))
    h = int(w * rng.uniform(0.5, 0.8))
    photo, horizon = _background(rng, h, w, "ice")
    c = _Canvas(h, w, 0, 0, 1.0, False)
    for _ in range(int(rng.integers(0, 14))):
        y = rng.uniform(horizon + 5, h)
        size = (y - horizon) / (h - horizon + 1) * w * rng.uniform(0.03, 0.12)
        x = rng.uniform(0, w)
        pts = [(x + size * rng.uniform(-1, 1), y - size * rng.uniform(0, 1.2)) for _ in range(5)]
        pts += [(x + size, y), (x - size, y)]
        c.poly(pts)
    cover = c.coverage(blur=0.5)
    _paint(photo, cover, (228, 238, 250), rng, light_top=0.35)
    return photo, None


def _finish(rng: np.random.Generator, photo: np.ndarray, kind: str) -> np.ndarray:
    """Camera and Web life: colour cast, exposure, gamma, vignette, sometimes a watermark."""
    h, w = photo.shape[:2]
    cast = np.array(
        [rng.uniform(0.93, 1.07), 1.0, rng.uniform(0.93, 1.07)], np.float32
    ) * rng.uniform(0.9, 1.08)
    gamma = rng.uniform(0.85, 1.15)
    out = photo * cast
    if rng.random() < 0.4 and not kind.endswith("aerial"):
        yy, xx = np.ogrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
        out *= (1.0 - 0.25 * (xx * xx + yy * yy))[..., None].astype(np.float32)
    im = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    lut = [int(round(255.0 * (i / 255.0) ** gamma)) for i in range(256)]
    im = im.point(lut * 3)
    if rng.random() < 0.3:
        d = ImageDraw.Draw(im)
        font = ImageFont.load_default(size=max(10, w // 40))
        d.text((w - w // 4, h - h // 12), "© example.org", fill=(245, 245, 245), font=font)
    return np.asarray(im)


_RENDERERS: dict[
    str, Callable[[np.random.Generator], tuple[np.ndarray, tuple[int, int, int, int] | None]]
] = {
    "side": lambda r: _profile_photo(r, "side"),
    "side-lying": lambda r: _profile_photo(r, "side-lying"),
    "closeup": _closeup_photo,
    "swimming": _swimming_photo,
    "aerial": lambda r: _aerial_photo(r, True),
    "snowscape": _snowscape_photo,
    "other-seal": lambda r: _profile_photo(r, "other-seal"),
    "other-dog": lambda r: _profile_photo(r, "other-dog"),
    "other-fox": lambda r: _profile_photo(r, "other-fox"),
    "other-walrus": lambda r: _profile_photo(r, "other-walrus"),
    "other-person": lambda r: _profile_photo(r, "other-person"),
    "other-aerial": lambda r: _aerial_photo(r, False),
}


def render_web_photo(
    rng: np.random.Generator, kind: str, is_bear: bool
) -> tuple[np.ndarray, tuple[int, int, int, int] | None, dict]:
    """One photo of ``kind``: (H, W, 3) uint8, the bear box (None for non-bears) and metadata
    (JPEG quality, fake source URL, licence, author)."""
    if kind not in _RENDERERS or (kind in BEAR_KINDS) != is_bear:
        raise ValueError(f"unknown or mismatched web photo kind {kind!r} (is_bear={is_bear})")
    photo, box = _RENDERERS[kind](rng)
    out = _finish(rng, photo, kind)
    if is_bear and box is None:
        raise AssertionError(f"{kind} photo drew no bear")  # a renderer bug, never user input
    serial = int(rng.integers(10_000, 99_999))
    meta = {
        "quality": int(rng.integers(72, 95)),
        "source_url": f"https://example.org/bearsite-demo/{kind}/{serial}.jpg",
        "licence": _LICENCES[int(rng.integers(0, len(_LICENCES)))],
        "author": _AUTHORS[int(rng.integers(0, len(_AUTHORS)))],
    }
    return out, box, meta
