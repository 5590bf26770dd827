"""Read `requirements.txt` (and its `-r` includes) into validated requirements.

Anything that could redirect where packages come from is refused before any network call:
editables, URLs, VCS references, local paths, index and find-links options, includes outside
the desired-state directory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from pip_requirements_parser import RequirementsFile

from reconciler.errors import UserError
from reconciler.model import Requirement, SourceLocation
from reconciler.targets import TargetEnvironment

# The longest line read: a requirement with a few dozen `--hash` options stays far below.
MAX_LINE = 16 * 1024

# Options that point pip at another source of packages (pip's requirements-file format).
_REDIRECTING_OPTIONS = {
    "index_url": "--index-url",
    "extra_index_urls": "--extra-index-url",
    "find_links": "--find-links",
    "trusted_hosts": "--trusted-host",
    "no_index": "--no-index",
}


def read_requirements(
    path: Path, root: Path, seen_files: list[Path], including: tuple[Path, ...] = ()
) -> list[Requirement]:
    """Parse one requirements file and its includes; `seen_files` collects every file read.

    `including` is the chain of files that led here, to tell a cycle from a shared include.
    """
    display = display_path(path, root)
    if not path.is_file():
        raise UserError("requirements file not found", path=display)
    if path not in seen_files:
        seen_files.append(path)
    _refuse_absurd_lines(path, display)
    try:
        parsed = RequirementsFile.from_file(str(path), include_nested=False)
    except Exception as error:  # the parser raises bare exceptions on unreadable input
        raise UserError(f"cannot parse requirements: {error}", path=display) from error

    for invalid in parsed.invalid_lines:
        # The parser says "Invalid requirement: : <why>" over three lines; one line, our words.
        why = str(invalid.error_message).splitlines()[0]
        why = why.removeprefix("Invalid requirement:").strip(" :")
        text = str(invalid.requirement_line.line).strip()
        raise UserError(
            f"not a valid requirement {text!r}: {why}",
            path=display,
            line=invalid.requirement_line.line_number,
        )

    requirements: list[Requirement] = []
    for option_line in parsed.options:
        line = option_line.requirement_line.line_number
        for option, value in option_line.options.items():
            if option in _REDIRECTING_OPTIONS:
                raise UserError(
                    f"{_REDIRECTING_OPTIONS[option]} is refused: the mirror only reads the "
                    "upstream index from config.yaml",
                    path=display,
                    line=line,
                )
            if option != "requirements":
                flag = "--" + option.removesuffix("s").replace("_", "-")
                raise UserError(f"option {flag} is not supported", path=display, line=line)
            for include in value:
                requirements.extend(
                    _read_include(path, include, root, display, line, seen_files, including)
                )

    requirements.extend(_to_requirement(r, display) for r in parsed.requirements)
    return requirements


def _refuse_absurd_lines(path: Path, display: str) -> None:
    """A line longer than any real requirement (its hashes included) is refused before the
    parser sees it: it takes minutes on a line of a few hundred KiB."""
    try:
        with path.open("rb") as stream:
            for number, line in enumerate(stream, start=1):
                if len(line) > MAX_LINE:
                    raise UserError(
                        f"a line of {len(line)} bytes, more than {MAX_LINE}: not a requirement",
                        path=display,
                        line=number,
                    )
    except OSError as error:
        raise UserError(f"cannot read: {error.strerror}", path=display) from None


def _read_include(
    parent: Path,
    include: str,
    root: Path,
    display: str,
    line: int,
    seen: list[Path],
    including: tuple[Path, ...],
) -> list[Requirement]:
    """Follow `-r FILE`, which must stay inside the desired-state directory."""
    if "://" in include:
        raise UserError(f"-r {include}: remote includes are refused", path=display, line=line)
    try:
        target = (parent.parent / include).resolve()
    except (RuntimeError, OSError):  # Python < 3.13 raises RuntimeError on a symlink loop
        raise UserError(f"-r {include}: a symlink loop", path=display, line=line) from None
    if not target.is_relative_to(root.resolve()):
        raise UserError(
            f"-r {include}: includes outside {root} are refused", path=display, line=line
        )
    if target in (*including, parent):
        raise UserError(f"-r {include}: include cycle", path=display, line=line)
    if not target.is_file():
        raise UserError(f"-r {include}: file not found", path=display, line=line)
    return read_requirements(target, root, seen, (*including, parent))


def _to_requirement(install_req: object, display: str) -> Requirement:
    """Validate one parsed line; refuse anything that is not a plain index requirement."""
    line_number = install_req.requirement_line.line_number  # type: ignore[attr-defined]
    text = install_req.requirement_line.line.strip()  # type: ignore[attr-defined]

    def refuse(what: str) -> UserError:
        return UserError(f"{what} are refused: {text!r}", path=display, line=line_number)

    if install_req.is_editable:  # type: ignore[attr-defined]
        raise refuse("editable installs")
    if install_req.is_vcs_url:  # type: ignore[attr-defined]
        raise refuse("VCS references")
    link = install_req.link  # type: ignore[attr-defined]
    if link is not None:
        if str(link.url).split(":", 1)[0] in ("http", "https", "ftp"):
            raise refuse("URLs")
        raise refuse("local paths")
    if install_req.is_local_path or not install_req.name:  # type: ignore[attr-defined]
        raise refuse("local paths")

    hashes: set[str] = set()
    for option in install_req.hash_options:  # type: ignore[attr-defined]
        algorithm, _, digest = option.partition(":")
        if algorithm != "sha256":
            why = "only sha256 hashes can be checked against upstream"
        elif not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            why = "not a sha256 digest: expected 64 hexadecimal characters"
        else:
            hashes.add(digest.lower())
            continue
        raise UserError(f"--hash={option}: {why}", path=display, line=line_number)

    marker = install_req.marker  # type: ignore[attr-defined]
    return Requirement(
        name=canonicalize_name(install_req.name),  # type: ignore[attr-defined]
        specifier=SpecifierSet(str(install_req.specifier or "")),  # type: ignore[attr-defined]
        # The user's own spelling, for plan reasons; hash options are noise there.
        text=re.split(r"\s+--hash", text)[0].strip(),
        source=SourceLocation(display, line_number),
        extras=frozenset(install_req.extras or ()),  # type: ignore[attr-defined]
        marker=str(marker) if marker else None,
        hashes=frozenset(hashes),
    )


def merge_per_target(
    lines: Sequence[Requirement], environments: Sequence[TargetEnvironment]
) -> tuple[Requirement, ...]:
    """One requirement per project and target: the lines of a project that serve the same
    targets combine as pip combines them; lines whose markers split a project between
    targets (`numpy==2.4.6; python_version < "3.12"` beside `numpy==2.5.4; python_version >=
    "3.12"`) stay apart, each for its targets. Two lines that serve one target and that no
    version satisfies together are refused, both named."""
    by_name: dict[str, list[Requirement]] = {}
    for line in lines:
        by_name.setdefault(line.name, []).append(line)
    merged: list[Requirement] = []
    for group in by_name.values():
        served: dict[tuple[int, ...], list[TargetEnvironment]] = {}
        for target in environments:
            serving = tuple(i for i, line in enumerate(group) if line.applies_to([target]))
            if serving:
                served.setdefault(serving, []).append(target)
        for serving, targets in served.items():
            combined = _combined([group[i] for i in serving], targets[0])
            if len(served) > 1:
                combined = replace(combined, targets=frozenset(map(str, targets)))
            merged.append(combined)
    return tuple(merged)


def _combined(lines: Sequence[Requirement], target: TargetEnvironment) -> Requirement:
    """Lines of one project that serve one target, as pip combines them: specifiers
    intersect, the marker holds where either line's does."""
    combined = lines[0]
    for line in lines[1:]:
        _refuse_conflict(combined, line, target)
        combined = Requirement(
            name=combined.name,
            specifier=combined.specifier & line.specifier,
            text=f"{combined.text}, {line.text}" if combined.text != line.text else combined.text,
            source=combined.source,
            extras=combined.extras | line.extras,
            marker=_either(combined.marker, line.marker),
            hashes=combined.hashes | line.hashes,
        )
    return combined


def _refuse_conflict(earlier: Requirement, later: Requirement, target: TargetEnvironment) -> None:
    """Refuse two lines of one project when a pin of one is outside the other's specifier."""
    for pinned, other in ((earlier, later), (later, earlier)):
        version = pinned.pinned_version
        if version is not None and not other.specifier.contains(version, prereleases=True):
            raise UserError(
                f"conflicting requirements for {later.name}: {earlier.text} (at "
                f"{earlier.source}) and {later.text}; no version satisfies both, and both "
                f"serve {target} (split them by markers to serve different targets)",
                path=later.source.path,
                line=later.source.line,
            )


def _either(first: str | None, second: str | None) -> str | None:
    """The marker of a merged line: it applies where either line does (None: everywhere)."""
    if first is None or second is None:
        return None
    return first if first == second else f"({first}) or ({second})"


def display_path(path: Path, root: Path) -> str:
    """The path as users know it: relative to the desired-state directory's parent."""
    try:
        return str(path.resolve().relative_to(root.resolve().parent))
    except ValueError:
        return str(path)
