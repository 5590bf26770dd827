"""The upstream index: project pages over the simple API (PEP 691 JSON, PEP 503 HTML fallback)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from reconciler.buildreqs import MAX_SDIST, BuildRequirementsReader
from reconciler.cancel import Cancellation
from reconciler.concurrency import map_concurrently
from reconciler.errors import HashMismatchError, ReconcilerError, UpstreamError
from reconciler.http import BodyError, deadline, read_body, redact
from reconciler.metadata import CoreMetadata, MetadataReader
from reconciler.model import (
    MAX_FILE_SIZE,
    UpstreamFile,
    UpstreamProject,
)
from reconciler.pagecache import MIN_CACHED_PAGE, PageCache, page_key
from reconciler.pages import read_page

# PEP 691's preference: the JSON page, else HTML (pypi_simple's ACCEPT_JSON_PREFERRED).
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.5, "
    "text/html;q=0.01"
)
_MAX_REDIRECTS = 5
DOWNLOAD_CHUNK = 1024 * 1024
# A project page larger or slower than this is not believed (botocore's JSON page, one of the
# largest, is a few tens of MB).
MAX_PAGE = 128 * 1024 * 1024
PAGE_SECONDS = 300.0
# A download may take this long, plus its size at this rate (bytes per second).
DOWNLOAD_SECONDS = 600.0
MIN_DOWNLOAD_RATE = 256 * 1024


class Downloadable(Protocol):
    """A file to download and what the index says of it."""

    @property
    def filename(self) -> str:
        """Its name."""

    @property
    def url(self) -> str | None:
        """Where it is downloaded from."""

    @property
    def sha256(self) -> str | None:
        """Its sha256, as the index gives it."""

    @property
    def size(self) -> int | None:
        """Its size in bytes, as the index gives it."""


class UpstreamIndex:
    """Reads project pages from one simple index, concurrently over one pooled session."""

    def __init__(
        self,
        index_url: str,
        session: requests.Session,
        download_session: requests.Session | None = None,
        workers: int = 16,
        timeout: float = 30.0,
        cache_dir: Path | None = None,
        page_bytes: int = MAX_PAGE,
        page_seconds: float = PAGE_SECONDS,
    ) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.page_bytes = page_bytes
        self.page_seconds = page_seconds
        self.session = session
        # Downloads bypass the HTTP cache: a 200 MB body must stream, not be cached.
        self.download_session = download_session or session
        self.workers = workers
        self.timeout = timeout
        self.metadata = MetadataReader(self.download_session, cache_dir, workers, timeout)
        self.builds = BuildRequirementsReader(self._download_sdist, cache_dir)
        self.pages = PageCache(cache_dir / "pages" if cache_dir else None)
        # Pages are fetched concurrently but read one at a time: reading holds the GIL anyway,
        # and a large page's decoded JSON (several times its size) is then alive once at most.
        self._reading = threading.Lock()

    def projects(self, names: Iterable[str]) -> dict[str, UpstreamProject | None]:
        """Each project's page by canonical name; None where upstream has no such project."""
        unique = sorted(set(names))
        if not unique:
            return {}
        return dict(zip(unique, map_concurrently(self.project, unique, self.workers), strict=True))

    def core_metadata(self, files: Iterable[UpstreamFile]) -> dict[str, CoreMetadata]:
        """The core metadata of files (PEP 658, else the wheel itself) by sha256; files whose
        metadata cannot be read (an sdist) are left out."""
        return self.metadata.read_many(files)

    def _download_sdist(self, sdist: UpstreamFile, target: Path) -> None:
        self.download(sdist, target, Cancellation(), limit=MAX_SDIST)

    def build_requirements(
        self, sdists: Iterable[UpstreamFile]
    ) -> dict[str, tuple[str, ...] | str]:
        """The PEP 518 build requirements of sdists by sha256 (or why they cannot be read)."""
        return self.builds.read_many(sdists)

    def project(self, name: str) -> UpstreamProject | None:
        """One project's page (PEP 691 JSON preferred); None on 404.

        A page that cannot be read (malformed, too large, too slow) is the project's problem,
        not the plan's: it comes back `unreadable`, and that project is blocked.
        """
        url = urljoin(self.index_url, f"{name}/")
        # max-age=0 makes the cache revalidate with If-None-Match every time: always fresh,
        # and an unchanged page costs a 304 (RFC 9111 section 5.2.1.1).
        response = self._get(url, headers={"Accept": ACCEPT, "Cache-Control": "max-age=0"})
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise UpstreamError(
                    f"upstream index answered {response.status_code} for {redact(url)} "
                    f"(project {name})"
                )
            try:
                body = read_body(response, self.page_bytes, self.page_seconds)
                content_type = response.headers.get("Content-Type", "text/html")
                with self._reading:
                    return self._read(name, body, content_type, response.url)
            except requests.RequestException as error:
                raise UpstreamError(f"cannot read upstream page for {name}: {error}") from error
            except (
                BodyError,
                ValueError,  # not JSON, not the shape PEP 691 gives, an unknown page type
                RecursionError,  # HTML nested too deeply for its parser
            ) as error:
                why = str(error).splitlines()[0] if str(error) else type(error).__name__
                return UpstreamProject(name, (), unreadable=why[:200])

    def _read(self, name: str, body: bytes, content_type: str, url: str) -> UpstreamProject:
        """The page read, or taken as read the last time its bytes were these."""
        if len(body) < MIN_CACHED_PAGE:
            return read_page(name, body, content_type, url)
        key = page_key(body, content_type, url)
        project = self.pages.get(name, key)
        if project is None:
            project = read_page(name, body, content_type, url)
            self.pages.put(name, key, project)
        return project

    @contextmanager
    def open_file(
        self, url: str, size: int | None, cancel: Cancellation
    ) -> Iterator[Iterator[bytes]]:
        """Stream a file's bytes in chunks; memory stays flat whatever the file's size.

        Files may live on another host (PyPI serves them from its CDN) and may redirect: the
        applier checks every byte against the index's sha256 before anything is visible.
        `cancel` stops the stream at once, even in the middle of a read; so does running past
        a deadline that allows the file's `size` at a slow but honest rate.
        """
        try:
            response = self.download_session.get(url, stream=True, timeout=self.timeout)
        except requests.RequestException as error:
            raise UpstreamError(f"cannot download {redact(url)}: {error}") from error
        seconds = DOWNLOAD_SECONDS + min(size or 0, MAX_FILE_SIZE) / MIN_DOWNLOAD_RATE
        try:
            if response.status_code != 200:
                raise UpstreamError(f"upstream answered {response.status_code} for {redact(url)}")
            with cancel.watching(response.raw), deadline(response, seconds) as expired:
                yield _checked_chunks(response, url, cancel, expired)
        finally:
            response.close()

    def download(
        self,
        wanted: Downloadable,
        target: Path,
        cancel: Cancellation,
        advance: Callable[[int], None] = lambda _: None,
        limit: int = MAX_FILE_SIZE,
    ) -> None:
        """Stream a file to `target`, hashing as it arrives, memory flat; HashMismatchError
        (and nothing left at `target`) unless its bytes are the size and sha256 the index
        gives, within `limit`. Nothing unverified is ever read from `target`."""
        if wanted.url is None or wanted.sha256 is None:
            raise ReconcilerError(f"{wanted.filename}: no download URL or sha256 to verify it")
        limit = min(wanted.size if wanted.size is not None else limit, limit)
        digest, size = hashlib.sha256(), 0
        try:
            with (
                self.open_file(wanted.url, wanted.size, cancel) as chunks,
                target.open("wb") as stream,
            ):
                for chunk in chunks:
                    size += len(chunk)
                    if size > limit:  # more than the index said: not written to disk
                        raise HashMismatchError(
                            f"{wanted.filename}: upstream sent more than the {limit} bytes "
                            "expected; file discarded"
                        )
                    stream.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
                stream.flush()
                os.fsync(stream.fileno())
            if digest.hexdigest() != wanted.sha256:
                raise HashMismatchError(
                    f"{wanted.filename}: sha256 mismatch: upstream index says {wanted.sha256}, "
                    f"the downloaded bytes hash to {digest.hexdigest()}; file discarded"
                )
            if wanted.size is not None and size != wanted.size:
                raise HashMismatchError(
                    f"{wanted.filename}: size mismatch: upstream index says {wanted.size} "
                    f"bytes, downloaded {size}; file discarded"
                )
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """GET that follows redirects only while they stay on the index's own host.

        A redirect elsewhere could hand us packages from a source nobody reviewed.
        """
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                response = self.session.get(
                    url, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
                )
            except requests.RequestException as error:
                raise UpstreamError(f"cannot reach upstream {redact(url)}: {error}") from error
            if not response.is_redirect:
                return response
            target = urljoin(url, response.headers["Location"])
            response.close()
            if not self._same_origin(target):
                raise UpstreamError(
                    f"upstream redirected {redact(url)} outside the index ({redact(target)}); "
                    "refusing to follow"
                )
            url = target
        raise UpstreamError(f"too many redirects from {redact(url)}")

    def _same_origin(self, url: str) -> bool:
        """Same scheme, host and index path: another index on the same host is elsewhere."""
        index, target = urlsplit(self.index_url), urlsplit(url)
        return (index.scheme, index.netloc) == (target.scheme, target.netloc) and (
            target.path.startswith(index.path)
        )


def _checked_chunks(
    response: requests.Response, url: str, cancel: Cancellation, expired: threading.Event
) -> Iterator[bytes]:
    """The body in chunks; a connection lost half way (or cut at the deadline) is an
    UpstreamError naming the URL."""
    try:
        for chunk in response.iter_content(DOWNLOAD_CHUNK):
            cancel.check()
            yield chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
        cancel.check()  # a read stopped by the cancel is the cancel, not a broken download
        if expired.is_set():
            raise UpstreamError(f"download of {redact(url)} was too slow") from None
        raise UpstreamError(f"download of {redact(url)} broke off: {error}") from error
    if expired.is_set():
        raise UpstreamError(f"download of {redact(url)} was too slow")
