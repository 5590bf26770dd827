"""Lockfiles as requirement sets: PEP 751 `pylock.toml` and uv's `uv.lock`.

A lock is not resolved again: each locked package becomes one pinned requirement carrying the
sha256 of every file the lock names, and the targets (`policy.environments`) that need it, as
the lock's own markers say. In a `pylock.toml` each package carries its marker (PEP 751); in a
`uv.lock` markers sit on the dependency edges, so the targets of a package are those on which
some path from the lock's own projects reaches it.

Anything that is not from a package index is refused (a VCS, URL or archive source could not be
served by the mirror, and would hide where packages come from), except the lock's own local
projects (uv's `virtual`, `editable`, `directory` and `path` sources), which are not mirrored.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from reconciler.errors import UserError
from reconciler.model import Requirement, SetKind, SourceLocation, is_plain_filename, is_sha256
from reconciler.targets import TargetEnvironment

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

# The largest lockfile read (a large monorepo's uv.lock is a few MB).
MAX_LOCK = 64 * 1024 * 1024
# A dependency edge of a uv.lock: (name, version or None, marker or None).
_Edge = tuple[str, "str | None", "str | None"]
# uv's sources for the lock's own projects: local, never mirrored.
_LOCAL_SOURCES = {"virtual", "editable", "directory", "path"}


@dataclass(frozen=True)
class _Package:
    """One locked package, before it becomes a requirement."""

    name: str
    version: str
    files: tuple[tuple[str, str], ...]  # (file name, sha256)
    line: int
    marker: str | None = None  # pylock: the package's own marker
    requires_python: str | None = None


def read_lock(
    path: Path, kind: SetKind, display: str, environments: Sequence[TargetEnvironment]
) -> list[Requirement]:
    """The locked packages of a `pylock.toml` or `uv.lock` as pinned requirements, each with
    its files' hashes and the targets that install it (none: a package no target needs)."""
    text, document = _load(path, display)
    lines = _package_lines(text)
    if kind is SetKind.PYLOCK:
        packages, targets = _pylock(document, display, lines, environments)
    else:
        packages, targets = _uv_lock(document, display, lines, environments)
    return [
        Requirement(
            name=package.name,
            specifier=SpecifierSet(f"=={package.version}"),
            text=f"{package.name}=={package.version}",
            source=SourceLocation(display, package.line),
            hashes=frozenset(sha for _, sha in package.files),
            targets=frozenset(map(str, targets[package])),
            locked=True,
            locked_files=package.files,
        )
        for package in packages
    ]


def _load(path: Path, display: str) -> tuple[str, dict[str, Any]]:
    """The lock's text (read once, bounded) and its TOML document."""
    try:
        if path.stat().st_size > MAX_LOCK:
            raise UserError(f"larger than {MAX_LOCK >> 20} MiB: not a lockfile", path=display)
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read: {error}", path=display) from None
    except (tomllib.TOMLDecodeError, RecursionError) as error:
        raise UserError(f"not valid TOML: {error}", path=display) from None


def _package_lines(text: str) -> dict[tuple[str, str], int]:
    """The line of each `[[package]]` (uv) or `[[packages]]` (PEP 751) table, by (name,
    version), for messages: TOML readers do not say where a value was."""
    found: dict[tuple[str, str], int] = {}
    start, name = 0, ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped in ("[[package]]", "[[packages]]"):
            start, name = number, ""
        elif start and (
            match := re.fullmatch(r"""(name|version)\s*=\s*["']([^"']*)["']""", stripped)
        ):
            if match[1] == "name":
                name = canonicalize_name(match[2])
            elif name:
                found.setdefault((name, match[2]), start)
    return found


