"""Deep Zoom (DZI) pyramids for the zoomable image view, rendered lazily and cached on disk.

Django-free. A view serves ``dzi_xml`` as ``<name>.dzi`` and each tile as
``<name>_files/<level>/<col>_<row>.jpeg`` (the URL layout OpenSeadragon derives from a ``.dzi``
URL); ``LevelCache.tile`` returns the tile's bytes.

Geometry (the Deep Zoom format, as OpenSeadragon reads it):

- ``max_level = ceil(log2(max(width, height)))``; level ``max_level`` is the frame at full size,
  each level below is half the one above, rounded up, down to level 0, which is 1 x 1.
- A level is cut into ``ceil(w / tile_size)`` x ``ceil(h / tile_size)`` tiles. Tile ``(col, row)``
  covers the core square ``[col * tile_size, (col + 1) * tile_size)`` (clipped to the level),
  widened by ``overlap`` pixels on every side that has a neighbour, so neighbouring tiles share
  ``2 * overlap`` pixels and the cores partition the level.

Rendering invariants:

- A tile request never decodes the frame once per tile. The first request for a level renders
  that whole level once and writes every tile of it; later requests read a file. Levels at least
  8x below full size are rendered together from a single decode (JPEG's DCT scaling reaches 1/8),
  so a frame is decoded at most four times over the life of its cache, whatever the viewer asks.
- Tile files appear atomically (temporary file + ``os.replace``): a reader sees a whole tile or
  none. Rendering a level holds an exclusive ``fcntl.flock`` on ``cache_dir/.lock-<level>``, so
  concurrent requests (threads or processes on one host) render it once; the others wait, then
  read. ``cache_dir`` must be on a local file system and specific to one frame's content and one
  (tile_size, overlap, quality): nothing here detects a stale cache.
- EXIF orientation is applied; ``width`` and ``height`` are those of the displayed (oriented) frame
  and must match the file, or rendering raises ``ValueError``.
- At most one level image is held at a time, plus one transient copy while rotating or resizing
  it: rendering the full level of a 90 MP frame peaks near 2 x 270 MB.
"""

from __future__ import annotations

import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
from PIL import Image

from labeling.ingest.formats import SNIFF_BYTES, open_header, sniff_format

DZI_NAMESPACE: Final = "http://schemas.microsoft.com/deepzoom/2008"
DEFAULT_TILE_SIZE: Final = 254  # 254 + 2 x 1 overlap = 256 px tiles, libvips' default too
DEFAULT_OVERLAP: Final = 1
DEFAULT_QUALITY: Final = 85
TILE_FORMATS: Final = ("jpeg", "jpg", "png")

# JPEG decoders scale by 1/2, 1/4 or 1/8 during the inverse DCT; every level at least 8x below
# full size comes from one 1/8 decode, so this is also how many levels render on their own.
_DRAFT_DEPTH: Final = 3
_ORIENTATION_TAG: Final = 0x0112
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES: Final = frozenset({5, 6, 7, 8})

ImageSource = Callable[[], BinaryIO | str | os.PathLike[str]]
"""Returns the frame as a binary file object (closed here after use) or a path."""


# --- Geometry ----------------------------------------------------------------------------------


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")


def _check_tiling(tile_size: int, overlap: int) -> None:
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    if overlap < 0:
        raise ValueError(f"overlap must not be negative, got {overlap}")


def max_level(width: int, height: int) -> int:
    """The full-resolution level: ``ceil(log2(max(width, height)))`` (0 for a 1 x 1 image).

    Computed on integers, which agrees with OpenSeadragon's floating-point formula for every side
    up to 200 000 px (checked exhaustively).
    """
    _check_size(width, height)
    return (max(width, height) - 1).bit_length()


def level_size(width: int, height: int, level: int) -> tuple[int, int]:
    """Size of ``level``: the full size divided by ``2 ** (max_level - level)``, rounded up."""
    top = max_level(width, height)
    if not 0 <= level <= top:
        raise ValueError(f"level {level} is outside 0..{top}")
    scale = 1 << (top - level)
    return (width + scale - 1) // scale, (height + scale - 1) // scale


