"""Context crops for queued tiles, rendered from the decoded frame the worker already holds
(so the labeling page never decodes a 24 MP frame). PIL and numpy only.

A context crop is the tile at full resolution in the middle of its surroundings, with the tile
outlined. Invariants:
- the crop is always ``tile + 2 * context`` pixels square, the tile always at
  ``(context, context)`` in it, so a page can lay crops out without reading their sizes;
- surroundings beyond the frame's border are filled with a flat grey, so a person sees where the
  frame ends rather than a shifted view;
- the outline is drawn *outside* the tile, so none of the tile's own pixels is hidden;
- pixels are copied as they are (no resampling): what is shown is what the model scored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .tiling import Box

OUTSIDE_FILL = (96, 96, 96)
OUTLINE_COLOUR = (255, 214, 0)  # yellow: stands out on ice, water and snow alike
OUTLINE_WIDTH = 3


@dataclass
class ContextCrop:
    """``context``: the tile with its surroundings, outlined. ``tile``: the tile alone, as scored.
    ``offset``: frame coordinates ``(x, y)`` of the context image's top-left pixel (may be
    negative at the frame's border), to map a click on the crop back to the frame."""

    context: Image.Image
    tile: Image.Image
    offset: tuple[int, int]


def render_context_crop(
    image: np.ndarray, box: Box, *, context: int = 112, outline: bool = True
) -> ContextCrop:
    """Render the context crop of ``box`` (``(left, top, right, bottom)`` in frame pixels, inside
    the frame) from ``image`` (``H x W x 3`` uint8, as from ``decode_frame``)."""
    height, width = image.shape[:2]
    left, top, right, bottom = box
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"box {box} is not inside the {width}x{height} frame")
    if context < OUTLINE_WIDTH:
        raise ValueError(f"context must leave room for the outline ({OUTLINE_WIDTH} px)")
    x0, y0 = left - context, top - context
    x1, y1 = right + context, bottom + context
    canvas = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    canvas[...] = OUTSIDE_FILL
    # The part of the surroundings inside the frame, copied into its place on the canvas.
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    canvas[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = image[fy0:fy1, fx0:fx1]
    ctx = Image.fromarray(canvas)
    if outline:
        draw = ImageDraw.Draw(ctx)
        for i in range(1, OUTLINE_WIDTH + 1):
            draw.rectangle(
                (
                    context - i,
                    context - i,
                    context + (right - left) - 1 + i,
                    context + (bottom - top) - 1 + i,
                ),
                outline=OUTLINE_COLOUR,
            )
    tile = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    return ContextCrop(context=ctx, tile=tile, offset=(x0, y0))


def encode_jpeg(img: Image.Image, *, quality: int = 90) -> bytes:
    """JPEG bytes for storage. Quality 90 keeps a bear's outline and fur texture legible."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
