"""Core metadata of upstream files, for the dependencies of admitted releases.

Read from the PEP 658 `.metadata` file where upstream offers one (and verified against the
digest the index gives, PEP 714), else from the wheel itself with HTTP Range requests: the zip's
central directory and the one METADATA member, never the whole wheel. Cached on disk by the
file's sha256: a distribution's metadata never changes.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from reconciler import cachefile
from reconciler.concurrency import map_concurrently
from reconciler.errors import UpstreamError
from reconciler.http import BodyError, body_chunks, read_body, redact
from reconciler.model import UpstreamFile

# What one Range request fetches at least: the end of a zip (directory and EOCD) in one go.
CHUNK = 64 * 1024
# The most Requires-Dist lines believed (extras included; real releases declare at most a few
# hundred).
MAX_DEPENDENCIES = 1000
# The largest core metadata read or kept; real METADATA files are rarely over 1 MiB.
MAX_METADATA = 4 * 1024 * 1024
# A server that ignores Range sends the whole wheel: read for its METADATA up to this size.
MAX_WHEEL = 512 * 1024 * 1024
# The most a wheel is read in one go: its central directory (tens of thousands of members
# take a few MiB) or its METADATA member.
MAX_READ = 8 * 1024 * 1024
READ_SECONDS = 300.0


@dataclass(frozen=True)
class CoreMetadata:
    """The parts of a distribution's core metadata the resolver needs."""

    requires_dist: tuple[str, ...]
    requires_python: str | None = None


class MetadataUnavailable(UpstreamError):
    """A file whose dependencies cannot be read without building it (an sdist), or whose
    metadata is broken or absurd."""


class FileGone(UpstreamError):
    """Upstream answers 404 or 410 for a file it lists. For a PEP 658 file the wheel is read
    instead; for the wheel itself it stops the plan like any outage (a caching proxy answers
    404 while its own upstream is down), rather than admit a release unread."""


# A file upstream lists but does not serve.
_GONE = frozenset({404, 410})


def wheel_metadata(archive: zipfile.ZipFile, filename: str) -> bytes:
    """A wheel's `.dist-info/METADATA`; MetadataUnavailable when it has no single one, or one
    larger than MAX_METADATA (a few hundred KiB of zip can inflate to gigabytes)."""
    members = [
        n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
    ]
    if len(members) != 1:
        raise MetadataUnavailable(f"{filename}: no single .dist-info/METADATA")
    with archive.open(members[0]) as member:
        raw = member.read(MAX_METADATA + 1)
    if len(raw) > MAX_METADATA:
        raise MetadataUnavailable(f"{filename}: its METADATA is larger than {MAX_METADATA} bytes")
    return raw


def parse(raw: bytes) -> CoreMetadata:
    """Requires-Dist and Requires-Python from METADATA / PKG-INFO (an RFC 822 message);
    MetadataUnavailable for more dependencies than any real release declares (each would
    cost requests)."""
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    requires = tuple(str(r).strip() for r in message.get_all("Requires-Dist") or ())
    if len(requires) > MAX_DEPENDENCIES:
        raise MetadataUnavailable(f"declares {len(requires)} dependencies: not believed")
    return CoreMetadata(requires_dist=requires, requires_python=message.get("Requires-Python"))


