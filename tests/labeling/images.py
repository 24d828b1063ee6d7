"""Small test images, made in memory: good frames with EXIF, and each kind of bad upload.

Import as ``from tests.labeling.images import ...``. Every helper returns ``bytes`` (write them
with ``write(path, data)``) and is deterministic for a given seed. Nothing here touches the network.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

__all__ = [
    "bomb_png",
    "corrupt_jpeg",
    "dms",
    "frame_image",
    "gif_bytes",
    "html_page",
    "jpeg_bytes",
    "large_blank_jpeg",
    "make_exif",
    "png_bytes",
    "text_file",
    "tiff_bytes",
    "tiny_jpeg",
    "truncated_jpeg",
    "write",
    "zero_byte",
]


def write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and return it as a Path."""
    path = Path(path)
    path.write_bytes(data)
    return path


def frame_image(width: int = 640, height: int = 480, *, seed: int = 0) -> Image.Image:
    """Smooth RGB noise with a little grain: compresses like a photograph, not like a flat card."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    grain = rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    pixels = np.clip(np.asarray(smooth, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def dms(value: float, seconds_denominator: int = 10_000) -> tuple[IFDRational, ...]:
    """|value| as EXIF degrees/minutes/seconds rationals (seconds to 1/10 000 s, ~3 mm)."""
    # Count whole steps of the smallest unit so that rounding carries into minutes and degrees.
    steps = round(abs(value) * 3600 * seconds_denominator)
    degrees, rest = divmod(steps, 3600 * seconds_denominator)
    minutes, seconds = divmod(rest, 60 * seconds_denominator)
    return (
        IFDRational(degrees, 1),
        IFDRational(minutes, 1),
        IFDRational(seconds, seconds_denominator),
    )


def make_exif(
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    altitude_m: float | None = None,
    captured_at: datetime | str | None = None,
    offset: str | None = None,
    subsec: str | None = None,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
) -> Image.Exif:
    """An EXIF block with the given GPS position (decimal degrees; S/W negative), altitude
    (metres; negative writes GPSAltitudeRef 1 = below sea level), DateTimeOriginal (+ optional
    OffsetTimeOriginal like "-05:00" and SubSecTimeOriginal), Orientation, Make and Model."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    if captured_at is not None or offset is not None or subsec is not None:
        sub = exif.get_ifd(0x8769)
        if captured_at is not None:
            text = (
                captured_at.strftime("%Y:%m:%d %H:%M:%S")
                if isinstance(captured_at, datetime)
                else captured_at
            )
            sub[0x9003] = text
        if offset is not None:
            sub[0x9011] = offset
        if subsec is not None:
            sub[0x9291] = subsec
    if latitude is not None or longitude is not None or altitude_m is not None:
        gps = exif.get_ifd(0x8825)
        gps[0] = b"\x02\x03\x00\x00"  # GPSVersionID 2.3
        if latitude is not None:
            gps[1] = "S" if latitude < 0 else "N"
            gps[2] = dms(latitude)
        if longitude is not None:
            gps[3] = "W" if longitude < 0 else "E"
            gps[4] = dms(longitude)
        if altitude_m is not None:
            gps[5] = b"\x01" if altitude_m < 0 else b"\x00"
            gps[6] = IFDRational(round(abs(altitude_m) * 1000), 1000)
    return exif


