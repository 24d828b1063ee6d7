"""Recognise image files by their first bytes and open their headers without decoding pixels.

Django-free; shared by the ingest probe and the URL fetcher.

Invariants:
- ``sniff_format`` looks only at magic bytes, so a text file renamed ``.jpg`` is never treated as a
  JPEG and a JPEG renamed ``.png`` is still a JPEG.
- ``open_header`` constructs the Pillow plugin for the sniffed format directly instead of going
  through ``Image.open``. That parses the header (size, mode, EXIF) and nothing else, and it skips
  Pillow's process-wide decompression-bomb check, because the caller enforces its own pixel limit
  from the header (see ``probe.probe_image``). It also means a JPEG that carries an MPF extension
  (MPO) is read as the plain JPEG that it starts with.
"""

from __future__ import annotations

from typing import IO, Final

from PIL import ImageFile, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

#: The formats that ingest accepts, by Pillow's format name, with their MIME types.
ACCEPTED_MIME: Final[dict[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "TIFF": "image/tiff",
}

_PLUGINS: Final = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "TIFF": TiffImagePlugin.TiffImageFile,
}

# Formats people upload by mistake; named so that the error says what the file is. Order matters
# only where one prefix extends another.
_OTHER_IMAGE_MAGIC: Final[tuple[tuple[int, bytes, str], ...]] = (
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"8BPS", "Photoshop (PSD)"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"%PDF", "PDF"),
)
_FTYP_BRANDS: Final[dict[bytes, str]] = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
    b"crx ": "Canon raw (CR3)",
}

SNIFF_BYTES: Final = 32
"""How many leading bytes ``sniff_format`` and ``describe_other`` need."""


def sniff_format(head: bytes) -> str | None:
    """Return "JPEG", "PNG" or "TIFF" when ``head`` starts like one of them, else None.

    Canon CR2 raw files are TIFF containers; they are not reported as TIFF here.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if head[8:10] == b"CR":  # Canon CR2: a TIFF wrapper around raw sensor data
            return None
        return "TIFF"
    return None


def describe_other(head: bytes) -> str | None:
    """Name a recognisable file that ingest does not accept ("GIF", "HEIC", ...), else None."""
    if head[:4] in (b"II*\x00", b"MM\x00*") and head[8:10] == b"CR":
        return "Canon raw (CR2)"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "ISO media (MP4/HEIF family)")
    for offset, magic, name in _OTHER_IMAGE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name == "BMP" and len(head) < 26:
                continue  # "BM" alone is too weak a signature for a tiny file
            return name
    return None


def looks_like_text(head: bytes) -> bool:
    """True when the leading bytes are plausibly text (UTF-8, no NUL), e.g. an HTML error page."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


def open_header(stream: IO[bytes], fmt: str) -> ImageFile.ImageFile:
    """Parse the header of ``stream`` as ``fmt`` (one of ACCEPTED_MIME) without decoding pixels.

    Raises whatever the Pillow plugin raises for a bad header (SyntaxError, OSError, ...);
    callers classify it. The stream is read from its start and must stay open until the image
    has been loaded.
    """
    stream.seek(0)
    return _PLUGINS[fmt](stream)