def tile_grid(
    width: int, height: int, level: int, tile_size: int = DEFAULT_TILE_SIZE
) -> tuple[int, int]:
    """How many tiles ``(cols, rows)`` cut ``level``."""
    _check_tiling(tile_size, 0)
    level_w, level_h = level_size(width, height, level)
    return -(-level_w // tile_size), -(-level_h // tile_size)


def tile_box(
    width: int,
    height: int,
    level: int,
    col: int,
    row: int,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (exclusive end) of tile ``(col, row)`` in ``level``'s pixels.

    Raises ValueError for a level or tile outside the pyramid.
    """
    _check_tiling(tile_size, overlap)
    level_w, level_h = level_size(width, height, level)
    cols, rows = -(-level_w // tile_size), -(-level_h // tile_size)
    if not (0 <= col < cols and 0 <= row < rows):
        raise ValueError(f"tile ({col}, {row}) is outside level {level}'s {cols} x {rows} tiles")
    x0 = max(col * tile_size - overlap, 0)
    y0 = max(row * tile_size - overlap, 0)
    x1 = min((col + 1) * tile_size + overlap, level_w)
    y1 = min((row + 1) * tile_size + overlap, level_h)
    return x0, y0, x1, y1


def dzi_xml(
    width: int,
    height: int,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    fmt: str = "jpeg",
) -> str:
    """The ``.dzi`` descriptor OpenSeadragon reads. ``fmt`` is the tiles' URL extension;
    ``LevelCache`` always produces JPEG, so serve its tiles with "jpeg" or "jpg"."""
    _check_size(width, height)
    _check_tiling(tile_size, overlap)
    if fmt not in TILE_FORMATS:
        raise ValueError(f"fmt must be one of {TILE_FORMATS}, got {fmt!r}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="{DZI_NAMESPACE}" Format="{fmt}" Overlap="{overlap}" TileSize="{tile_size}">'
        f'<Size Width="{width}" Height="{height}"/></Image>\n'
    )


# --- Rendering ---------------------------------------------------------------------------------


class LevelCache:
    """Tiles of one frame, rendered a level at a time into ``cache_dir/<level>/<col>_<row>.jpg``.

    ``open_image`` returns the frame as a binary file object (closed here after use) or a path;
    it is called only when a level has to be rendered, so a warm cache never touches storage.
    """

    def __init__(
        self,
        cache_dir: Path,
        open_image: ImageSource,
        width: int,
        height: int,
        *,
        tile_size: int = DEFAULT_TILE_SIZE,
        overlap: int = DEFAULT_OVERLAP,
        quality: int = DEFAULT_QUALITY,
    ) -> None:
        _check_size(width, height)
        _check_tiling(tile_size, overlap)
        self.cache_dir = Path(cache_dir)
        self.open_image = open_image
        self.width = width
        self.height = height
        self.tile_size = tile_size
        self.overlap = overlap
        self.quality = quality
        self.max_level = max_level(width, height)

    def tile_path(self, level: int, col: int, row: int) -> Path:
        return self.cache_dir / str(level) / f"{col}_{row}.jpg"

    def tile_file(self, level: int, col: int, row: int) -> Path:
        """Path of the tile's JPEG file, rendering its level first if needed.

        Raises ValueError for a tile outside the pyramid before anything is opened.
        """
        tile_box(self.width, self.height, level, col, row, self.tile_size, self.overlap)
        path = self.tile_path(level, col, row)
        if path.exists():
            return path
        base = self._render_base(level)
        with self._locked(base):
            # Another request may have rendered it while this one waited for the lock.
            if not path.exists():
                self._render_from(base)
        return path

    def tile(self, level: int, col: int, row: int) -> bytes:
        """The tile's JPEG bytes (see ``tile_file``)."""
        return self.tile_file(level, col, row).read_bytes()

    @property
    def _low_top(self) -> int:
        """Highest of the levels that share one render (may be negative: no shared levels)."""
        return self.max_level - _DRAFT_DEPTH

    def _render_base(self, level: int) -> int:
        """The level whose render also produces ``level``."""
        return self._low_top if level <= self._low_top else level

    @contextmanager
    def _locked(self, base: int) -> Iterator[None]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f".lock-{base}", "a+b") as lock:
            # flock, not lockf: flock conflicts between threads of one process too.
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _render_from(self, base: int) -> None:
        image = _decode_level(self.open_image, self.width, self.height, *self._size(base))
        self._write_tiles(base, image)
        if base == self._low_top:
            # The shared low levels: halve the small image down to 1 x 1, dropping each level
            # once the next is made.
            for level in range(base - 1, -1, -1):
                image = image.resize(self._size(level), Image.Resampling.LANCZOS)
                self._write_tiles(level, image)

    def _size(self, level: int) -> tuple[int, int]:
        return level_size(self.width, self.height, level)

    def _write_tiles(self, level: int, image: Image.Image) -> None:
        folder = self.cache_dir / str(level)
        folder.mkdir(parents=True, exist_ok=True)
        cols, rows = tile_grid(self.width, self.height, level, self.tile_size)
        for row in range(rows):
            for col in range(cols):
                box = tile_box(
                    self.width, self.height, level, col, row, self.tile_size, self.overlap
                )
                buffer = io.BytesIO()
                image.crop(box).save(buffer, "JPEG", quality=self.quality)
                _write_atomic(self.tile_path(level, col, row), buffer.getvalue())


def render_tile(
    open_image: ImageSource,
    width: int,
    height: int,
    level: int,
    col: int,
    row: int,
    cache_dir: Path,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    quality: int = DEFAULT_QUALITY,
) -> bytes:
    """JPEG bytes of one tile, from ``cache_dir`` or rendered into it (see ``LevelCache``)."""
    cache = LevelCache(
        cache_dir, open_image, width, height, tile_size=tile_size, overlap=overlap, quality=quality
    )
    return cache.tile(level, col, row)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def _opened(open_image: ImageSource) -> Iterator[Image.Image]:
    source = open_image()
    stream: BinaryIO = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source
    try:
        stream.seek(0)
        fmt = sniff_format(stream.read(SNIFF_BYTES))
        if fmt is None:
            raise ValueError("not a JPEG, PNG or TIFF file")
        # open_header skips Pillow's global decompression-bomb check (90 MP frames trip its
        # warning); the size check against the caller's ingested dimensions stands in for it.
        yield open_header(stream, fmt)
    finally:
        stream.close()


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(_ORIENTATION_TAG, 1)
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if number in _TRANSPOSE else 1


def _decode_level(
    open_image: ImageSource, width: int, height: int, level_w: int, level_h: int
) -> Image.Image:
    """Decode the frame straight to ``level_w x level_h`` RGB, oriented for display."""
    with _opened(open_image) as image:
        orientation = _orientation(image)
        swaps = orientation in _SWAPS_AXES
        stored_w, stored_h = image.size
        shown = (stored_h, stored_w) if swaps else (stored_w, stored_h)
        if shown != (width, height):
            raise ValueError(
                f"the file is {shown[0]} x {shown[1]} after EXIF orientation, "
                f"not the {width} x {height} it was registered with"
            )
        # A JPEG decodes at the smallest DCT scale (1/2, 1/4, 1/8) still at least this big;
        # other formats ignore the draft and decode in full.
        image.draft("RGB", (level_h, level_w) if swaps else (level_w, level_h))
        image.load()
        if orientation in _TRANSPOSE:
            image = image.transpose(_TRANSPOSE[orientation])
        image = _to_rgb(image)
        if image.size != (level_w, level_h):
            image = image.resize((level_w, level_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16"):
        # Pillow's I;16 -> L conversion clips at 255, which would turn a 16-bit frame white.
        eight_bit = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(eight_bit, "L").convert("RGB")
    return image.convert("RGB")
