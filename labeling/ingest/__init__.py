"""Django-free image ingest core: probe a frame (checks, EXIF, thumbnail) and fetch one by URL.

The Django services in ``labeling.services`` translate between these dataclasses and rows.
"""

from labeling.ingest.fetch import FetchedImage, FetchError, fetch_image
from labeling.ingest.probe import (
    DEFAULT_MAX_PIXELS,
    ImageFacts,
    IngestError,
    file_sha256,
    hamming,
    perceptual_hash,
    probe_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FetchError",
    "FetchedImage",
    "ImageFacts",
    "IngestError",
    "fetch_image",
    "file_sha256",
    "hamming",
    "perceptual_hash",
    "probe_image",
]