def jpeg_bytes(
    width: int = 640,
    height: int = 480,
    *,
    quality: int = 90,
    seed: int = 0,
    exif: Image.Exif | None = None,
    image: Image.Image | None = None,
    progressive: bool = False,
) -> bytes:
    """A baseline (or progressive) JPEG of smooth noise, optionally with an EXIF block."""
    picture = image if image is not None else frame_image(width, height, seed=seed)
    buffer = io.BytesIO()
    options: dict = {"quality": quality, "progressive": progressive}
    if exif is not None:
        options["exif"] = exif.tobytes()  # bytes: Pillow skips an Exif holding only sub-IFDs
    picture.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def png_bytes(
    width: int = 320,
    height: int = 240,
    *,
    mode: str = "RGB",
    seed: int = 0,
    exif: Image.Exif | None = None,
) -> bytes:
    """A PNG of smooth noise in ``mode`` ("RGB", "L", "RGBA", "P", "I;16")."""
    picture = frame_image(width, height, seed=seed)
    if mode == "I;16":
        wide = (np.asarray(picture.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        picture = Image.fromarray(wide)  # uint16 greyscale -> mode "I;16"
    elif mode != "RGB":
        picture = picture.convert(mode)
    buffer = io.BytesIO()
    options = {"exif": exif.tobytes()} if exif is not None else {}
    picture.save(buffer, "PNG", **options)
    return buffer.getvalue()


def tiff_bytes(
    width: int = 320,
    height: int = 240,
    *,
    compression: str | None = None,
    seed: int = 0,
    exif: Image.Exif | None = None,
) -> bytes:
    """A TIFF of smooth noise (uncompressed unless ``compression`` is e.g. "tiff_lzw")."""
    buffer = io.BytesIO()
    options: dict = {}
    if compression:
        options["compression"] = compression
    if exif is not None:
        options["exif"] = exif.tobytes()  # bytes: Pillow skips an Exif holding only sub-IFDs
    frame_image(width, height, seed=seed).save(buffer, "TIFF", **options)
    return buffer.getvalue()


def tiny_jpeg(width: int = 200, height: int = 150) -> bytes:
    """A valid JPEG smaller than one 224 px tile."""
    return jpeg_bytes(width, height)


def truncated_jpeg(fraction: float = 0.6, *, width: int = 640, height: int = 480) -> bytes:
    """A valid JPEG cut after ``fraction`` of its bytes (an interrupted upload or copy)."""
    data = jpeg_bytes(width, height)
    return data[: int(len(data) * fraction)]


def corrupt_jpeg(width: int = 640, height: int = 480) -> bytes:
    """A JPEG of the right length whose Huffman tables are garbage, so its data cannot decode.

    (Flipped bits inside the compressed data are not a reliable "corrupt" input: libjpeg, and so
    any decoder built on it, decodes those to wrong pixels without an error.)
    """
    data = bytearray(jpeg_bytes(width, height))
    start = data.index(b"\xff\xc4") + 5  # first DHT segment: skip marker, length, class/id
    data[start : start + 16] = b"\xff" * 16  # code-length counts that no table can satisfy
    return bytes(data)


def zero_byte() -> bytes:
    return b""


def text_file() -> bytes:
    return b"survey notes: frames 1-200 flown at 120 m, overcast\n"


def html_page() -> bytes:
    return b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n"


def gif_bytes(width: int = 300, height: int = 300) -> bytes:
    """A GIF: a real image in a format ingest does not accept."""
    buffer = io.BytesIO()
    frame_image(width, height).convert("P").save(buffer, "GIF")
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def bomb_png(width: int = 20_000, height: int = 20_000, *, complete: bool = False) -> bytes:
    """A decompression bomb: a 1-bit PNG whose header claims width × height pixels.

    With ``complete=False`` the file holds only the header and a few rows (a few hundred bytes);
    with ``complete=True`` it holds every row, all zeros, compressed to ~0.1 % of the
    ``height * (width/8 + 1)`` bytes that a decoder would inflate.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    rows = height if complete else min(height, 4)
    parts = [compressor.compress(row) for _ in range(rows)]
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def large_blank_jpeg(width: int = 12_000, height: int = 12_500) -> bytes:
    """A valid, uniformly grey, greyscale baseline JPEG of any size, built by hand in ~w*h/256 bytes.

    Each 8×8 block is coded as "DC difference 0, end of block" with one-symbol Huffman tables, i.e.
    two bits a block, so a 150 MP frame costs ~0.6 MB and no large buffer to create. Decoders must
    still walk every block, so it exercises the real decode path at full scale.
    """
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = 2 * blocks
    scan = bytearray(b"\x00" * ((bits + 7) // 8))
    if bits % 8:
        scan[-1] = (1 << (8 - bits % 8)) - 1  # pad the final byte with 1 bits, as JPEG requires

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    one_symbol_table = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, symbol 0
    return b"".join(
        [
            b"\xff\xd8",
            segment(0xDB, b"\x00" + b"\x01" * 64),  # quantisation table 0, all ones
            segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
            segment(0xC4, b"\x00" + one_symbol_table),  # DC table 0
            segment(0xC4, b"\x10" + one_symbol_table),  # AC table 0 (symbol 0 = end of block)
            segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            bytes(scan),
            b"\xff\xd9",
        ]
    )