def _pylock(
    document: Mapping[str, Any],
    display: str,
    lines: Mapping[tuple[str, str], int],
    environments: Sequence[TargetEnvironment],
) -> tuple[list[_Package], dict[_Package, list[TargetEnvironment]]]:
    """PEP 751: every package names its files and hashes, and its marker."""
    if str(document.get("lock-version", "")).split(".")[0] != "1":
        raise UserError("expected lock-version 1.x (PEP 751)", path=display)
    serving = _allowed(environments, document.get("requires-python"), display, "requires-python")
    packages: list[_Package] = []
    targets: dict[_Package, list[TargetEnvironment]] = {}
    if not document.get("packages"):
        raise UserError("no [[packages]] tables: an empty or misspelled pylock", path=display)
    for entry in _tables(document["packages"], display, "packages"):
        name, version = _name_version(entry, display)
        where = f"{name} {version}"
        for key in ("vcs", "directory", "archive"):
            if key in entry:
                raise UserError(
                    f"{where}: a {key} source is refused: not from an index", path=display
                )
        files = [
            _pylock_file(f, display, where)
            for f in _tables(entry.get("wheels", []), display, where)
        ]
        if "sdist" in entry:
            files.append(_pylock_file(entry["sdist"], display, where))
        if not files:
            raise UserError(f"{where}: no files to mirror", path=display)
        package = _Package(
            name,
            version,
            tuple(files),
            lines.get((name, version), 0),
            _text(entry.get("marker"), display, where),
            _text(entry.get("requires-python"), display, where),
        )
        packages.append(package)
        targets[package] = [
            t
            for t in _allowed(serving, package.requires_python, display, where)
            if _holds(package.marker, t, display, where)
        ]
    return packages, targets


def _pylock_file(entry: object, display: str, where: str) -> tuple[str, str]:
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a table for each file", path=display)
    hashes = entry.get("hashes")
    sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
    return _file(entry.get("name") or _url_name(entry.get("url")), sha256, display, where)


def _uv_lock(
    document: Mapping[str, Any],
    display: str,
    lines: Mapping[tuple[str, str], int],
    environments: Sequence[TargetEnvironment],
) -> tuple[list[_Package], dict[_Package, list[TargetEnvironment]]]:
    """uv's lock: packages from an index, and the edges (with markers) that reach them."""
    if document.get("version") != 1:
        raise UserError("expected a uv.lock of version 1", path=display)
    serving = _allowed(environments, document.get("requires-python"), display, "requires-python")
    if "package" not in document:
        raise UserError("no [[package]] tables: an empty or misspelled uv.lock", path=display)
    entries = _tables(document["package"], display, "package")
    by_key: dict[tuple[str, str], _Package] = {}
    local: list[tuple[str, str]] = []
    keys: list[tuple[str, str]] = []
    for entry in entries:
        source = entry.get("source", {})
        kinds = set(source) if isinstance(source, dict) else set()
        if kinds and kinds <= _LOCAL_SOURCES:
            # The lock's own projects: roots, never mirrored (a dynamic version has none).
            name = _name(entry, display)
            local.append((name, str(entry.get("version", ""))))
            keys.append(local[-1])
            continue
        name, version = _name_version(entry, display)
        keys.append((name, version))
        if kinds != {"registry"}:
            shown = ", ".join(sorted(kinds)) or "no"
            raise UserError(
                f"{name} {version}: a {shown} source is refused: not from an index", path=display
            )
        where = f"{name} {version}"
        files = [
            _uv_file(f, display, where) for f in _tables(entry.get("wheels", []), display, where)
        ]
        if "sdist" in entry:
            files.append(_uv_file(entry["sdist"], display, where))
        if not files:
            raise UserError(f"{where}: no files to mirror", path=display)
        by_key[(name, version)] = _Package(
            name, version, tuple(files), lines.get((name, version), 0)
        )
    edges = {key: list(_uv_edges(entry, display)) for key, entry in zip(keys, entries, strict=True)}
    roots = local or list(by_key)
    reached = {t: _reachable(roots, t, edges, display) for t in serving}
    return list(by_key.values()), {
        package: [t for t in serving if key in reached[t]] for key, package in by_key.items()
    }


def _uv_file(entry: object, display: str, where: str) -> tuple[str, str]:
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a table for each file", path=display)
    digest = str(entry.get("hash", ""))
    algorithm, _, value = digest.partition(":")
    sha256 = value if algorithm == "sha256" else None
    return _file(
        entry.get("filename") or _url_name(entry.get("url") or entry.get("path")),
        sha256,
        display,
        where,
    )


