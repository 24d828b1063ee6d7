"""Where the tiles of a frame lie (pure Python, no torch).

A frame is cut into square tiles of ``tile`` pixels. Along each axis the tiles start at
``0, s, 2s, ...`` with the stride ``s = tile - min_overlap``; the last tile is moved back so its far
edge lies exactly on the frame's border. Hence:

- every pixel of the frame lies in at least one tile (nothing goes unscored);
- neighbouring tiles overlap by at least ``min_overlap`` pixels (the last pair by more), so an animal
  no longer than ``min_overlap`` that a tile edge cuts lies whole inside the neighbouring tile;
- positions are strictly increasing and every tile lies wholly inside the frame (no padding, so no
  invented pixels are ever shown to the model).

Coordinates are those of the frame as decoded and EXIF-oriented (see ``decode.decode_frame``).
A box is ``(left, top, right, bottom)`` in pixels, half-open like PIL's ``Image.crop``.
"""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[int, int, int, int]


class FrameTooSmall(ValueError):
    """The frame is smaller than one tile along some axis; it cannot be scored without padding."""


@dataclass(frozen=True)
class TileGrid:
    """Tile origins of one frame: tile ``(r, c)`` covers rows ``ys[r]:ys[r]+tile`` and columns
    ``xs[c]:xs[c]+tile``. Built by :func:`plan_tiles`, which guarantees the invariants above."""

    height: int
    width: int
    tile: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def rows(self) -> int:
        return len(self.ys)

    @property
    def cols(self) -> int:
        return len(self.xs)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def box(self, r: int, c: int) -> Box:
        """Pixel box of tile ``(r, c)``: ``(left, top, right, bottom)``, right/bottom exclusive."""
        y, x = self.ys[r], self.xs[c]
        return (x, y, x + self.tile, y + self.tile)

    def centre(self, r: int, c: int) -> tuple[float, float]:
        """Centre ``(x, y)`` of tile ``(r, c)`` in frame pixels."""
        half = self.tile / 2
        return (self.xs[c] + half, self.ys[r] + half)

    def as_dict(self) -> dict:
        """JSON-able form, to store next to a score grid."""
        return {
            "height": self.height,
            "width": self.width,
            "tile": self.tile,
            "ys": list(self.ys),
            "xs": list(self.xs),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TileGrid:
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            tile=int(d["tile"]),
            ys=tuple(int(v) for v in d["ys"]),
            xs=tuple(int(v) for v in d["xs"]),
        )


def tile_origins(length: int, *, tile: int, min_overlap: int) -> tuple[int, ...]:
    """Origins along one axis of ``length`` pixels (see the module docstring for the rules)."""
    if length < tile:
        raise FrameTooSmall(f"{length} px is less than one {tile} px tile")
    stride = tile - min_overlap
    origins = list(range(0, length - tile, stride))
    # The regular origins stop short of the border; the last tile is aligned to it. Its overlap
    # with the previous one is at least min_overlap because the next regular origin would have
    # reached past length - tile.
    origins.append(length - tile)
    return tuple(origins)


def plan_tiles(height: int, width: int, *, tile: int = 224, min_overlap: int = 0) -> TileGrid:
    """Plan the tiles of a ``height`` x ``width`` frame.

    ``min_overlap`` is the least overlap in pixels between neighbouring tiles; set it to the
    survey's expected animal length in pixels. Raises :class:`FrameTooSmall` if the frame is
    smaller than one tile, ``ValueError`` for an impossible overlap.
    """
    if tile <= 0:
        raise ValueError(f"tile size must be positive, not {tile}")
    if not 0 <= min_overlap < tile:
        raise ValueError(
            f"min_overlap must be between 0 and {tile - 1} px for {tile} px tiles, not {min_overlap}"
        )
    if height < tile or width < tile:
        raise FrameTooSmall(
            f"frame of {width}x{height} px is smaller than one {tile}x{tile} px tile"
        )
    return TileGrid(
        height=height,
        width=width,
        tile=tile,
        ys=tile_origins(height, tile=tile, min_overlap=min_overlap),
        xs=tile_origins(width, tile=tile, min_overlap=min_overlap),
    )
