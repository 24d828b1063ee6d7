"""Read the EXIF facts that ingest records: capture time, GPS position, orientation, camera.

Django-free. Every reader here is forgiving: malformed or missing EXIF gives None (or
orientation 1), never an exception, because a frame with broken metadata is still a frame.

Conventions:
- ``captured_at`` is timezone-aware (UTC) when the file says which offset its clock used
  (``OffsetTimeOriginal`` and friends, EXIF 2.31) or when only the GPS date/time stamp (always UTC)
  is present; otherwise it is naive, in the camera's local clock, exactly as written.
- Latitude and longitude are decimal degrees, south and west negative; both are None unless both
  can be read and are in range. Altitude is metres, negative below sea level (GPSAltitudeRef 1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import Image

# Tag numbers (EXIF 2.32 / TIFF 6). Named here rather than via ExifTags so the reader is explicit.
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE = 0x010F
_MODEL = 0x0110
_ORIENTATION = 0x0112
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME = 0x9010
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET_TIME_DIGITIZED = 0x9012
_SUBSEC_TIME = 0x9290
_SUBSEC_TIME_ORIGINAL = 0x9291
_SUBSEC_TIME_DIGITIZED = 0x9292
_GPS_LATITUDE_REF = 1
_GPS_LATITUDE = 2
_GPS_LONGITUDE_REF = 3
_GPS_LONGITUDE = 4
_GPS_ALTITUDE_REF = 5
_GPS_ALTITUDE = 6
_GPS_TIMESTAMP = 7
_GPS_STATUS = 9
_GPS_DATESTAMP = 29

_DATETIME_RE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


@dataclass(frozen=True)
class ExifFacts:
    """What ingest keeps from a frame's EXIF; see the module docstring for units and time zones."""

    captured_at: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude_m: float | None = None
    orientation: int = 1
    camera: str | None = None


def read_exif(image: Image.Image) -> ExifFacts:
    """Extract ``ExifFacts`` from an opened Pillow image (JPEG APP1, PNG eXIf or TIFF tags)."""
    try:
        exif = image.getexif()
    except Exception:  # Pillow raises a zoo of errors on damaged EXIF; the frame is still usable
        return ExifFacts()
    exif_ifd = _sub_ifd(exif, _EXIF_IFD)
    gps_ifd = _sub_ifd(exif, _GPS_IFD)
    latitude, longitude = _position(gps_ifd)
    return ExifFacts(
        captured_at=_captured_at(exif, exif_ifd, gps_ifd),
        latitude=latitude,
        longitude=longitude,
        altitude_m=_altitude(gps_ifd),
        orientation=_orientation(exif),
        camera=_camera(exif),
    )


def _sub_ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _orientation(exif: Image.Exif) -> int:
    value = exif.get(_ORIENTATION)
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 8 else 1


def _camera(exif: Image.Exif) -> str | None:
    make = _text(exif.get(_MAKE))
    model = _text(exif.get(_MODEL))
    if make and model and model.lower().startswith(make.lower()):
        return model  # "Canon" + "Canon EOS R5" reads better as "Canon EOS R5"
    parts = [part for part in (make, model) if part]
    return " ".join(parts) or None


def _captured_at(
    exif: Image.Exif, exif_ifd: dict[int, Any], gps_ifd: dict[int, Any]
) -> datetime | None:
    # Most specific first: when the shutter fired, when it was digitised, when the file changed.
    candidates = (
        (exif_ifd, _DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, _SUBSEC_TIME_ORIGINAL),
        (exif_ifd, _DATETIME_DIGITIZED, _OFFSET_TIME_DIGITIZED, _SUBSEC_TIME_DIGITIZED),
        (exif, _DATETIME, _OFFSET_TIME, _SUBSEC_TIME),
    )
    for source, time_tag, offset_tag, subsec_tag in candidates:
        moment = _parse_datetime(_text(source.get(time_tag)))
        if moment is None:
            continue
        subsec = _text(source.get(subsec_tag))
        if subsec and subsec.isdigit():
            moment = moment.replace(microsecond=int(subsec[:6].ljust(6, "0")))
        offset = _parse_offset(_text(source.get(offset_tag)))
        if offset is not None:
            moment = moment.replace(tzinfo=offset).astimezone(UTC)
        return moment
    return _gps_datetime(gps_ifd)


def _parse_datetime(text: str | None) -> datetime | None:
    match = _DATETIME_RE.match(text or "")
    if not match:
        return None
    try:
        return datetime(*(int(group) for group in match.groups()))
    except ValueError:  # "0000:00:00 00:00:00", the blank some cameras write
        return None


def _parse_offset(text: str | None) -> timezone | None:
    match = _OFFSET_RE.match(text or "")
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14):
        return None
    return timezone(-delta if sign == "-" else delta)


def _gps_datetime(gps_ifd: dict[int, Any]) -> datetime | None:
    date_text = _text(gps_ifd.get(_GPS_DATESTAMP))
    stamp = gps_ifd.get(_GPS_TIMESTAMP)
    if not date_text or not isinstance(stamp, (tuple, list)) or len(stamp) != 3:
        return None
    numbers = [_number(part) for part in stamp]
    if any(number is None for number in numbers):
        return None
    hours, minutes, seconds = numbers  # type: ignore[misc]
    match = re.match(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})", date_text)
    if not match:
        return None
    try:
        day = datetime(*(int(group) for group in match.groups()), tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _number(value: Any) -> float | None:
    try:
        number = float(value)  # IFDRational, int, float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _degrees(value: Any, ref: str | None, negative_ref: str, limit: float) -> float | None:
    if isinstance(value, (tuple, list)):
        parts = [_number(part) for part in value]
        if not 1 <= len(parts) <= 3 or any(part is None for part in parts):
            return None
        degrees = sum(part / 60**index for index, part in enumerate(parts))  # type: ignore[operator]
    else:
        degrees = _number(value)
        if degrees is None:
            return None
    if ref and ref.upper().startswith(negative_ref):
        degrees = -degrees
    return degrees if -limit <= degrees <= limit else None


def _position(gps_ifd: dict[int, Any]) -> tuple[float | None, float | None]:
    status = _text(gps_ifd.get(_GPS_STATUS))
    if status and status.upper().startswith("V"):  # "void": the receiver had no fix
        return None, None
    latitude = _degrees(
        gps_ifd.get(_GPS_LATITUDE), _text(gps_ifd.get(_GPS_LATITUDE_REF)), "S", 90.0
    )
    longitude = _degrees(
        gps_ifd.get(_GPS_LONGITUDE), _text(gps_ifd.get(_GPS_LONGITUDE_REF)), "W", 180.0
    )
    if latitude is None or longitude is None:
        return None, None  # half a position cannot be put on a map
    return latitude, longitude


def _altitude(gps_ifd: dict[int, Any]) -> float | None:
    altitude = _number(gps_ifd.get(_GPS_ALTITUDE))
    if altitude is None:
        return None
    ref = gps_ifd.get(_GPS_ALTITUDE_REF)
    if isinstance(ref, bytes):
        ref = ref[:1]
        ref = ref[0] if ref else 0
    if isinstance(ref, (tuple, list)) and ref:
        ref = ref[0]
    if ref == 1:  # 1 = below sea level (altitude is stored as a magnitude)
        altitude = -altitude
    return altitude