def _uv_edges(entry: Mapping[str, Any], display: str) -> Iterable[_Edge]:
    """(name, version or None, marker or None) of each dependency a package may pull in: its
    dependencies, its extras' and (for the lock's own projects) its dependency groups'."""
    lists: list[object] = [entry.get("dependencies", [])]
    for table in ("optional-dependencies", "dev-dependencies"):
        groups = entry.get(table, {})
        lists.extend(groups.values() if isinstance(groups, dict) else [])
    for dependencies in lists:
        for edge in _tables(dependencies, display, "dependencies"):
            name = canonicalize_name(str(edge.get("name", "")))
            version = edge.get("version")
            marker = edge.get("marker")
            yield name, str(version) if version else None, str(marker) if marker else None


def _reachable(
    roots: Sequence[tuple[str, str]],
    target: TargetEnvironment,
    edges: Mapping[tuple[str, str], list[_Edge]],
    display: str,
) -> set[tuple[str, str]]:
    """The (name, version) of every package some path of edges whose markers hold on the
    target leads to from the roots (an edge without a version: every locked version)."""
    versions: dict[str, list[str]] = {}
    for name, version in edges:
        versions.setdefault(name, []).append(version)
    seen, pending = set(roots), list(roots)
    while pending:
        current = pending.pop()
        for name, pinned, marker in edges.get(current, []):
            if not _holds(marker, target, display, f"{current[0]} {current[1]}"):
                continue
            for key in [(name, v) for v in ([pinned] if pinned else versions.get(name, []))]:
                if key not in seen:
                    seen.add(key)
                    pending.append(key)
    return seen


def _tables(value: object, display: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UserError(f"{where}: expected an array of tables", path=display)
    return value


def _name(entry: Mapping[str, Any], display: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(
        r"[A-Za-z0-9]([A-Za-z0-9._-]{0,198}[A-Za-z0-9])?", name
    ):
        raise UserError(f"a package without a valid name: {str(name)[:80]!r}", path=display)
    return canonicalize_name(name)


def _name_version(entry: Mapping[str, Any], display: str) -> tuple[str, str]:
    name, version = _name(entry, display), entry.get("version")
    if not isinstance(version, str):
        raise UserError(
            f"{name}: no version: only packages from an index are mirrored", path=display
        )
    try:
        Version(version)
    except InvalidVersion:
        raise UserError(f"{name}: not a valid version: {version[:80]!r}", path=display) from None
    return name, version


def _file(name: object, sha256: object, display: str, where: str) -> tuple[str, str]:
    if not isinstance(name, str) or not is_plain_filename(name):
        raise UserError(f"{where}: a file without a plain file name", path=display)
    if not isinstance(sha256, str) or not is_sha256(sha256.lower()):
        raise UserError(f"{where}: {name} has no sha256 to check it against", path=display)
    return name, sha256.lower()


def _url_name(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None


def _text(value: object, display: str, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise UserError(f"{where}: expected a string, got {str(value)[:80]!r}", path=display)


def _allowed(
    environments: Sequence[TargetEnvironment], requires_python: object, display: str, where: str
) -> list[TargetEnvironment]:
    """The targets whose Python the lock's (or a package's) `requires-python` allows."""
    if requires_python is None:
        return list(environments)
    try:
        SpecifierSet(str(requires_python))
    except InvalidSpecifier:
        raise UserError(
            f"{where}: not a valid requires-python: {requires_python!r}", path=display
        ) from None
    return [t for t in environments if t.allows(str(requires_python))]


def _holds(marker: str | None, target: TargetEnvironment, display: str, where: str) -> bool:
    """A PEP 508 marker on the target; one that cannot be judged holds (mirror, not miss)."""
    if marker is None:
        return True
    try:
        return target.satisfies(_parsed_marker(marker))
    except InvalidMarker:
        raise UserError(f"{where}: not a valid marker: {marker[:80]!r}", path=display) from None


@lru_cache(maxsize=4096)
def _parsed_marker(text: str) -> Marker:
    """A marker parsed once per lock, however many edges and targets ask (an invalid one
    raises each time: it ends the read)."""
    return Marker(text)
