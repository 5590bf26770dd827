"""Project pages already read, kept on disk by the digest of the bytes they were read from.

PyPI's simple pages carry no validators (no ETag, no Last-Modified), so every plan downloads
every page again; reading a page into files is then most of what it costs (botocore's 2 MB
page, 5,000 files: 70 ms, a real team's 80 pages: a second). A page whose bytes, media type
and URL are those of the last read of its project is taken from here, as read then (uv keeps
its parsed simple pages the same way). An entry is plain JSON (data, never pickle), one per
project, replaced atomically; one that is missing, stale, truncated or of another format is a
miss, and the page is read again. The directory is trusted as the HTTP cache beside it is.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler import cachefile, jsondata
from reconciler.model import UpstreamFile, UpstreamProject

# Bumped whenever pages.py reads a page differently: an entry of another format is a miss.
FORMAT = 1
# A smaller page (a hundred files or so) is read faster than an entry is written and read.
MIN_CACHED_PAGE = 64 * 1024
# A canonical project name (PEP 503), the only kind an entry's file is named after.
_CANONICAL = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FIELDS = 11  # UpstreamFile's, in order


def page_key(body: bytes, content_type: str, page_url: str) -> str:
    """What a read depends on: the bytes, their media type, and the URL files resolve against."""
    digest = hashlib.sha256(f"{content_type}\n{page_url}\n".encode())
    digest.update(body)
    return digest.hexdigest()


class PageCache:
    """Read pages in `directory` (None: nothing kept)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def get(self, name: str, key: str) -> UpstreamProject | None:
        """The project as read from the page `key` names, if that is the last page kept."""
        path = self._path(name)
        if path is None:
            return None
        try:
            entry = jsondata.loads(path.read_bytes())
            if entry.get("format") != FORMAT or entry.get("page") != key:
                return None
            files = tuple(map(_file, entry["files"]))
            return UpstreamProject(name=name, files=files, status=entry["status"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None  # absent, or not an entry this reader wrote

    def put(self, name: str, key: str, project: UpstreamProject) -> None:
        """Keep a readable page's project; best effort (a cache that cannot be written only
        costs the next plan a read)."""
        path = self._path(name)
        if path is None or project.unreadable is not None:
            return
        entry = {
            "format": FORMAT,
            "page": key,
            "status": project.status,
            "files": [_row(f) for f in project.files],
        }
        cachefile.store(path, json.dumps(entry, separators=(",", ":")).encode())

    def _path(self, name: str) -> Path | None:
        if self.directory is None or not _CANONICAL.fullmatch(name):
            return None
        return self.directory / f"{name}.json"


def _row(upstream_file: UpstreamFile) -> list[Any]:
    time = upstream_file.upload_time
    return [
        upstream_file.filename,
        upstream_file.url,
        upstream_file.version,
        upstream_file.sha256,
        time.isoformat() if time is not None else None,
        upstream_file.yanked,
        upstream_file.yanked_reason,
        upstream_file.size,
        upstream_file.requires_python,
        upstream_file.has_metadata,
        upstream_file.metadata_sha256,
    ]


def _file(row: list[Any]) -> UpstreamFile:
    """A file from its row; its version and Requires-Python, which a release's files repeat,
    kept once, as the page reader keeps them."""
    if len(row) != _FIELDS:
        raise ValueError("not a file row")
    filename, url, version, sha256, time, yanked, reason, size, requires_python = row[:9]
    return UpstreamFile(
        filename,
        url,
        sys.intern(version),
        sha256,
        datetime.fromisoformat(time) if time is not None else None,
        yanked,
        reason,
        size,
        sys.intern(requires_python) if requires_python else None,
        *row[9:],
    )
