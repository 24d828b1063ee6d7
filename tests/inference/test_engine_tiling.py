"""Tile layout: every pixel scored, neighbours overlap by at least the animal length, the last
row and column on the frame's border."""

import numpy as np
import pytest

from inference.engine.tiling import FrameTooSmall, TileGrid, plan_tiles

SIZES = [(224, 224), (300, 500), (448, 700), (449, 673), (1000, 1500), (4000, 6000), (230, 2000)]
OVERLAPS = [0, 1, 50, 100, 150, 223]


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("min_overlap", OVERLAPS)
def test_every_pixel_is_in_some_tile_and_tiles_stay_inside(height, width, min_overlap):
    grid = plan_tiles(height, width, min_overlap=min_overlap)
    # Tiles form a full rows x cols product, so a pixel is covered iff its row lies in some
    # row band and its column in some column band.
    for origins, length in ((grid.ys, height), (grid.xs, width)):
        covered = np.zeros(length, dtype=bool)
        for o in origins:
            assert 0 <= o and o + 224 <= length
            covered[o : o + 224] = True
        assert covered.all()
    left, top, right, bottom = grid.box(grid.rows - 1, grid.cols - 1)
    assert (right, bottom) == (width, height) and right - left == bottom - top == 224


@pytest.mark.parametrize("min_overlap", [0, 100])
def test_every_pixel_is_scored_checked_tile_by_tile(min_overlap):
    grid = plan_tiles(449, 673, min_overlap=min_overlap)
    covered = np.zeros((449, 673), dtype=bool)
    for r in range(grid.rows):
        for c in range(grid.cols):
            left, top, right, bottom = grid.box(r, c)
            covered[top:bottom, left:right] = True
    assert covered.all()


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("min_overlap", OVERLAPS)
def test_neighbours_overlap_by_at_least_min_overlap_and_last_is_on_border(
    height, width, min_overlap
):
    grid = plan_tiles(height, width, min_overlap=min_overlap)
    for origins, length in ((grid.ys, height), (grid.xs, width)):
        assert origins[0] == 0
        assert origins[-1] == length - 224  # the last tile ends exactly on the border
        steps = np.diff(origins)
        assert (steps > 0).all()  # no tile scored twice
        assert (224 - steps >= min_overlap).all()
        # Regular stride everywhere but the last step, so the layout is predictable.
        assert (steps[:-1] == 224 - min_overlap).all()


def test_a_6000_by_4000_frame_has_the_expected_tile_count():
    # DESIGN/LESSONS: 26 x 17 full tiles, 27 x 18 with the border-aligned ones.
    assert plan_tiles(4000, 6000).shape == (18, 27)
    # A 100 px bear needs 100 px overlap: stride 124.
    assert plan_tiles(4000, 6000, min_overlap=100).shape == (32, 48)


def test_a_frame_smaller_than_a_tile_is_refused_with_its_size():
    with pytest.raises(FrameTooSmall, match="200x100"):
        plan_tiles(100, 200)
    with pytest.raises(FrameTooSmall):
        plan_tiles(500, 223)


@pytest.mark.parametrize("bad", [-1, 224, 500])
def test_an_impossible_overlap_is_refused(bad):
    with pytest.raises(ValueError, match="min_overlap"):
        plan_tiles(1000, 1000, min_overlap=bad)


def test_grid_round_trips_through_json_form():
    grid = plan_tiles(449, 673, min_overlap=37)
    assert TileGrid.from_dict(grid.as_dict()) == grid
    assert grid.centre(0, 0) == (112.0, 112.0)
