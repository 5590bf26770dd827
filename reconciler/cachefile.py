"""Best-effort atomic writes for on-disk caches (OSV records, core metadata)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def store(path: Path, data: bytes) -> None:
    """Write a cache entry atomically; a cache that cannot be written only costs requests."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except OSError:  # a full disk: no half-written entry is left behind either
        Path(temp).unlink(missing_ok=True)
