"""Stored files as local paths, for libraries that need a file name (torch.load, decoders)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.core.files.storage import default_storage


@contextlib.contextmanager
def local_path(name: str) -> Iterator[str]:
    """A local path for a stored file: the file itself on local disk, else a temporary copy
    (removed on exit)."""
    try:
        yield default_storage.path(name)
        return
    except NotImplementedError:
        pass
    with (
        tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as tmp,
        default_storage.open(name, "rb") as src,
    ):
        for block in iter(lambda: src.read(1 << 20), b""):
            tmp.write(block)
        tmp.flush()
        yield tmp.name
