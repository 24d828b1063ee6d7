"""Check one uploaded frame and record what ingest needs, at the cost of at most one decode.

Django-free: plain values in, a dataclass and thumbnail bytes out. The Django ingest service
stores the facts, skips a SHA-256 already present in the same survey, and saves the thumbnail.

Cost (the reason for the design):
- The file's bytes are read once, hashed in memory and decoded from that copy (files over 128 MiB,
  i.e. large uncompressed TIFFs, are hashed in chunks and re-read instead). Nothing is decoded
  twice.
- A JPEG is decoded in draft mode at the smallest DCT scale (1/2, 1/4 or 1/8) that still covers the
  thumbnail. libjpeg still entropy-decodes every block at any scale, so this single reduced decode
  both validates the whole compressed stream (a truncated or broken stream raises exactly as in a
  full decode; the tests check this) and yields the thumbnail, for a fraction of a full decode's
  time and memory. A 150 MP JPEG therefore needs about 2.4 MP of memory here, not 450 MB.
- PNG and TIFF have no reduced decode: they are decoded in full once (up to 3 bytes a pixel, so
  about 450 MB for a 150 MP RGB frame), which is also their validation.
- Pixel limits are enforced from the header, before any pixel is decoded.

Sizes: ``width`` and ``height`` are as displayed, after the EXIF orientation is applied (what users
see and what a decoder that honours orientation produces); ``stored_size`` gives the raw layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Final

import imagehash
import numpy as np
from PIL import Image, ImageFile

from labeling.ingest.exif import read_exif
from labeling.ingest.formats import (
    SNIFF_BYTES,
    describe_other,
    looks_like_text,
    open_header,
    sniff_format,
)

DEFAULT_MAX_PIXELS: Final = 200_000_000
"""Frames up to this many pixels are accepted; survey frames of 150 MP must always pass."""

_HASH_CHUNK: Final = 1 << 20
_IN_MEMORY_LIMIT: Final = 128 << 20
_PHASH_THUMB: Final = 256  # phash is always taken from a thumbnail this size, whatever thumb_size
_THUMB_QUALITY: Final = 85

# EXIF orientation -> the transpose that shows the frame upright.
_UPRIGHT: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Source = str | os.PathLike[str] | IO[bytes]


class IngestError(Exception):
    """A frame that ingest refuses, with a stable ``code`` and a ``message`` for the survey lead.

    Codes: ``empty``, ``not_an_image``, ``unsupported_format``, ``truncated``, ``corrupt``,
    ``too_large``, ``too_small``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"IngestError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class ImageFacts:
    """What ingest records for one accepted frame.

    ``width``/``height`` are oriented (as displayed). ``captured_at`` is aware UTC when the EXIF
    says which UTC offset the camera clock used (or only GPS time exists), else naive camera-local
    time. Latitude/longitude are decimal degrees (south/west negative), altitude metres (negative
    below sea level). ``phash`` is the 64-bit perceptual hash (hex) of the upright image.
    """

    sha256: str
    width: int
    height: int
    format: str
    captured_at: datetime | None
    latitude: float | None
    longitude: float | None
    altitude_m: float | None
    orientation: int
    size_bytes: int
    camera: str | None
    phash: str

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) as stored in the file, before the EXIF orientation is applied."""
        if self.orientation >= 5:  # 5..8 swap the axes
            return self.height, self.width
        return self.width, self.height

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def probe_image(
    path_or_file: Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = 224,
    thumb_size: int = 256,
) -> tuple[ImageFacts, bytes]:
    """Validate one frame and return its facts and a JPEG thumbnail (upright, within thumb_size²).

    ``path_or_file`` is a path or a binary file object (left open, position undefined after; one
    that cannot seek is read into memory first).
    Raises ``IngestError`` for anything ingest must refuse; each failure concerns this file only.
    """
    with _binary(path_or_file) as stream:
        head = stream.read(SNIFF_BYTES)
        if not head:
            raise IngestError("empty", "the file is empty (0 bytes)")
        fmt = sniff_format(head)
        if fmt is None:
            raise _not_accepted(head)
        sha256, size_bytes, stream = _hashed_source(stream)

        image = _open_checked_header(stream, fmt)
        stored_width, stored_height = image.size
        _check_pixels(image.size, max_pixels)
        if min(stored_width, stored_height) < min_side:
            raise IngestError(
                "too_small",
                f"the image is {stored_width} × {stored_height} px, smaller than one "
                f"{min_side} px tile",
            )

        if fmt != "PNG":
            facts = read_exif(image)
        if fmt == "JPEG":
            # One reduced-scale decode: validates the whole stream and is the thumbnail source.
            draft_box = max(thumb_size, _PHASH_THUMB)
            image.draft(image.mode, (draft_box, draft_box))
        _decode(image, fmt, max_pixels)
        if fmt == "PNG":
            # Pillow finds a PNG's eXIf chunk only once the file has been read through.
            facts = read_exif(image)

        eight_bit = _to_8bit(image)
        hash_source = _upright_thumbnail(eight_bit, facts.orientation, _PHASH_THUMB)
        phash = str(imagehash.phash(hash_source))
        if thumb_size == _PHASH_THUMB:
            thumbnail = _encode_jpeg(hash_source)
        else:
            thumbnail = _encode_jpeg(_upright_thumbnail(eight_bit, facts.orientation, thumb_size))

    width, height = (
        (stored_height, stored_width) if facts.orientation >= 5 else (stored_width, stored_height)
    )
    return (
        ImageFacts(
            sha256=sha256,
            width=width,
            height=height,
            format=fmt,
            captured_at=facts.captured_at,
            latitude=facts.latitude,
            longitude=facts.longitude,
            altitude_m=facts.altitude_m,
            orientation=facts.orientation,
            size_bytes=size_bytes,
            camera=facts.camera,
            phash=phash,
        ),
        thumbnail,
    )


def file_sha256(fileobj: Source) -> str:
    """SHA-256 (hex) of a whole file, read in 1 MiB chunks from its start.

    A file object is read from position 0 and left at position 0.
    """
    with _binary(fileobj) as stream:
        stream.seek(0)
        digest, _ = _hash_stream(stream)
        stream.seek(0)
    return digest


def perceptual_hash(
    path_or_image: Source | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> str:
    """64-bit DCT perceptual hash (ImageHash ``phash``, hex) of the image shown upright.

    Near-duplicates (re-encoded, resized, lightly edited) differ by a few bits; compare with
    ``hamming``. For a file this is the same value ``probe_image`` records (it is computed from the
    same 256 px upright thumbnail); a Pillow image is taken as already upright.
    """
    if isinstance(path_or_image, Image.Image):
        return str(imagehash.phash(_upright_thumbnail(_to_8bit(path_or_image), 1, _PHASH_THUMB)))
    with _binary(path_or_image) as stream:
        head = stream.read(SNIFF_BYTES)
        if not head:
            raise IngestError("empty", "the file is empty (0 bytes)")
        fmt = sniff_format(head)
        if fmt is None:
            raise _not_accepted(head)
        image = _open_checked_header(stream, fmt)
        _check_pixels(image.size, max_pixels)
        orientation = read_exif(image).orientation if fmt != "PNG" else 1
        if fmt == "JPEG":
            image.draft(image.mode, (_PHASH_THUMB, _PHASH_THUMB))
        _decode(image, fmt, max_pixels)
        if fmt == "PNG":
            orientation = read_exif(image).orientation
        hash_source = _upright_thumbnail(_to_8bit(image), orientation, _PHASH_THUMB)
        return str(imagehash.phash(hash_source))


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths: {len(a)} and {len(b)} hex digits")
    return (int(a, 16) ^ int(b, 16)).bit_count()


# --- reading ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _binary(source: Source) -> Iterator[IO[bytes]]:
    """Yield a seekable binary stream; files we open we also close, callers' files stay open."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield handle
        return
    stream = source
    if not (hasattr(stream, "seekable") and stream.seekable()):
        stream = io.BytesIO(stream.read())
    stream.seek(0)
    yield stream


