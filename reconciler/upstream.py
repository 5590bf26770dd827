"""The upstream index: project pages over the simple API (PEP 691 JSON, PEP 503 HTML fallback)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from pypi_simple import ACCEPT_JSON_PREFERRED, ProjectPage
from pypi_simple.errors import UnsupportedContentTypeError, UnsupportedRepoVersionError

from reconciler.cancel import Cancellation
from reconciler.concurrency import map_concurrently
from reconciler.errors import UpstreamError
from reconciler.http import redact
from reconciler.metadata import CoreMetadata, MetadataReader
from reconciler.model import (
    UpstreamFile,
    UpstreamProject,
    is_plain_filename,
    parse_distribution_filename,
)

_MAX_REDIRECTS = 5
DOWNLOAD_CHUNK = 1024 * 1024


class UpstreamIndex:
    """Reads project pages from one simple index, concurrently over one pooled session."""

    def __init__(
        self,
        index_url: str,
        session: requests.Session,
        download_session: requests.Session | None = None,
        workers: int = 16,
        timeout: float = 30.0,
        metadata_cache: Path | None = None,
    ) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.session = session
        # Downloads bypass the HTTP cache: a 200 MB body must stream, not be cached.
        self.download_session = download_session or session
        self.workers = workers
        self.timeout = timeout
        self.metadata = MetadataReader(self.download_session, metadata_cache, workers, timeout)

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

    def project(self, name: str) -> UpstreamProject | None:
        """One project's page (PEP 691 JSON preferred); None on 404."""
        url = urljoin(self.index_url, f"{name}/")
        # max-age=0 makes the cache revalidate with If-None-Match every time: always fresh,
        # and an unchanged page costs a 304 (RFC 9111 section 5.2.1.1).
        response = self._get(
            url, headers={"Accept": ACCEPT_JSON_PREFERRED, "Cache-Control": "max-age=0"}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(
                f"upstream index answered {response.status_code} for {redact(url)} (project {name})"
            )
        try:
            page = ProjectPage.from_response(response, name)
        except (
            UnsupportedContentTypeError,
            UnsupportedRepoVersionError,
            ValueError,  # not JSON, or not the shape PEP 691 gives (pydantic's errors too)
            RecursionError,  # JSON nested too deeply
        ) as error:
            why = str(error).splitlines()[0] if str(error) else type(error).__name__
            return UpstreamProject(name, (), unreadable=why[:200])
        return _to_project(name, page)

    @contextmanager
    def open_file(self, url: str, cancel: Cancellation) -> Iterator[Iterator[bytes]]:
        """Stream a file's bytes in chunks; memory stays flat whatever the file's size.

        Files may live on another host (PyPI serves them from its CDN) and may redirect: the
        applier checks every byte against the index's sha256 before anything is visible.
        `cancel` stops the stream at once, even in the middle of a read.
        """
        try:
            response = self.download_session.get(url, stream=True, timeout=self.timeout)
        except requests.RequestException as error:
            raise UpstreamError(f"cannot download {redact(url)}: {error}") from error
        try:
            if response.status_code != 200:
                raise UpstreamError(f"upstream answered {response.status_code} for {redact(url)}")
            with cancel.watching(response.raw):
                yield _checked_chunks(response, url, cancel)
        finally:
            response.close()

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """GET that follows redirects only while they stay on the index's own host.

        A redirect elsewhere could hand us packages from a source nobody reviewed.
        """
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                response = self.session.get(
                    url, headers=headers, timeout=self.timeout, allow_redirects=False
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


def _checked_chunks(response: requests.Response, url: str, cancel: Cancellation) -> Iterator[bytes]:
    """The body in chunks; a connection lost half way is an UpstreamError naming the URL."""
    try:
        for chunk in response.iter_content(DOWNLOAD_CHUNK):
            cancel.check()
            yield chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
        cancel.check()  # a read stopped by the cancel is the cancel, not a broken download
        raise UpstreamError(f"download of {redact(url)} broke off: {error}") from error


def _to_project(name: str, page: ProjectPage) -> UpstreamProject:
    """Typed values from a parsed page; files that are not wheels or sdists are left out."""
    files = []
    for package in page.packages:
        parsed = parse_distribution_filename(package.filename)
        # A name that is not a plain file name (a wheel build tag may hold "/") is never ours.
        if parsed is None or parsed[0] != name or not is_plain_filename(package.filename):
            continue
        sha256 = package.digests.get("sha256")
        files.append(
            UpstreamFile(
                filename=package.filename,
                url=package.url,
                version=parsed[1],
                sha256=sha256.lower() if sha256 else None,
                # PEP 700: upload-time is UTC; a server that omits the zone still means UTC.
                upload_time=package.upload_time.replace(tzinfo=timezone.utc)
                if package.upload_time and package.upload_time.tzinfo is None
                else package.upload_time,
                yanked=package.is_yanked,
                yanked_reason=package.yanked_reason or None,
                size=package.size,
                requires_python=package.requires_python,
                # PEP 658/714: the core metadata is served beside the file, with its digest.
                has_metadata=bool(package.has_metadata),
                metadata_sha256=(package.metadata_digests or {}).get("sha256"),
            )
        )
    status = page.status.value if page.status is not None else None
    return UpstreamProject(name=name, files=tuple(files), status=status)
