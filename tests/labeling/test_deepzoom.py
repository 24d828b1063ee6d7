"""The zoomable view's Deep Zoom pyramid: what OpenSeadragon is told, and the tiles it gets."""

from __future__ import annotations

import io
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeling.deepzoom import (
    DZI_NAMESPACE,
    LevelCache,
    dzi_xml,
    level_size,
    max_level,
    render_tile,
    tile_box,
    tile_grid,
)


def _frame(width: int, height: int) -> Image.Image:
    """A smooth frame with a sharp landmark, so JPEG error stays small and position shows."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack(
        [
            255 * x / width,
            255 * y / height,
            127 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0),
        ],
        axis=-1,
    )
    pixels[10:60, 20:90] = (250, 20, 20)  # a red block near the top-left corner
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def _save(image: Image.Image, path: Path, fmt: str, **options) -> Path:
    image.save(path, fmt, **options)
    return path


class CountingOpener:
    """An ``open_image`` that counts how often the frame is read from storage."""

    def __init__(self, path: Path, delay: float = 0.0) -> None:
        self.path = path
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return open(self.path, "rb")


def _decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _mean_error(a: np.ndarray, b: Image.Image) -> float:
    reference = np.asarray(b.convert("RGB"), dtype=np.float32)
    assert a.shape == reference.shape
    return float(np.abs(a - reference).mean())


# --- Descriptor and geometry ------------------------------------------------------------------


def test_dzi_descriptor_has_the_attributes_openseadragon_reads():
    root = ET.fromstring(dzi_xml(7360, 4912, tile_size=254, overlap=1, fmt="jpeg"))
    assert root.tag == f"{{{DZI_NAMESPACE}}}Image"
    assert root.attrib == {"Format": "jpeg", "Overlap": "1", "TileSize": "254"}
    size = root.find(f"{{{DZI_NAMESPACE}}}Size")
    assert size is not None and size.attrib == {"Width": "7360", "Height": "4912"}


def test_dzi_descriptor_rejects_an_unknown_tile_format():
    with pytest.raises(ValueError):
        dzi_xml(100, 100, fmt="gif")


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(1, 1, 0), (2, 1, 1), (512, 300, 9), (513, 300, 10), (700, 500, 10), (7360, 4912, 13)],
)
def test_max_level_is_the_first_power_of_two_that_holds_the_long_side(width, height, expected):
    assert max_level(width, height) == expected


def test_levels_halve_rounding_up_down_to_one_pixel():
    assert level_size(7360, 4912, 13) == (7360, 4912)
    assert level_size(7360, 4912, 12) == (3680, 2456)
    assert level_size(7360, 4912, 3) == (8, 5)  # 7360 / 1024 and 4912 / 1024, rounded up
    assert level_size(7360, 4912, 0) == (1, 1)
    assert level_size(701, 501, 9) == (351, 251)
    with pytest.raises(ValueError):
        level_size(700, 500, 11)
    with pytest.raises(ValueError):
        level_size(700, 500, -1)


@pytest.mark.parametrize(("tile_size", "overlap"), [(254, 1), (100, 3), (64, 0)])
def test_tiles_cover_every_level_exactly_with_the_stated_overlap(tile_size, overlap):
    width, height = 1000, 613
    for level in range(max_level(width, height) + 1):
        level_w, level_h = level_size(width, height, level)
        cols, rows = tile_grid(width, height, level, tile_size)
        cover = np.zeros((level_h, level_w), dtype=np.int32)
        cores = np.zeros_like(cover)
        for row in range(rows):
            for col in range(cols):
                x0, y0, x1, y1 = tile_box(width, height, level, col, row, tile_size, overlap)
                assert 0 <= x0 < x1 <= level_w and 0 <= y0 < y1 <= level_h
                # The core square, widened by the overlap wherever a neighbour exists.
                cx0, cy0 = col * tile_size, row * tile_size
                cx1, cy1 = min(cx0 + tile_size, level_w), min(cy0 + tile_size, level_h)
                assert (x0, y0) == (max(cx0 - overlap, 0), max(cy0 - overlap, 0))
                assert (x1, y1) == (min(cx1 + overlap, level_w), min(cy1 + overlap, level_h))
                cover[y0:y1, x0:x1] += 1
                cores[cy0:cy1, cx0:cx1] += 1
        assert (cover >= 1).all()  # union is the whole level
        assert (cores == 1).all()  # cores partition it
        if overlap == 0:
            assert (cover == 1).all()
        elif cols > 1:
            # Neighbours share exactly 2 * overlap columns along each internal seam.
            seam = tile_size
            assert (cover[:, seam - overlap : seam + overlap] >= 2).all()
            assert (cover[:, seam + overlap : seam + overlap + 1] == 1).all() or rows > 1


@pytest.mark.parametrize(("col", "row"), [(3, 0), (0, 2), (-1, 0)])
def test_a_tile_outside_the_level_is_refused(col, row):
    # 700 x 500 at full size is 3 x 2 tiles of 254.
    with pytest.raises(ValueError):
        tile_box(700, 500, 10, col, row, 254, 1)


# --- Rendering --------------------------------------------------------------------------------


def test_top_level_tile_is_the_frame_itself(tmp_path):
    frame = _frame(700, 500)
    opener = CountingOpener(_save(frame, tmp_path / "frame.png", "PNG"))
    tile = _decode(render_tile(opener, 700, 500, 10, 0, 0, tmp_path / "cache"))
    assert tile.shape == (255, 255, 3)  # 254 + one overlap pixel on the right and bottom
    assert _mean_error(tile, frame.crop((0, 0, 255, 255))) < 3.0

    last = _decode(render_tile(opener, 700, 500, 10, 2, 1, tmp_path / "cache"))
    assert last.shape == (500 - 253, 700 - 507, 3)
    assert _mean_error(last, frame.crop((507, 253, 700, 500))) < 3.0


def test_every_level_renders_with_the_sizes_the_descriptor_promises(tmp_path):
    frame = _frame(700, 500)
    opener = CountingOpener(_save(frame, tmp_path / "frame.jpg", "JPEG", quality=95))
    cache = LevelCache(tmp_path / "cache", opener, 700, 500)
    for level in range(max_level(700, 500) + 1):
        cols, rows = tile_grid(700, 500, level)
        for row in range(rows):
            for col in range(cols):
                x0, y0, x1, y1 = tile_box(700, 500, level, col, row)
                assert _decode(cache.tile(level, col, row)).shape == (y1 - y0, x1 - x0, 3)
    levels = sorted(int(p.name) for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert levels == list(range(11))
    assert len(list((tmp_path / "cache" / "10").glob("*.jpg"))) == 6
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no half-written tiles left behind
    # Levels 0..7 (>= 8x reduced) share one decode; 8, 9 and 10 have one each.
    assert opener.calls == 4


def test_a_reduced_level_from_a_jpeg_looks_like_the_frame_scaled_down(tmp_path):
    frame = _frame(1400, 1000)
    opener = CountingOpener(_save(frame, tmp_path / "frame.jpg", "JPEG", quality=95))
    cache = LevelCache(tmp_path / "cache", opener, 1400, 1000)
    for level in (10, 9, 8):  # 1/2 and 1/4 through the DCT, 1/8 shared with the lower levels
        size = level_size(1400, 1000, level)
        assert size[0] <= 254 * 3
        reference = frame.resize(size, Image.Resampling.LANCZOS)
        x0, y0, x1, y1 = tile_box(1400, 1000, level, 0, 0)
        assert _mean_error(_decode(cache.tile(level, 0, 0)), reference.crop((x0, y0, x1, y1))) < 4.0


def test_second_request_reads_the_cache_without_opening_the_frame(tmp_path):
    opener = CountingOpener(_save(_frame(700, 500), tmp_path / "frame.png", "PNG"))
    first = render_tile(opener, 700, 500, 10, 1, 1, tmp_path / "cache")
    assert opener.calls == 1
    assert render_tile(opener, 700, 500, 10, 1, 1, tmp_path / "cache") == first
    render_tile(opener, 700, 500, 10, 0, 0, tmp_path / "cache")  # same level, other tile
    assert opener.calls == 1
    render_tile(opener, 700, 500, 2, 0, 0, tmp_path / "cache")
    render_tile(opener, 700, 500, 6, 0, 0, tmp_path / "cache")  # shares level 2's render
    assert opener.calls == 2


def test_an_out_of_range_tile_is_refused_without_reading_the_frame(tmp_path):
    opener = CountingOpener(_save(_frame(700, 500), tmp_path / "frame.png", "PNG"))
    with pytest.raises(ValueError):
        render_tile(opener, 700, 500, 10, 5, 0, tmp_path / "cache")
    with pytest.raises(ValueError):
        render_tile(opener, 700, 500, 11, 0, 0, tmp_path / "cache")
    assert opener.calls == 0


def test_concurrent_requests_render_a_level_once(tmp_path):
    opener = CountingOpener(_save(_frame(700, 500), tmp_path / "frame.png", "PNG"), delay=0.2)
    results: list[bytes] = []

    def fetch(col: int) -> None:
        results.append(render_tile(opener, 700, 500, 10, col, 0, tmp_path / "cache"))

    threads = [threading.Thread(target=fetch, args=(col,)) for col in (0, 1, 2, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert opener.calls == 1


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(tmp_path, fmt):
    shown = _frame(700, 500)  # what the camera operator saw
    # Orientation 6: the sensor stored the frame turned a quarter anticlockwise.
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (500, 700)
    exif = Image.Exif()
    exif[0x0112] = 6
    options = {"quality": 95} if fmt == "JPEG" else {}
    path = _save(stored, tmp_path / f"frame.{fmt.lower()}", fmt, exif=exif, **options)
    opener = CountingOpener(path)
    tile = _decode(render_tile(opener, 700, 500, 10, 0, 0, tmp_path / "cache"))
    assert _mean_error(tile, shown.crop((0, 0, 255, 255))) < 3.0
    # The red block is still at the top left in a reduced level (JPEG: decoded through a draft).
    small = _decode(render_tile(opener, 700, 500, 7, 0, 0, tmp_path / "cache"))
    assert small.shape == (63, 88, 3)
    assert small[3:6, 4:9, 0].mean() > 150 and small[3:6, 4:9, 1].mean() < 90


def test_a_frame_that_does_not_match_its_registered_size_is_refused(tmp_path):
    stored = _frame(700, 500).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    opener = CountingOpener(_save(stored, tmp_path / "frame.jpg", "JPEG", exif=exif))
    # 500 x 700 is the stored size; the frame as shown is 700 x 500.
    with pytest.raises(ValueError, match="700 x 500"):
        render_tile(opener, 500, 700, 10, 0, 0, tmp_path / "cache")


def test_a_16_bit_greyscale_tiff_keeps_its_tones(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 300).astype(np.uint16), (200, 1))
    path = tmp_path / "frame.tif"
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    image.save(path, "TIFF")
    tile = _decode(render_tile(CountingOpener(path), 300, 200, 9, 0, 0, tmp_path / "cache"))
    expected = (ramp[:255, :255] >> 8).astype(np.float32)
    assert np.abs(tile[..., 0] - expected).mean() < 3.0


def test_a_path_is_accepted_in_place_of_a_file_object(tmp_path):
    path = _save(_frame(300, 200), tmp_path / "frame.png", "PNG")
    data = render_tile(lambda: str(path), 300, 200, 9, 0, 0, tmp_path / "cache")
    assert _decode(data).shape == (200, 255, 3)
