"""Decoding frames (orientation, bad files) and the context crops people review. No model."""

import numpy as np
import pytest
from PIL import Image

from inference.engine.crops import OUTLINE_COLOUR, OUTSIDE_FILL, encode_jpeg, render_context_crop
from inference.engine.decode import DecodeError, decode_frame
from tests.inference.engine_helpers import corrupt_jpeg_bytes, make_frame


def test_exif_orientation_is_applied_so_coordinates_match_what_people_see(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high as stored
    stored[:5, :5] = (255, 0, 0)  # a red mark at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    frame = decode_frame(path)
    assert frame.shape == (40, 20, 3)  # displayed: 20 wide, 40 high
    # The stored top-left is displayed at the top-right.
    assert tuple(frame[1, 18]) == (255, 0, 0)
    assert tuple(frame[38, 1]) == (0, 0, 0)
    assert frame.dtype == np.uint8 and not frame.flags.writeable


def test_grey_frames_become_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((30, 50), 77, dtype=np.uint8)).save(path)
    frame = decode_frame(path)
    assert frame.shape == (30, 50, 3) and (frame == 77).all()


def test_a_truncated_jpeg_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(corrupt_jpeg_bytes(make_frame(300, 400)))
    with pytest.raises(DecodeError, match=r"cut\.jpg: corrupt or truncated"):
        decode_frame(path)


def test_a_file_that_is_no_image_or_missing_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(DecodeError, match="not an image"):
        decode_frame(path)
    with pytest.raises(DecodeError, match="no such file"):
        decode_frame(tmp_path / "missing.jpg")


def test_context_crop_shows_the_tile_untouched_centred_and_outlined():
    image = make_frame(1000, 1200, seed=4)
    box = (500, 300, 724, 524)
    crop = render_context_crop(image, box, context=112)
    ctx = np.asarray(crop.context)
    assert ctx.shape == (448, 448, 3)
    assert crop.offset == (388, 188)
    # The tile's own pixels are shown exactly, with no outline drawn over them.
    assert (ctx[112:336, 112:336] == image[300:524, 500:724]).all()
    assert (np.asarray(crop.tile) == image[300:524, 500:724]).all()
    # The outline runs just outside the tile.
    assert tuple(ctx[110, 200]) == OUTLINE_COLOUR
    assert tuple(ctx[200, 337]) == OUTLINE_COLOUR
    # Surroundings beyond the outline are the frame's own pixels.
    assert (ctx[:100, :] == image[188:288, 388:836]).all()


def test_context_crop_at_the_frame_corner_keeps_its_size_and_greys_the_outside():
    image = make_frame(600, 800, seed=5)
    crop = render_context_crop(image, (0, 0, 224, 224), context=112)
    ctx = np.asarray(crop.context)
    assert ctx.shape == (448, 448, 3) and crop.offset == (-112, -112)
    assert (ctx[:100, :100] == OUTSIDE_FILL).all()
    assert (ctx[112:336, 112:336] == image[:224, :224]).all()
    assert len(encode_jpeg(crop.context)) > 1000


def test_a_box_outside_the_frame_is_refused():
    with pytest.raises(ValueError, match="not inside"):
        render_context_crop(make_frame(300, 300), (200, 0, 424, 224))
