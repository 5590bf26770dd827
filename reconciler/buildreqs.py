"""The build requirements of an sdist (PEP 518): what pip fetches to build it on a target.

pip builds an sdist in an isolated environment whose packages come from the same index: the
`[build-system] requires` of its `pyproject.toml`, or setuptools when it has none (pip's
fallback for a project without one). A target that installs a release from its sdist needs
those mirrored too. The sdist is downloaded (bounded in size and time, verified against the
index's sha256), its `pyproject.toml` read (bounded) and the answer cached by the sdist's
sha256: a file's bytes never change.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement

from reconciler import cachefile
from reconciler.concurrency import map_concurrently
from reconciler.errors import HashMismatchError, UpstreamError
from reconciler.model import UpstreamFile

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

# pip's build requirements for a project without a [build-system] table.
FALLBACK = ("setuptools>=40.8.0",)
# The largest sdist downloaded to read its pyproject.toml, and that file's largest size.
MAX_SDIST = 256 * 1024 * 1024
MAX_PYPROJECT = 1024 * 1024
# The most build requirements believed (real projects name a handful).
MAX_BUILD_REQUIRES = 100
# How far into an sdist's tar the search for pyproject.toml goes (it is near the front).
MAX_MEMBERS = 100_000
MAX_UNPACKED = 1024 * 1024 * 1024


class BuildInfoUnavailable(UpstreamError):
    """An sdist whose build requirements cannot be read: not an archive, no single top
    directory, a pyproject.toml that is not TOML or absurd."""


# Downloads an sdist to a path, verified against the index's sha256 and size.
Download = Callable[[UpstreamFile, Path], None]


class BuildRequirementsReader:
    """Reads sdists' build requirements concurrently, cached on disk."""

    def __init__(self, download: Download, cache_dir: Path | None) -> None:
        self.download = download
        self.cache_dir = cache_dir

    def read_many(self, sdists: Iterable[UpstreamFile]) -> dict[str, tuple[str, ...] | str]:
        """By sdist sha256: its build requirements, or why they cannot be read. An outage
        (UpstreamError) stops the plan, as every upstream outage does."""
        unique = {f.sha256: f for f in sdists if f.sha256}
        read = map_concurrently(self._read_or_why, unique.values(), 8)
        return dict(zip(unique, read, strict=True))

    def _read_or_why(self, sdist: UpstreamFile) -> tuple[str, ...] | str:
        try:
            return self.read(sdist)
        except BuildInfoUnavailable as unavailable:
            return str(unavailable)

    def read(self, sdist: UpstreamFile) -> tuple[str, ...]:
        """One sdist's build requirements: from the cache, else from the sdist itself."""
        cached = self.cache_dir / "build" / f"{sdist.sha256}.json" if self.cache_dir else None
        if cached is not None and cached.is_file():
            kept = json.loads(cached.read_bytes())
            if isinstance(kept, dict):  # a file's bytes never change: nor does why not
                raise BuildInfoUnavailable(str(kept.get("unavailable")))
            return tuple(str(line) for line in kept)
        with tempfile.TemporaryDirectory() as directory:
            local = Path(directory) / sdist.filename
            try:
                self.download(sdist, local)
            except HashMismatchError as mismatch:
                raise BuildInfoUnavailable(str(mismatch)) from None
            try:
                found = build_requires(local, sdist.filename)
            except BuildInfoUnavailable as unavailable:
                if cached is not None:
                    cachefile.store(cached, json.dumps({"unavailable": str(unavailable)}).encode())
                raise
        if cached is not None:
            cachefile.store(cached, json.dumps(list(found)).encode())
        return found


def build_requires(path: Path, filename: str) -> tuple[str, ...]:
    """`[build-system] requires` of the sdist at `path` (a .tar.gz or .zip whose members sit
    in one top directory), or FALLBACK when it has no pyproject.toml or no such table."""
    raw = _pyproject(path, filename)
    if raw is None:
        return FALLBACK
    try:
        document = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as error:
        raise BuildInfoUnavailable(f"{filename}: pyproject.toml: {error}"[:300]) from None
    table = document.get("build-system")
    if not isinstance(table, dict) or "requires" not in table:
        return FALLBACK
    requires = table["requires"]
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise BuildInfoUnavailable(f"{filename}: build-system.requires is not a list of strings")
    if len(requires) > MAX_BUILD_REQUIRES:
        raise BuildInfoUnavailable(f"{filename}: {len(requires)} build requirements: not believed")
    return tuple(_checked(line, filename) for line in requires)


def _checked(line: str, filename: str) -> str:
    """A build requirement as written, once it parses (PEP 508)."""
    try:
        Requirement(line)
    except InvalidRequirement as error:
        raise BuildInfoUnavailable(f"{filename}: build requirement {line!r}: {error}") from None
    return line


def _pyproject(path: Path, filename: str) -> bytes | None:
    """The top directory's pyproject.toml (a regular file, read up to MAX_PYPROJECT); None
    when there is none. A tar is read as a stream and left as soon as the file is found,
    within MAX_MEMBERS members and MAX_UNPACKED bytes (a small gzip can inflate to GiBs)."""
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()[:MAX_MEMBERS]
                top = _top(infos[0].filename) if infos else None
                for info in infos:
                    if _is_pyproject(info.filename, top) and not info.is_dir():
                        with archive.open(info) as stream:
                            return _bounded(stream.read(MAX_PYPROJECT + 1), filename)
                return None
        with tarfile.open(path, "r:*") as archive:
            top = None
            for count, member in enumerate(archive):
                top = top or _top(member.name)
                if count >= MAX_MEMBERS or archive.offset > MAX_UNPACKED:
                    raise BuildInfoUnavailable(f"{filename}: too large to look into")
                if _is_pyproject(member.name, top):
                    extracted = archive.extractfile(member) if member.isfile() else None
                    if extracted is None:  # a link, a directory: not what an sdist holds
                        raise BuildInfoUnavailable(f"{filename}: pyproject.toml is not a file")
                    return _bounded(extracted.read(MAX_PYPROJECT + 1), filename)
            return None
    except BuildInfoUnavailable:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as error:
        raise BuildInfoUnavailable(f"{filename}: not a readable archive: {error}"[:300]) from None


def _parts(name: str) -> list[str]:
    """A member's path, without `./` steps (tar writes `./pkg-1.0/...` too)."""
    return [part for part in PurePosixPath(name).parts if part != "."]


def _top(name: str) -> str | None:
    parts = _parts(name)
    return parts[0] if parts else None


def _is_pyproject(name: str, top: str | None) -> bool:
    return top is not None and _parts(name) == [top, "pyproject.toml"]


def _bounded(raw: bytes, filename: str) -> bytes:
    if len(raw) > MAX_PYPROJECT:
        raise BuildInfoUnavailable(f"{filename}: pyproject.toml larger than {MAX_PYPROJECT} bytes")
    return raw
