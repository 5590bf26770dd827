"""The directory registry's disk: every change it makes goes through `FileOps`, one seam.

Each change is one of four steps (write a temporary file, rename, remove a file, remove a
tree), each durable (fsync of the file and of its directory), so a crash or a full disk leaves
the registry at a step boundary, which the next plan's survey notices and repairs. Tests
subclass `FileOps` to stop an apply at any one step.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class FileOps:
    """The steps the directory registry changes the disk with."""

    def write(self, path: Path, data: bytes) -> None:
        """Replace `path` with `data` atomically: readers see the old bytes or the new."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.write_temporary(path.parent, path.name, data)
        try:
            self.rename(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise

    def write_temporary(self, directory: Path, name: str, data: bytes) -> Path:
        """A new hidden file in `directory` holding `data`, on disk (fsync), readable by all."""
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return Path(temporary)

    def rename(self, source: Path, target: Path) -> None:
        """Move `source` over `target` (atomic on one filesystem), durably."""
        os.replace(source, target)
        fsync_directory(target.parent)

    def remove(self, path: Path) -> None:
        """Remove a file or link (gone already is fine), durably."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_directory(path.parent)

    def remove_tree(self, path: Path) -> None:
        """Remove a directory and everything in it (a link is removed, not followed)."""
        if path.is_symlink() or not path.is_dir():
            self.remove(path)
        else:
            shutil.rmtree(path)
            fsync_directory(path.parent)


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk."""
    with path.open("rb") as stream:
        os.fsync(stream.fileno())


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries (a rename or removal in it) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def hash_with_cache(path: Path, cached: list[Any] | None) -> tuple[list[int], str]:
    """(stat key, sha256) of a file, reusing the cached hash while the stat key is unchanged.

    The key holds inode and ctime besides size and mtime: `os.utime` can fake an mtime, but
    nothing resets a ctime. It is read from the open descriptor before and after hashing, so a
    file replaced while being read is hashed again next time rather than cached wrongly.
    """
    with path.open("rb") as stream:
        before = _stat_key(os.fstat(stream.fileno()))
        if cached and cached[:4] == before:
            return before, str(cached[4])
        digest = hashlib.sha256()
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
        after = _stat_key(os.fstat(stream.fileno()))
    return (after if after == before else [-1, -1, -1, -1]), digest.hexdigest()


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]
