"""The synthetic demo survey: deterministic, honest ground truth, bears at the survey's scale,
readable EXIF, no trivial cue that gives the bears away, and usable Web photos."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from labeling.demo.synth import generate_demo_survey, load_manifest, render_frame

SMALL = dict(n_frames=4, width=480, height=360, n_web_bears=5, n_web_other=7)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _manifest_dict(m) -> dict:
    d = asdict(m)
    d.pop("root")
    return d


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return generate_demo_survey(root, seed=3, **SMALL)


def test_same_arguments_give_identical_files_and_another_seed_differs(survey, tmp_path):
    again = generate_demo_survey(tmp_path / "again", seed=3, **SMALL)
    assert _digests(survey.root) == _digests(again.root)
    assert _manifest_dict(survey) == _manifest_dict(again)

    other = generate_demo_survey(tmp_path / "other", seed=4, **SMALL)
    a, b = _digests(survey.root), _digests(other.root)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.startswith("frames/"))


def test_manifest_reads_back_and_frames_are_split_between_empty_and_1_to_3_bears(survey):
    assert _manifest_dict(load_manifest(survey.root)) == _manifest_dict(survey)
    per_frame = [len(survey.bears_in(f)) for f in survey.frames]
    assert sorted(per_frame).count(0) == 2  # bear_frame_fraction 0.5 of 4 frames
    assert all(1 <= n <= 3 for n in per_frame if n)
    assert [f.n_bears for f in survey.frame_info] == per_frame


def test_refuses_to_write_into_a_non_empty_folder_unless_told(survey):
    with pytest.raises(FileExistsError):
        generate_demo_survey(survey.root, seed=3, **SMALL)


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_ground_truth_is_exactly_what_was_drawn(seed):
    img, bears = render_frame(640, 480, seed=seed, n_bears=3)
    bg, same = render_frame(640, 480, seed=seed, n_bears=3, draw_bears=False)
    assert same == bears and len(bears) == 3
    changed = np.any(img != bg, axis=2)

    allowed = np.zeros_like(changed)
    for b in bears:
        x0, y0, x1, y1 = b.box
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480, "bears stay fully inside the frame"
        assert x0 <= b.x < x1 and y0 <= b.y < y1
        m = b.shadow_margin_px
        assert m <= 0.6 * b.length_px + 6  # "a small margin": the shadow, no more
        allowed[max(y0 - m, 0) : y1 + m, max(x0 - m, 0) : x1 + m] = True
        # the body itself is drawn: most of its tight box changed
        assert changed[y0:y1, x0:x1].mean() > 0.3
    assert not (changed & ~allowed).any(), "pixels changed outside every bear's box + shadow margin"

    for i, a in enumerate(bears):  # bears never overlap one another
        for b in bears[i + 1 :]:
            assert (
                a.box[2] <= b.box[0]
                or b.box[2] <= a.box[0]
                or a.box[3] <= b.box[1]
                or b.box[3] <= a.box[1]
            )


def test_bear_size_follows_the_ground_sample_distance():
    lengths: dict[float, list[float]] = {2.4: [], 1.2: []}
    extents: dict[float, list[float]] = {2.4: [], 1.2: []}
    for gsd in lengths:
        for seed in range(6):
            _, bears = render_frame(900, 700, seed=(11, seed), gsd_cm=gsd, n_bears=2)
            for b in bears:
                expected = 2.0 * 100 / gsd  # a 2.0 m bear: 83 px at 2.4 cm/px
                if b.age_class == "adult":
                    assert 0.9 * expected <= b.length_px <= 1.15 * expected
                else:  # subadults and cubs are smaller, never larger
                    assert 0.5 * expected <= b.length_px < 0.9 * expected
                # The drawn body matches the stated length: the box's long side is ~the length
                # for an outstretched bear at any heading, shorter for curled or sitting ones.
                side = max(b.box[2] - b.box[0], b.box[3] - b.box[1])
                assert 0.55 * b.length_px <= side <= 1.1 * b.length_px, (b.pose, side, b.length_px)
                lengths[gsd].append(b.length_px)
                extents[gsd].append(side)
    # halving the gsd doubles the bears on screen
    assert 1.6 < np.median(extents[1.2]) / np.median(extents[2.4]) < 2.5
    assert len({b for b in lengths[2.4]}) > 5  # sizes vary


def _gps_decimal(dms, ref) -> float:
    d, m, s = (float(v) for v in dms)
    value = d + m / 60 + s / 3600
    return -value if ref in ("S", "W") else value


def test_frames_carry_exif_time_and_gps_and_ground_truth_lives_outside_frames(survey):
    root = survey.root
    assert (root / "ground_truth.json").is_file()
    assert (
        not list((root / "frames").glob("*.json"))
        and not (root / "frames" / "ground_truth.json").exists()
    )
    json.loads((root / "ground_truth.json").read_text())  # valid JSON

    positions = []
    for info in survey.frame_info:
        with Image.open(root / "frames" / info.file) as im:
            assert im.format == "JPEG" and im.size == (info.width, info.height)
            exif = im.getexif()
            taken = exif.get_ifd(0x8769)[0x9003]
            gps = exif.get_ifd(0x8825)
        assert taken == info.taken_at[:19].replace("-", ":").replace("T", " ")
        lat, lon = _gps_decimal(gps[2], gps[1]), _gps_decimal(gps[4], gps[3])
        assert lat == pytest.approx(info.lat, abs=1e-6) and lon == pytest.approx(info.lon, abs=1e-6)
        assert 70 < lat < 80 and -100 < lon < -90  # near the default origin, 74.5 N 95 W
        assert float(gps[6]) == pytest.approx(info.alt_m, abs=0.01)
        positions.append((lat, lon, taken))
    assert len(set(positions)) == len(positions), "every frame has its own place and time"
    assert [p[2] for p in positions] == sorted(p[2] for p in positions)


def test_rotated_frames_hold_ground_truth_in_oriented_coordinates(tmp_path):
    kw = dict(
        n_frames=2,
        width=480,
        height=360,
        n_web_bears=0,
        n_web_other=0,
        seed=8,
        bear_frame_fraction=1.0,
    )
    plain = generate_demo_survey(tmp_path / "plain", **kw)
    turned = generate_demo_survey(tmp_path / "turned", exif_rotated_every=2, **kw)
    assert [f.exif_orientation for f in turned.frame_info] == [1, 6]
    assert turned.bears == plain.bears
    with Image.open(turned.root / "frames" / "frame_0001.jpg") as im:
        assert im.size == (360, 480)  # stored sideways
        upright = np.asarray(ImageOps.exif_transpose(im), np.float32)
    with Image.open(plain.root / "frames" / "frame_0001.jpg") as im:
        reference = np.asarray(im, np.float32)
    assert upright.shape == reference.shape
    assert np.abs(upright - reference).mean() < 3.0  # same picture, up to JPEG noise


def test_bears_are_not_the_only_bright_or_yellowish_things():
    """A detector that thresholds one cue (brightness, or a straw-yellow hue) must drown in false
    alarms. We take the threshold that keeps 75 % of the bears' fur pixels and require that at
    least three pixels in four above it lie away from any bear (pixel precision <= 0.25), and that
    a sizeable share of bear-free 224 px tiles holds a bear-sized yellowish patch."""
    ys, vs, fur_y, fur_v, masks = [], [], [], [], []
    for s in range(10):
        n = 1 + s % 3 if s % 2 == 0 else 0  # half the frames hold no bear
        img, bears = render_frame(800, 600, seed=(7, s), n_bears=n)
        bg, _ = render_frame(800, 600, seed=(7, s), n_bears=n, draw_bears=False)
        f, g = img.astype(np.float32), bg.astype(np.float32)
        yellow = (f[..., 0] + f[..., 1]) / 2 - f[..., 2]
        bright = f.mean(axis=2)
        fur = np.zeros(yellow.shape, bool)
        near = np.zeros(yellow.shape, bool)
        for b in bears:
            x0, y0, x1, y1 = b.box
            win = (slice(y0, y1), slice(x0, x1))
            moved = np.abs(f[win] - g[win]).max(axis=2) > 12
            g_yellow = (g[win][..., 0] + g[win][..., 1]) / 2 - g[win][..., 2]
            # fur is yellower than the snow it covers; a shadow is bluer
            fur[win] |= moved & (yellow[win] > g_yellow)
            m = b.shadow_margin_px
            near[max(y0 - m, 0) : y1 + m, max(x0 - m, 0) : x1 + m] = True
        ys.append(yellow)
        vs.append(bright)
        masks.append((fur, near))
        fur_y.append(yellow[fur])
        fur_v.append(bright[fur])
    fur_y, fur_v = np.concatenate(fur_y), np.concatenate(fur_v)
    assert fur_y.size > 5000
    for name, values, fur_values in (("yellowness", ys, fur_y), ("brightness", vs, fur_v)):
        thr = np.percentile(fur_values, 25)
        hits_on_bears = sum(
            int((v >= thr)[fur].sum()) for v, (fur, _) in zip(values, masks, strict=True)
        )
        hits_elsewhere = sum(
            int((v >= thr)[~near].sum()) for v, (_, near) in zip(values, masks, strict=True)
        )
        precision = hits_on_bears / (hits_on_bears + hits_elsewhere)
        assert precision <= 0.25, f"{name} alone finds bears with precision {precision:.2f}"

    # A bear shows ~1 000 fur pixels at or above that yellowness; count bear-free tiles with at
    # least half that many. Stains, dirty ice and cream rubble must put them in >= 10 % of tiles.
    thr = np.percentile(fur_y, 25)
    tiles = []
    for yellow, (_, near) in zip(ys, masks, strict=True):
        for ty in range(0, 600 - 223, 224):
            for tx in range(0, 800 - 223, 224):
                if not near[ty : ty + 224, tx : tx + 224].any():
                    tiles.append(int((yellow[ty : ty + 224, tx : tx + 224] >= thr).sum()))
    n_bears = sum(1 + s % 3 for s in range(10) if s % 2 == 0)
    per_bear = fur_y.size * 0.75 / n_bears
    assert len(tiles) > 30
    assert np.mean(np.array(tiles) >= per_bear / 2) >= 0.10


def test_web_photos_have_boxes_only_for_bears_and_the_csv_lists_them_all(survey):
    root = survey.root
    assert len(survey.web) == 12
    kinds = {p.kind for p in survey.web}
    assert {"side", "closeup", "aerial"} <= kinds
    assert {"snowscape", "other-seal", "other-dog"} <= kinds
    for p in survey.web:
        with Image.open(root / "web" / p.file) as im:
            w, h = im.size
            assert 400 <= max(w, h) <= 900 and (w, h) == (p.width, p.height)
            assert 0x8825 not in im.getexif()  # Web photos carry no GPS
        if p.is_bear:
            x0, y0, x1, y1 = p.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert (x1 - x0) * (y1 - y0) >= 100
        else:
            assert p.box is None
        assert p.source_url.startswith("https://example.org/") and p.licence and p.author
    assert sum(p.is_bear for p in survey.web) == 5

    with open(root / "web_images.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == ["file", "source_url", "licence", "author"]
    assert sorted(r["file"] for r in rows) == sorted(p.name for p in (root / "web").glob("*.jpg"))
    by_file = {p.file: p for p in survey.web}
    assert all(r["source_url"] == by_file[r["file"]].source_url for r in rows)
