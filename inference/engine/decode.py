"""Decode one survey frame into an RGB uint8 array (no torch).

Invariants:
- The array is ``H x W x 3``, ``uint8``, C-contiguous and read-only, in the frame's display
  orientation: the EXIF orientation tag is applied, so every coordinate the engine produces
  (tiles, detections, crops) refers to the frame as a person sees it.
- A file that cannot be decoded raises :class:`DecodeError` with the reason in words; the decoder
  never returns a partial image (PIL's truncated-image tolerance is left off).
"""

from __future__ import annotations

import os
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Survey frames reach 90+ MP, above PIL's decompression-bomb warning (89 MP). The frames come from
# the survey lead, not from strangers, so the cap is raised for this decoder only, to a size that
# still stops a corrupt header claiming billions of pixels.
MAX_FRAME_PIXELS = 400_000_000


class DecodeError(ValueError):
    """A frame that cannot be decoded, with the reason."""


def decode_frame(path: str | os.PathLike | IO[bytes], *, name: str | None = None) -> np.ndarray:
    """Read ``path`` (JPEG, TIFF, PNG, ...; a path or a binary file object) as an oriented
    ``H x W x 3`` uint8 RGB array. ``name`` labels the file in error messages (default: the path).
    """
    label = name or (os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_FRAME_PIXELS:
                    raise DecodeError(
                        f"{label}: {w}x{h} px is above the {MAX_FRAME_PIXELS // 1_000_000} MP limit"
                    )
                img.load()
                img = ImageOps.exif_transpose(img) or img
                if img.mode != "RGB":
                    # Grey, palette, CMYK and 16-bit frames become 8-bit RGB, as the model expects.
                    img = img.convert("RGB")
                # One copy out of PIL's 4-byte-per-pixel store; the array is read-only, which
                # suits its use: the model and the crop renderer share it and never modify it.
                return np.asarray(img)
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError(f"{label}: no such file") from None
    except UnidentifiedImageError:
        raise DecodeError(f"{label}: not an image file PIL can read") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"{label}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL reports truncated or corrupt data as OSError ("image file is truncated",
        # "broken data stream"), and bad headers as SyntaxError or ValueError.
        raise DecodeError(f"{label}: corrupt or truncated image ({exc})") from None