def _hashed_source(stream: IO[bytes]) -> tuple[str, int, IO[bytes]]:
    """SHA-256 and size of the whole stream, and a stream to decode from.

    Files up to ``_IN_MEMORY_LIMIT`` (every realistic JPEG) are read exactly once: hashed in memory
    and decoded from that copy, so a remote storage file is never fetched twice. Larger files
    (uncompressed TIFF) are hashed in chunks and re-read, to avoid holding the bytes next to the
    decoded pixels.
    """
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    if size <= _IN_MEMORY_LIMIT:
        data = stream.read()
        return hashlib.sha256(data).hexdigest(), len(data), io.BytesIO(data)
    digest, size = _hash_stream(stream)
    stream.seek(0)
    return digest, size, stream


def _hash_stream(stream: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _not_accepted(head: bytes) -> IngestError:
    other = describe_other(head)
    if other:
        return IngestError(
            "unsupported_format",
            f"{other} files are not accepted; convert the frame to JPEG, PNG or TIFF",
        )
    if looks_like_text(head):
        kind = (
            "an HTML page"
            if b"<html" in head.lower() or head.lstrip().startswith(b"<!")
            else "text"
        )
        return IngestError("not_an_image", f"the file is {kind}, not an image")
    return IngestError("not_an_image", "the file is not an image (expected JPEG, PNG or TIFF)")


def _open_checked_header(stream: IO[bytes], fmt: str) -> ImageFile.ImageFile:
    try:
        image = open_header(stream, fmt)
    except Exception as exc:
        raise _decode_error(fmt, exc, in_header=True) from exc
    if fmt == "TIFF":
        _refuse_raw_tiff(image)
    return image


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse a decompression bomb from its header, before a single pixel is decoded."""
    width, height = size
    pixels = width * height
    if pixels > max_pixels:
        raise IngestError(
            "too_large",
            f"the image is {width} × {height} px ({pixels / 1e6:.1f} MP), "
            f"above the {max_pixels / 1e6:g} MP limit for one frame",
        )


def _refuse_raw_tiff(image: ImageFile.ImageFile) -> None:
    # DNG and NEF/ARW-style raws are TIFF containers whose first page is a small preview; ingesting
    # that preview as the frame would silently lose the survey image.
    tags = getattr(image, "tag_v2", {})
    if 0xC612 in tags:  # DNGVersion
        raise IngestError(
            "unsupported_format",
            "DNG camera raw files are not accepted; export the frame to TIFF or JPEG",
        )
    subfile_type = tags.get(0x00FE, 0)  # NewSubfileType; bit 0 = reduced-resolution copy
    if isinstance(subfile_type, int) and subfile_type & 1:
        raise IngestError(
            "unsupported_format",
            "the TIFF's first page is a reduced-resolution preview (a camera raw file?); "
            "export the full frame to TIFF or JPEG",
        )


def _decode(image: ImageFile.ImageFile, fmt: str, max_pixels: int) -> None:
    try:
        with _pillow_limit_at_least(max_pixels):
            image.load()
    except Exception as exc:
        raise _decode_error(fmt, exc, in_header=False) from exc


def _decode_error(fmt: str, exc: BaseException, *, in_header: bool) -> IngestError:
    text = " ".join(str(part) for part in (exc, exc.__cause__) if part).lower()
    truncated = isinstance(exc, EOFError) or any(
        word in text for word in ("truncated", "requires a buffer", "unpack requires", "eof")
    )
    if truncated:
        return IngestError(
            "truncated", f"the {fmt} is truncated: the file ends before the image data does"
        )
    if any(
        word in text
        for word in ("not available", "unknown pixel mode", "not supported", "unsupported")
    ):
        return IngestError(
            "unsupported_format",
            f"this kind of {fmt} cannot be read ({exc}); convert the frame to 8-bit JPEG or TIFF",
        )
    where = "header" if in_header else "image data"
    return IngestError("corrupt", f"the {fmt} is corrupt: its {where} cannot be decoded ({exc})")


# Pillow's own decompression-bomb check is a process-wide setting and fires inside TIFF decoding.
# probe_image already enforced its own limit from the header, so for the duration of a decode it
# lifts Pillow's limit to at least that value (never lowers it), counting concurrent users so the
# original setting is restored when the last one finishes.
_limit_lock = threading.Lock()
_limit_users = 0
_limit_saved: int | None = None


@contextlib.contextmanager
def _pillow_limit_at_least(max_pixels: int) -> Iterator[None]:
    global _limit_users, _limit_saved
    with _limit_lock:
        if _limit_users == 0:
            _limit_saved = Image.MAX_IMAGE_PIXELS
        _limit_users += 1
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


# --- thumbnail -------------------------------------------------------------------------------


def _upright_thumbnail(image: Image.Image, orientation: int, box: int) -> Image.Image:
    """A new 8-bit L or RGB image within box × box, aspect kept, shown upright.

    ``image`` must already be 8-bit (see ``_to_8bit``) and is not modified.
    """
    width, height = image.size
    scale = min(box / width, box / height, 1.0)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: a cheap box reduce first, then bicubic; matters for full-size PNG/TIFF frames.
    picture = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    # Transposing after the resize touches only the small image.
    transpose = _UPRIGHT.get(orientation)
    return picture.transpose(transpose) if transpose is not None else picture


def _to_8bit(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-12) * 255.0
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=_THUMB_QUALITY)
    return buffer.getvalue()
