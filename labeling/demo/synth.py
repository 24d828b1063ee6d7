"""A seeded, deterministic synthetic polar-bear survey for demos, tests and benchmarks.

``generate_demo_survey`` writes::

    out_dir/frames/frame_0000.jpg ...   aerial frames (JPEG q90, EXIF time + GPS along a flight line)
    out_dir/web/web_0000.jpg ...        Web-style photos of bears and of other things (no GPS)
    out_dir/web_images.csv              file,source_url,licence,author (fake provenance, local use)
    out_dir/ground_truth.json           every bear and every web photo's label; NOT under frames/

so that what a model sees (the JPEGs) and what it is scored against (ground_truth.json) are kept
apart. The same arguments always give byte-identical files: every frame draws from its own
generator seeded by (seed, frame index), and Pillow's JPEG encoder is deterministic.

``render_frame`` is the frame renderer alone (numpy in, numpy out), fast enough for benchmarks:
a 6000 x 4000 frame takes well under 3 s on one core.

Django-free: numpy and Pillow only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from labeling.demo.seaice import MAX_SHADOW_LENGTHS, render_scene
from labeling.demo.web_photos import render_web_photo, web_photo_plan

FORMAT = "bearsite-demo-survey/1"
DEFAULT_START = datetime(2024, 4, 20, 18, 0, 0, tzinfo=UTC)  # ~11:40 local solar time at 95 W

# Camera used to turn a ground sample distance into a flying height (a 36 MP full-frame body
# behind a 50 mm lens, close to the survey cameras in the literature: 2.4 cm/px at ~250 m).
_PIXEL_PITCH_M = 4.88e-6
_FOCAL_M = 0.050
_SPEED_M_S = 50.0
_FRAMES_PER_LINE = 12
_LINE_SPACING_M = 800.0


@dataclass(frozen=True)
class DemoBear:
    """One bear, in pixel coordinates of the *oriented* frame (after EXIF orientation).

    ``x, y`` is the body's centroid; ``length_px`` its nose-to-tail length (``bear_length_m`` x a
    per-bear size factor / gsd: adults 0.9-1.15, subadults 0.75-0.9, cubs 0.5-0.65);
    ``angle_deg`` the heading tail-to-nose, clockwise from +x (image y points down); ``box`` the
    tight box (x0, y0, x1, y1, exclusive ends) of the body without its shadow. The shadow and any
    other pixel the bear changed lie within ``box`` grown by ``shadow_margin_px``.
    """

    frame: str
    x: float
    y: float
    length_px: float
    angle_deg: float
    pose: str
    box: tuple[int, int, int, int]
    age_class: str = "adult"
    shadow_margin_px: int = 0


@dataclass(frozen=True)
class WebPhoto:
    """A Web-style photo: ``box`` is the bear's box (x0, y0, x1, y1, exclusive ends) in the photo
    for bear photos and None for the others. Provenance is plausible and fake (example.org)."""

    file: str
    is_bear: bool
    kind: str
    box: tuple[int, int, int, int] | None
    source_url: str
    licence: str
    author: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class DemoFrame:
    """Where and when a frame was taken, as written into its EXIF."""

    file: str
    taken_at: str  # ISO 8601, UTC
    lat: float
    lon: float
    alt_m: float
    heading_deg: float  # flight direction = the top of the oriented frame, clockwise from north
    width: int  # oriented size
    height: int
    n_bears: int
    sun_azimuth_deg: float  # clockwise from north
    sun_elevation_deg: float
    exif_orientation: int = 1


@dataclass
class DemoManifest:
    root: Path
    frames: list[str]
    bears: list[DemoBear]
    web: list[WebPhoto]
    params: dict
    frame_info: list[DemoFrame] = field(default_factory=list)

    def bears_in(self, frame: str) -> list[DemoBear]:
        return [b for b in self.bears if b.frame == frame]


def shadow_margin(length_px: float) -> int:
    """How far beyond its body box a bear of ``length_px`` may change pixels (its shadow)."""
    return int(math.ceil(MAX_SHADOW_LENGTHS * length_px + 6))


def render_frame(
    width: int,
    height: int,
    *,
    seed: int | tuple[int, ...],
    gsd_cm: float = 2.4,
    bear_length_m: float = 2.0,
    n_bears: int = 0,
    draw_bears: bool = True,
    sun_azimuth_deg: float | None = None,
    sun_elevation_deg: float | None = None,
) -> tuple[np.ndarray, list[DemoBear]]:
    """Render one aerial sea-ice frame: (H, W, 3) uint8 RGB and its bears (``frame`` left "").

    ``sun_azimuth_deg`` is the sun's direction *in the image* (clockwise from +x); None draws one
    from the seed. ``draw_bears=False`` gives the identical background and the same bear list,
    which is how ground truth is checked. Raises ValueError when ``n_bears`` cannot fit apart.
    """
    img, placed, _light = render_scene(
        width,
        height,
        seed=seed,
        gsd_cm=gsd_cm,
        bear_length_m=bear_length_m,
        n_bears=n_bears,
        draw_bears=draw_bears,
        sun_azimuth_deg=sun_azimuth_deg,
        sun_elevation_deg=sun_elevation_deg,
    )
    bears = [
        DemoBear(
            frame="",
            x=p.x,
            y=p.y,
            length_px=p.length_px,
            angle_deg=p.angle_deg,
            pose=p.pose,
            box=p.box,
            age_class=p.age_class,
            shadow_margin_px=shadow_margin(p.length_px),
        )
        for p in placed
    ]
    return img, bears


# ---------------------------------------------------------------------------------------------
# flight line, sun and EXIF


def _sun_position(when: datetime, lat: float, lon: float) -> tuple[float, float]:
    """Approximate solar (azimuth clockwise from north, elevation), degrees; good to ~1 degree."""
    day = when.timetuple().tm_yday
    decl = math.radians(-23.44 * math.cos(math.radians(360.0 / 365.0 * (day + 10))))
    hours = when.hour + when.minute / 60.0 + when.second / 3600.0
    ha = math.radians(15.0 * (hours + lon / 15.0 - 12.0))
    phi = math.radians(lat)
    el = math.asin(math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha))
    az = math.atan2(-math.sin(ha), math.tan(decl) * math.cos(phi) - math.sin(phi) * math.cos(ha))
    return math.degrees(az) % 360.0, math.degrees(el)


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    sec = (value - deg - minutes / 60.0) * 3600.0
    return IFDRational(deg, 1), IFDRational(minutes, 1), IFDRational(int(round(sec * 10000)), 10000)


def _exif_bytes(info: DemoFrame, taken: datetime) -> bytes:
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif = Image.Exif()
    exif[0x010F] = "bearsite"  # Make
    exif[0x0110] = "synthetic survey camera"  # Model
    exif[0x0112] = info.exif_orientation
    exif[0x0132] = stamp  # DateTime
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = stamp  # DateTimeOriginal
    sub[0x9011] = "+00:00"  # OffsetTimeOriginal
    sub[0x920A] = IFDRational(int(_FOCAL_M * 1000), 1)  # FocalLength, mm
    gps = exif.get_ifd(0x8825)
    gps[0] = b"\x02\x03\x00\x00"
    gps[1] = "N" if info.lat >= 0 else "S"
    gps[2] = _dms(info.lat)
    gps[3] = "E" if info.lon >= 0 else "W"
    gps[4] = _dms(info.lon)
    gps[5] = 0  # above sea level
    gps[6] = IFDRational(int(round(info.alt_m * 100)), 100)
    gps[7] = (
        IFDRational(taken.hour, 1),
        IFDRational(taken.minute, 1),
        IFDRational(taken.second, 1),
    )
    gps[16] = "T"
    gps[17] = IFDRational(int(round(info.heading_deg * 100)), 100)  # GPSImgDirection
    gps[29] = taken.strftime("%Y:%m:%d")
    return exif.tobytes()


def _flight(
    n_frames: int,
    seed: int,
    origin_lat: float,
    origin_lon: float,
    start: datetime,
    spacing_m: float,
):
    """(time, lat, lon, heading) per frame: lines of 12 frames, each line flown back the other way
    800 m further on, 90 s for each turn."""
    rng = np.random.default_rng([seed, 0xF117])
    heading0 = float(rng.uniform(0, 360))
    out = []
    for i in range(n_frames):
        line, k = divmod(i, _FRAMES_PER_LINE)
        heading = (heading0 + (180.0 if line % 2 else 0.0)) % 360.0
        along = k * spacing_m if line % 2 == 0 else (_FRAMES_PER_LINE - 1 - k) * spacing_m
        across = line * _LINE_SPACING_M
        h0 = math.radians(heading0)
        north = along * math.cos(h0) - across * math.sin(h0)
        east = along * math.sin(h0) + across * math.cos(h0)
        lat = origin_lat + north / 111_320.0
        lon = origin_lon + east / (111_320.0 * math.cos(math.radians(origin_lat)))
        t = start + timedelta(seconds=round(i * spacing_m / _SPEED_M_S + line * 90.0))
        out.append((t, lat, lon, heading))
    return out


def _jpeg(img: Image.Image, path: Path, *, quality: int, exif: bytes | None = None) -> None:
    buf = io.BytesIO()
    kwargs = {"quality": quality, "optimize": False, "progressive": False}
    if exif is not None:
        kwargs["exif"] = exif
    img.save(buf, "JPEG", **kwargs)
    path.write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------------------
# the survey

_OWNED = ("frames", "web", "ground_truth.json", "web_images.csv")


def generate_demo_survey(
    out_dir: Path,
    *,
    n_frames: int = 24,
    width: int = 1600,
    height: int = 1200,
    seed: int = 0,
    gsd_cm: float = 2.4,
    bear_length_m: float = 2.0,
    bear_frame_fraction: float = 0.5,
    n_web_bears: int = 24,
    n_web_other: int = 24,
    origin_lat: float = 74.5,
    origin_lon: float = -95.0,
    start: datetime = DEFAULT_START,
    exif_rotated_every: int = 0,
    overwrite: bool = False,
) -> DemoManifest:
    """Write a demo survey under ``out_dir`` (layout in the module docstring) and return its manifest.

    ``round(n_frames * bear_frame_fraction)`` frames hold 1-3 bears each, the rest none. With
    ``exif_rotated_every`` = k > 0, every k-th frame is stored rotated (EXIF Orientation 6, the
    way a camera held sideways writes it); ground truth stays in oriented coordinates.
    ``out_dir`` must be empty or absent unless ``overwrite``, which replaces only the files this
    function writes. ground_truth.json is written last, atomically: its presence means complete.
    """
    out_dir = Path(out_dir)
    if n_frames < 0 or not 0.0 <= bear_frame_fraction <= 1.0:
        raise ValueError("n_frames must be >= 0 and bear_frame_fraction within [0, 1]")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out_dir} is not empty (pass overwrite=True to replace the demo files)"
            )
        for name in _OWNED:
            p = out_dir / name
            if p.is_dir():
                for f in p.glob("*.jpg"):
                    f.unlink()
            elif p.exists():
                p.unlink()
    frames_dir, web_dir = out_dir / "frames", out_dir / "web"
    frames_dir.mkdir(parents=True, exist_ok=True)
    web_dir.mkdir(parents=True, exist_ok=True)

    plan = np.random.default_rng([seed, 0xBEA5])
    n_with = int(round(n_frames * bear_frame_fraction))
    with_bears = (
        set(int(i) for i in plan.choice(n_frames, size=n_with, replace=False)) if n_with else set()
    )
    counts = {i: int(plan.choice([1, 2, 3], p=[0.6, 0.28, 0.12])) for i in sorted(with_bears)}

    # Frames are independent scenes sampled along the line, never overlapping on the ground.
    footprint_along_m = height * gsd_cm / 100.0
    spacing = max(100.0, 1.05 * footprint_along_m)
    alt = gsd_cm / 100.0 * _FOCAL_M / _PIXEL_PITCH_M
    flight = _flight(n_frames, seed, origin_lat, origin_lon, start, spacing)

    frames: list[str] = []
    infos: list[DemoFrame] = []
    bears: list[DemoBear] = []
    for i, (taken, lat, lon, heading) in enumerate(flight):
        name = f"frame_{i:04d}.jpg"
        sun_az, sun_el = _sun_position(taken, lat, lon)
        # The top of the oriented frame points along the flight: rotate the sun into the image.
        img_az = (sun_az - heading - 90.0) % 360.0
        want = counts.get(i, 0)
        # A frame too small for three bears apart takes fewer, but never none: a frame that
        # cannot hold one bear is a parameter error (frames smaller than ~2.2 bear lengths).
        for n in range(want, 0, -1) if want else [0]:
            try:
                img, fb = render_frame(
                    width,
                    height,
                    seed=(seed, i),
                    gsd_cm=gsd_cm,
                    bear_length_m=bear_length_m,
                    n_bears=n,
                    sun_azimuth_deg=img_az,
                    sun_elevation_deg=max(sun_el, 8.0),
                )
                break
            except ValueError:
                if n <= 1:
                    raise
        orientation = (
            6 if exif_rotated_every > 0 and i % exif_rotated_every == exif_rotated_every - 1 else 1
        )
        info = DemoFrame(
            file=name,
            taken_at=taken.isoformat(),
            lat=round(lat, 7),
            lon=round(lon, 7),
            alt_m=round(alt, 2),
            heading_deg=round(heading, 3),
            width=width,
            height=height,
            n_bears=len(fb),
            sun_azimuth_deg=round(sun_az, 2),
            sun_elevation_deg=round(sun_el, 2),
            exif_orientation=orientation,
        )
        stored = Image.fromarray(img)
        if orientation == 6:
            # Orientation 6 = "rotate 90 degrees clockwise to display": store it turned the other way.
            stored = stored.transpose(Image.Transpose.ROTATE_90)
        _jpeg(stored, frames_dir / name, quality=90, exif=_exif_bytes(info, taken))
        frames.append(name)
        infos.append(info)
        bears.extend(replace(b, frame=name) for b in fb)

    web: list[WebPhoto] = []
    for j, (kind, is_bear) in enumerate(web_photo_plan(n_web_bears, n_web_other, seed)):
        rng = np.random.default_rng([seed, 0x3EB, j])
        photo, box, meta = render_web_photo(rng, kind, is_bear)
        name = f"web_{j:04d}.jpg"
        _jpeg(Image.fromarray(photo), web_dir / name, quality=meta["quality"])
        web.append(
            WebPhoto(
                file=name,
                is_bear=is_bear,
                kind=kind,
                box=box,
                source_url=meta["source_url"],
                licence=meta["licence"],
                author=meta["author"],
                width=photo.shape[1],
                height=photo.shape[0],
            )
        )

    with open(out_dir / "web_images.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "source_url", "licence", "author"])
        for p in web:
            writer.writerow([p.file, p.source_url, p.licence, p.author])

    params = {
        "n_frames": n_frames,
        "width": width,
        "height": height,
        "seed": seed,
        "gsd_cm": gsd_cm,
        "bear_length_m": bear_length_m,
        "bear_frame_fraction": bear_frame_fraction,
        "n_web_bears": n_web_bears,
        "n_web_other": n_web_other,
        "origin_lat": origin_lat,
        "origin_lon": origin_lon,
        "start": start.isoformat(),
        "exif_rotated_every": exif_rotated_every,
    }
    manifest = DemoManifest(
        root=out_dir, frames=frames, bears=bears, web=web, params=params, frame_info=infos
    )
    doc = {
        "format": FORMAT,
        "params": params,
        "frames": [asdict(f) for f in infos],
        "bears": [asdict(b) for b in bears],
        "web": [asdict(w) for w in web],
    }
    tmp = out_dir / "ground_truth.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "ground_truth.json")
    return manifest


def load_manifest(root: Path) -> DemoManifest:
    """Read back what ``generate_demo_survey`` wrote under ``root``."""
    root = Path(root)
    doc = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise ValueError(f"{root}/ground_truth.json is not a {FORMAT} file")
    infos = [DemoFrame(**f) for f in doc["frames"]]
    bears = [DemoBear(**{**b, "box": tuple(b["box"])}) for b in doc["bears"]]
    web = [
        WebPhoto(**{**w, "box": tuple(w["box"]) if w["box"] is not None else None})
        for w in doc["web"]
    ]
    return DemoManifest(
        root=root,
        frames=[f.file for f in infos],
        bears=bears,
        web=web,
        params=doc["params"],
        frame_info=infos,
    )


__all__ = [
    "DemoBear",
    "DemoFrame",
    "DemoManifest",
    "WebPhoto",
    "generate_demo_survey",
    "load_manifest",
    "render_frame",
    "shadow_margin",
]
