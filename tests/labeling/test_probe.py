"""The ingest probe: what a survey lead sees recorded for each frame, and why a frame is refused."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeling.ingest import (
    DEFAULT_MAX_PIXELS,
    IngestError,
    file_sha256,
    hamming,
    perceptual_hash,
    probe_image,
)
from tests.labeling.images import (
    bomb_png,
    corrupt_jpeg,
    frame_image,
    gif_bytes,
    html_page,
    jpeg_bytes,
    large_blank_jpeg,
    make_exif,
    png_bytes,
    text_file,
    tiff_bytes,
    tiny_jpeg,
    truncated_jpeg,
    write,
    zero_byte,
)


def _thumbnail(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image


# --- what is recorded ----------------------------------------------------------------------


def test_gps_time_and_camera_written_into_a_jpeg_are_read_back_exactly(tmp_path):
    exif = make_exif(
        latitude=-71.3091234,
        longitude=-156.7834567,
        altitude_m=-12.5,
        captured_at="2024:04:05 10:11:12",
        offset="-05:00",
        subsec="25",
        make="DJI",
        model="FC6310",
    )
    path = write(tmp_path / "frame.jpg", jpeg_bytes(exif=exif))

    facts, _ = probe_image(path)

    assert facts.latitude == pytest.approx(-71.3091234, abs=1e-7)  # south is negative
    assert facts.longitude == pytest.approx(-156.7834567, abs=1e-7)  # west is negative
    assert facts.altitude_m == pytest.approx(-12.5)  # GPSAltitudeRef 1: below sea level
    # OffsetTimeOriginal is present, so the time is aware and converted to UTC.
    assert facts.captured_at == datetime(2024, 4, 5, 15, 11, 12, 250_000, tzinfo=UTC)
    assert facts.camera == "DJI FC6310"
    assert facts.format == "JPEG"
    assert (facts.width, facts.height) == (640, 480)


def test_north_east_above_sea_level_and_a_local_camera_clock():
    exif = make_exif(
        latitude=78.2232, longitude=15.6469, altitude_m=305.25, captured_at="2023:07:01 23:59:58"
    )
    facts, _ = probe_image(io.BytesIO(jpeg_bytes(exif=exif)))

    assert facts.latitude == pytest.approx(78.2232, abs=1e-7)
    assert facts.longitude == pytest.approx(15.6469, abs=1e-7)
    assert facts.altitude_m == pytest.approx(305.25)
    # No offset in the file: the camera's local clock, naive, exactly as written.
    assert facts.captured_at == datetime(2023, 7, 1, 23, 59, 58)
    assert facts.captured_at.tzinfo is None


def test_a_frame_without_exif_has_no_position_or_time_and_orientation_one():
    facts, _ = probe_image(io.BytesIO(jpeg_bytes()))

    assert (facts.latitude, facts.longitude, facts.altitude_m) == (None, None, None)
    assert facts.captured_at is None
    assert facts.camera is None
    assert facts.orientation == 1


def test_half_a_gps_position_is_not_a_position():
    exif = make_exif(latitude=70.5)  # no longitude
    facts, _ = probe_image(io.BytesIO(jpeg_bytes(exif=exif)))

    assert (facts.latitude, facts.longitude) == (None, None)


def test_orientation_six_gives_upright_dimensions_and_a_rotated_thumbnail():
    # Stored landscape: red top half, blue bottom half. Orientation 6 = rotate 90° clockwise
    # to display, so the viewer sees a portrait frame with red on the right.
    stored = np.zeros((480, 640, 3), dtype=np.uint8)
    stored[:240] = (220, 20, 20)
    stored[240:] = (20, 20, 220)
    data = jpeg_bytes(image=Image.fromarray(stored), exif=make_exif(orientation=6))

    facts, thumbnail_bytes = probe_image(io.BytesIO(data))

    assert facts.orientation == 6
    assert (facts.width, facts.height) == (480, 640)
    assert facts.stored_size == (640, 480)
    thumbnail = _thumbnail(thumbnail_bytes).convert("RGB")
    assert thumbnail.size == (192, 256)
    right = thumbnail.getpixel((thumbnail.width - 10, thumbnail.height // 2))
    left = thumbnail.getpixel((10, thumbnail.height // 2))
    assert right[0] > 150 and right[2] < 100  # red on the right
    assert left[2] > 150 and left[0] < 100  # blue on the left


def test_the_thumbnail_is_a_small_jpeg_that_keeps_the_aspect_ratio():
    facts, thumbnail_bytes = probe_image(io.BytesIO(jpeg_bytes(1200, 600)))

    thumbnail = _thumbnail(thumbnail_bytes)
    assert thumbnail.size == (256, 128)
    assert len(thumbnail_bytes) < len(jpeg_bytes(1200, 600))


@pytest.mark.parametrize(
    ("name", "data", "size"),
    [
        ("png_rgb", png_bytes(320, 240), (320, 240)),
        ("png_grey", png_bytes(320, 240, mode="L"), (320, 240)),
        ("png_alpha", png_bytes(320, 240, mode="RGBA"), (320, 240)),
        ("png_palette", png_bytes(320, 240, mode="P"), (320, 240)),
        ("png_16_bit", png_bytes(320, 240, mode="I;16"), (320, 240)),
        ("tiff_raw", tiff_bytes(300, 260), (300, 260)),
        ("tiff_lzw", tiff_bytes(300, 260, compression="tiff_lzw"), (300, 260)),
        ("jpeg_progressive", jpeg_bytes(300, 260, progressive=True), (300, 260)),
        ("jpeg_cmyk", jpeg_bytes(image=frame_image(300, 260).convert("CMYK")), (300, 260)),
        ("jpeg_grey", jpeg_bytes(image=frame_image(300, 260).convert("L")), (300, 260)),
    ],
)
def test_png_tiff_and_progressive_jpeg_frames_are_accepted(name, data, size):
    facts, thumbnail_bytes = probe_image(io.BytesIO(data))

    assert (facts.width, facts.height) == size
    assert facts.format == name.split("_")[0].upper()
    assert facts.size_bytes == len(data)
    assert max(_thumbnail(thumbnail_bytes).size) == 256 or max(size) < 256


def test_a_16_bit_png_thumbnail_keeps_its_tones():
    facts, thumbnail_bytes = probe_image(io.BytesIO(png_bytes(320, 240, mode="I;16")))

    low, high = _thumbnail(thumbnail_bytes).convert("L").getextrema()
    assert high - low > 100  # scaled to 8 bits, not clipped to white


def test_exif_in_a_png_is_read():
    exif = make_exif(latitude=69.1, longitude=-105.05, captured_at="2022:05:06 07:08:09")
    facts, _ = probe_image(io.BytesIO(png_bytes(exif=exif)))

    assert facts.latitude == pytest.approx(69.1, abs=1e-7)
    assert facts.longitude == pytest.approx(-105.05, abs=1e-7)
    assert facts.captured_at == datetime(2022, 5, 6, 7, 8, 9)


def test_sha256_is_the_hash_of_the_file_bytes(tmp_path):
    data = jpeg_bytes(seed=3)
    path = write(tmp_path / "frame.jpg", data)
    expected = hashlib.sha256(data).hexdigest()

    facts, _ = probe_image(str(path))
    assert facts.sha256 == expected
    assert facts.size_bytes == len(data)
    assert file_sha256(path) == expected
    with open(path, "rb") as handle:
        handle.seek(100)
        assert file_sha256(handle) == expected  # always the whole file
        assert handle.tell() == 0


def test_the_same_bytes_twice_have_the_same_sha256_so_a_duplicate_can_be_skipped():
    data = jpeg_bytes(seed=4)
    first, _ = probe_image(io.BytesIO(data))
    second, _ = probe_image(io.BytesIO(bytes(data)))
    other, _ = probe_image(io.BytesIO(jpeg_bytes(seed=5)))

    assert first.sha256 == second.sha256
    assert first.sha256 != other.sha256


# --- perceptual hash ----------------------------------------------------------------------


def test_a_re_encoded_and_resized_copy_has_a_close_perceptual_hash(tmp_path):
    original = frame_image(800, 600, seed=7)
    copy = original.resize((640, 480), Image.Resampling.LANCZOS)
    original_path = write(tmp_path / "original.jpg", jpeg_bytes(image=original, quality=92))
    copy_path = write(tmp_path / "copy.jpg", jpeg_bytes(image=copy, quality=60))
    different_path = write(tmp_path / "other.jpg", jpeg_bytes(800, 600, seed=8))

    original_hash = perceptual_hash(original_path)
    assert hamming(original_hash, perceptual_hash(copy_path)) <= 6
    assert hamming(original_hash, perceptual_hash(different_path)) >= 16


def test_probe_records_the_same_perceptual_hash_as_perceptual_hash(tmp_path):
    path = write(tmp_path / "frame.jpg", jpeg_bytes(exif=make_exif(orientation=8)))
    facts, _ = probe_image(path)

    assert facts.phash == perceptual_hash(path)
    assert len(facts.phash) == 16


def test_hamming_counts_differing_bits():
    assert hamming("ff00", "ff00") == 0
    assert hamming("ff00", "0f01") == 5
    with pytest.raises(ValueError):
        hamming("ff", "ff00")


# --- what is refused, each with its reason ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (zero_byte(), "empty", "empty"),
        (text_file(), "not_an_image", "text"),
        (html_page(), "not_an_image", "HTML"),
        (b"\x00\x01\x02\x03" * 64, "not_an_image", "not an image"),
        (gif_bytes(), "unsupported_format", "GIF"),
        (truncated_jpeg(0.6), "truncated", "truncated"),
        (truncated_jpeg(0.003), "truncated", "truncated"),  # cut inside the header
        (corrupt_jpeg(), "corrupt", "corrupt"),
        (tiny_jpeg(200, 150), "too_small", "224"),
        (bomb_png(), "too_large", "MP limit"),
        (png_bytes()[:5000], "truncated", "PNG"),
        (tiff_bytes()[:100_000], "truncated", "TIFF"),
    ],
    ids=[
        "zero_byte",
        "text",
        "html",
        "binary_junk",
        "gif",
        "truncated_jpeg",
        "truncated_jpeg_header",
        "corrupt_jpeg",
        "tiny_frame",
        "bomb_header",
        "truncated_png",
        "truncated_tiff",
    ],
)
def test_each_bad_file_fails_alone_with_a_reason(data, code, words):
    with pytest.raises(IngestError) as caught:
        probe_image(io.BytesIO(data))

    assert caught.value.code == code
    assert words.lower() in caught.value.message.lower()
    assert str(caught.value) == caught.value.message


def test_a_bad_file_does_not_stop_the_next_good_one(tmp_path):
    files = [
        write(tmp_path / "a.jpg", jpeg_bytes(seed=1)),
        write(tmp_path / "b.jpg", truncated_jpeg()),
        write(tmp_path / "c.jpg", zero_byte()),
        write(tmp_path / "d.jpg", jpeg_bytes(seed=2)),
    ]
    outcomes = []
    for path in files:
        try:
            probe_image(path)
            outcomes.append("ok")
        except IngestError as error:
            outcomes.append(error.code)

    assert outcomes == ["ok", "truncated", "empty", "ok"]


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.995])
def test_the_reduced_draft_decode_catches_truncation_like_a_full_decode(fraction):
    data = truncated_jpeg(fraction, width=1024, height=768)
    with pytest.raises(OSError):  # the reference: a plain full decode refuses it too
        Image.open(io.BytesIO(data)).load()

    with pytest.raises(IngestError) as caught:
        probe_image(io.BytesIO(data))
    assert caught.value.code == "truncated"


def test_a_zero_filled_tail_from_an_interrupted_copy_is_refused():
    data = jpeg_bytes(1024, 768)
    half = len(data) // 2
    padded = data[:half] + b"\x00" * (len(data) - half)

    with pytest.raises(IngestError) as caught:
        probe_image(io.BytesIO(padded))
    assert caught.value.code == "truncated"


def test_a_real_decompression_bomb_is_refused_from_its_header():
    bomb = bomb_png(20_000, 20_000, complete=True)  # inflates to 50 MB of rows, 400 MP
    assert len(bomb) < 100_000

    with pytest.raises(IngestError) as caught:
        probe_image(io.BytesIO(bomb))
    assert caught.value.code == "too_large"
    assert "20000 × 20000" in caught.value.message


def test_a_150_megapixel_survey_frame_is_accepted_by_default():
    # A real, valid 12 000 × 12 500 JPEG (150 MP). Draft decoding walks every block but keeps
    # only 1/8 scale, so this needs ~2 MB of pixels instead of 150 MB.
    data = large_blank_jpeg(12_000, 12_500)
    assert DEFAULT_MAX_PIXELS >= 150_000_000

    facts, thumbnail_bytes = probe_image(io.BytesIO(data))

    assert (facts.width, facts.height) == (12_000, 12_500)
    assert _thumbnail(thumbnail_bytes).size == (246, 256)


def test_the_pixel_limit_is_a_parameter():
    data = large_blank_jpeg(12_000, 12_500)
    with pytest.raises(IngestError) as caught:
        probe_image(io.BytesIO(data), max_pixels=100_000_000)
    assert caught.value.code == "too_large"
    assert "150.0 MP" in caught.value.message and "100 MP limit" in caught.value.message

    facts, _ = probe_image(io.BytesIO(jpeg_bytes(640, 480)), max_pixels=640 * 480)
    assert facts.width == 640


def test_pillows_global_limit_neither_blocks_an_allowed_frame_nor_is_left_changed(monkeypatch):
    # Someone set Pillow's process-wide bomb limit very low; our own limit is what counts.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)

    frames = (
        tiff_bytes(320, 240),
        tiff_bytes(320, 240, compression="tiff_lzw"),  # decoded by libtiff, a separate path
        png_bytes(320, 240),
        jpeg_bytes(320, 240),
    )
    for data in frames:
        facts, _ = probe_image(io.BytesIO(data))
        assert facts.width == 320

    assert Image.MAX_IMAGE_PIXELS == 10_000


@pytest.mark.parametrize(("side", "code"), [(224, None), (223, "too_small")])
def test_the_smallest_frame_is_one_tile(side, code):
    data = jpeg_bytes(side, 400)
    if code is None:
        facts, _ = probe_image(io.BytesIO(data))
        assert facts.width == side
    else:
        with pytest.raises(IngestError) as caught:
            probe_image(io.BytesIO(data))
        assert caught.value.code == code


def test_a_camera_raw_preview_is_not_taken_for_the_frame(tmp_path):
    # NewSubfileType = 1 marks a reduced-resolution copy (DNG/NEF keep a preview first).
    buffer = io.BytesIO()
    frame_image(320, 240).save(buffer, "TIFF", tiffinfo={254: 1})

    with pytest.raises(IngestError) as caught:
        probe_image(io.BytesIO(buffer.getvalue()))
    assert caught.value.code == "unsupported_format"


def test_a_misnamed_file_is_judged_by_its_content(tmp_path):
    path = write(tmp_path / "frame.png", jpeg_bytes())  # a JPEG called .png
    facts, _ = probe_image(Path(path))
    assert facts.format == "JPEG"

    text_path = write(tmp_path / "frame.jpg", text_file())
    with pytest.raises(IngestError) as caught:
        probe_image(text_path)
    assert caught.value.code == "not_an_image"


def test_large_files_are_hashed_in_chunks_with_the_same_result(monkeypatch, tmp_path):
    from labeling.ingest import probe as probe_module

    data = tiff_bytes(320, 240)
    monkeypatch.setattr(probe_module, "_IN_MEMORY_LIMIT", 1000)  # force the streaming path
    facts, _ = probe_image(write(tmp_path / "frame.tif", data))

    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.size_bytes == len(data)


def test_a_stream_that_cannot_seek_is_accepted():
    class Upload(io.RawIOBase):  # e.g. a request body read straight from the socket
        def __init__(self, data):
            self._inner = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, buffer):
            chunk = self._inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    data = jpeg_bytes(seed=11)
    facts, _ = probe_image(Upload(data))
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