class MetadataReader:
    """Reads core metadata concurrently over one session, with an on-disk cache."""

    def __init__(
        self,
        session: requests.Session,
        cache_dir: Path | None,
        workers: int = 16,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.cache_dir = cache_dir
        self.workers = workers
        self.timeout = timeout

    def read_many(self, files: Iterable[UpstreamFile]) -> dict[str, CoreMetadata]:
        """Metadata by file sha256; files whose metadata cannot be read are left out."""
        unique = {f.sha256: f for f in files if f.sha256}
        if not unique:
            return {}
        read = map_concurrently(self.read_or_none, unique.values(), self.workers)
        found = dict(zip(unique, read, strict=True))
        return {sha: metadata for sha, metadata in found.items() if metadata is not None}

    def read_or_none(self, upstream_file: UpstreamFile) -> CoreMetadata | None:
        """None for a file that has no readable metadata (an sdist, a broken wheel): the plan
        then says its dependencies were not read. An outage is not that: it stops the plan, as
        every upstream outage does, rather than admit a release without its dependencies."""
        try:
            return self.read(upstream_file)
        except MetadataUnavailable:
            return None

    def read(self, upstream_file: UpstreamFile) -> CoreMetadata:
        """One file's metadata: cache, then PEP 658, then the wheel's own METADATA.

        Raises MetadataUnavailable when the file has none to read, UpstreamError when upstream
        could not be asked.
        """
        cached = self._cache_path(upstream_file, "METADATA")
        refused = self._cache_path(upstream_file, "UNREADABLE")
        if cached is not None and cached.is_file():
            return parse(cached.read_bytes())
        if refused is not None and refused.is_file():  # a file's bytes never change
            raise MetadataUnavailable(refused.read_text(encoding="utf-8", errors="replace"))
        raw = self._pep658(upstream_file) if upstream_file.has_metadata else None
        if raw is None and upstream_file.filename.endswith(".whl"):
            try:
                raw = self._from_wheel(upstream_file)
            except MetadataUnavailable as unavailable:
                if refused is not None:
                    cachefile.store(refused, str(unavailable).encode())
                raise
        if raw is None:
            raise MetadataUnavailable(
                f"{upstream_file.filename}: the dependencies of an sdist cannot be read without "
                "building it"
            )
        if cached is not None:
            cachefile.store(cached, raw)
        return parse(raw)

    def _cache_path(self, upstream_file: UpstreamFile, kind: str) -> Path | None:
        """Where what was read of a file is kept: by its sha256, so it holds for good."""
        if self.cache_dir is None or not upstream_file.sha256:
            return None
        return self.cache_dir / "metadata" / f"{upstream_file.sha256}.{kind}"

    def _pep658(self, upstream_file: UpstreamFile) -> bytes | None:
        """The PEP 658 file, verified against the index's digest (PEP 714); None when it does
        not match, is absurdly large or is not there after all, so that the wheel's own
        METADATA is read instead."""
        url = upstream_file.url.split("#", 1)[0] + ".metadata"
        try:
            response = self._get(url, stream=True)
        except FileGone:
            return None
        with response:
            try:
                raw = read_body(response, MAX_METADATA, READ_SECONDS)
            except BodyError:
                return None
            except requests.RequestException as error:
                raise UpstreamError(f"{redact(url)} broke off: {error}") from None
        expected = upstream_file.metadata_sha256
        if expected and hashlib.sha256(raw).hexdigest() != expected.lower():
            return None
        return raw

    def _from_wheel(self, upstream_file: UpstreamFile) -> bytes:
        url = upstream_file.url.split("#", 1)[0]
        with RangeFile(self.session, url, upstream_file.size, self.timeout) as remote:
            try:
                return wheel_metadata(zipfile.ZipFile(remote), upstream_file.filename)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
                    ValueError) as error:  # fmt: skip
                raise MetadataUnavailable(
                    f"{upstream_file.filename}: unreadable wheel: {error}"
                ) from None

    def _get(self, url: str, stream: bool = False) -> requests.Response:
        try:
            response = self.session.get(url, timeout=self.timeout, stream=stream)
        except requests.RequestException as error:
            raise UpstreamError(f"{redact(url)} could not be fetched: {error}") from None
        _check_status(response, url, 200)
        return response


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through HTTP Range requests (RFC 9110 §14).

    Enough for `zipfile`: it reads the end of the archive, then the one member it wants. A server
    that ignores Range gets the whole file, spooled to a temporary file.
    """

    def __init__(
        self, session: requests.Session, url: str, size: int | None, timeout: float
    ) -> None:
        super().__init__()
        self.session = session
        self.url = url
        self.timeout = timeout
        self.position = 0
        self.chunks: dict[int, bytes] = {}
        self.whole: tempfile.SpooledTemporaryFile[bytes] | None = None
        self.size = size if size is not None else self._probe_size()

    def _probe_size(self) -> int:
        content, content_range = self._range(f"bytes=-{CHUNK}", CHUNK)
        if self.whole is not None:
            return self.whole.seek(0, io.SEEK_END)
        total = content_range.rpartition("/")[2]
        if not total.isdigit():
            raise UpstreamError(f"{redact(self.url)}: no size in its Content-Range")
        size = int(total)
        self.chunks[size - len(content)] = content
        return size

    def readable(self) -> bool:
        """Always."""
        return True

    def seekable(self) -> bool:
        """Always."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move within the remote file."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes; a read larger than MAX_READ is refused before anything is
        allocated for it. The size comes from the archive, which is upstream's data: a zip
        may claim a central directory of gigabytes."""
        if size > MAX_READ:
            raise MetadataUnavailable(
                f"{redact(self.url)}: the archive asks to read {size} bytes at once; "
                f"refused (more than {MAX_READ} bytes)"
            )
        return super().read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` from the current position, fetching a range when not yet held."""
        wanted = min(len(buffer), self.size - self.position, MAX_READ)
        if wanted <= 0:
            return 0
        data = self._bytes(self.position, wanted)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _bytes(self, start: int, length: int) -> bytes:
        if self.whole is not None:
            self.whole.seek(start)
            return self.whole.read(length)
        for chunk_start, chunk in self.chunks.items():
            if chunk_start <= start and start + length <= chunk_start + len(chunk):
                return chunk[start - chunk_start : start - chunk_start + length]
        end = min(self.size, start + max(length, CHUNK)) - 1
        content, _ = self._range(f"bytes={start}-{end}", end - start + 1)
        if self.whole is not None:
            return self._bytes(start, length)
        self.chunks[start] = content
        return content[:length]

    def _range(self, byte_range: str, length: int) -> tuple[bytes, str]:
        """(the bytes, the Content-Range) of a range of `length` bytes; a server answering
        more than asked is refused. One that ignores Range: the whole body, spooled."""
        try:
            response = self.session.get(
                self.url, headers={"Range": byte_range}, timeout=self.timeout, stream=True
            )
            with response:
                if response.status_code == 200:
                    self.whole = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
                    for chunk in body_chunks(response, MAX_WHEEL, READ_SECONDS):
                        self.whole.write(chunk)  # past 8 MiB to disk: memory stays flat
                    return b"", ""
                _check_status(response, self.url, 206)
                content = read_body(response, length, READ_SECONDS)
        except requests.RequestException as error:
            raise UpstreamError(f"{redact(self.url)} could not be fetched: {error}") from None
        except BodyError as error:
            raise UpstreamError(f"{redact(self.url)} {error}") from None
        return content, response.headers.get("Content-Range", "")


def _check_status(response: requests.Response, url: str, expected: int) -> None:
    """An answer other than `expected` is an outage: the plan stops (FileGone when the file
    is not there at all)."""
    if response.status_code == expected:
        return
    response.close()
    error = FileGone if response.status_code in _GONE else UpstreamError
    raise error(f"{redact(url)} answered {response.status_code}")
