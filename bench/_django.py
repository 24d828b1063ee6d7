"""Set up Django for a benchmark on a throw-away data folder (SQLite unless DATABASE_URL is set)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(prefix: str = "bearsite-bench-") -> Path:
    sys.path.insert(0, str(ROOT))
    data = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("BEARSITE_DATA_DIR", str(data))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bearsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return data


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_frame(width: int, height: int, seed: int):
    """An aerial-looking RGB frame: smooth large-scale shading, ice texture and fine grain, so a
    JPEG of it has a realistic size (about 1.5 bits per pixel at quality 90)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    low = rng.random((height // 64 + 2, width // 64 + 2, 3)).astype(np.float32)
    base = np.asarray(
        Image.fromarray((low * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC),
        dtype=np.float32,
    )
    mid = rng.random((height // 8 + 1, width // 8 + 1)).astype(np.float32)
    mid = np.asarray(Image.fromarray((mid * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR), np.float32)
    grain = rng.normal(0, 6, (height, width)).astype(np.float32)
    img = 150 + 0.35 * (base - 128) + 0.25 * (mid - 128)[..., None] + grain[..., None]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
