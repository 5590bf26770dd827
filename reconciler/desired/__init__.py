"""The desired state: `requirements.txt` plus `config.yaml`, validated before any network call."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from reconciler.desired.config import load_config
from reconciler.desired.locks import read_lock
from reconciler.desired.requirements import display_path, merge_per_target, read_requirements
from reconciler.errors import UserError
from reconciler.model import DesiredState, Requirement, SetKind, SetSource
from reconciler.targets import TargetEnvironment

__all__ = ["load_desired_state"]


def _read_set(
    source: SetSource,
    root: Path,
    files: list[Path],
    config: str,
    environments: Sequence[TargetEnvironment],
) -> list[Requirement]:
    """One set's lines, from a file that must lie inside the desired state (`config`: the
    config file as the user names it, for messages)."""
    path = root / source.path
    if not path.resolve().is_relative_to(root):
        why = f"{source.path} leads outside the desired state"
        raise UserError(why, path=config, line=source.line, key=f"sets.{source.name}")
    if source.kind is not SetKind.REQUIREMENTS:
        if not path.is_file():
            why = f"{source.path}: lockfile not found"
            raise UserError(why, path=config, line=source.line, key=f"sets.{source.name}")
        files.append(path)
        return read_lock(path, source.kind, display_path(path, root), environments)
    lines = read_requirements(path, root, files)
    if lines and all(r.hashes and r.pinned_version for r in lines):
        # pip-compile --generate-hashes: a lock in pip's format, not resolved again.
        return [replace(r, locked=True) for r in lines]
    return lines


def load_desired_state(directory: Path) -> DesiredState:
    """Read and validate `DIR/config.yaml` and each requirement set it names (without
    `sets`, the one set `DIR/requirements.txt`).

    The digest covers the bytes of every file read (includes too), so any edit makes a saved
    plan stale.
    """
    if not directory.is_dir():
        raise UserError("desired-state directory not found", path=directory)
    root = directory.resolve()
    config_path = root / "config.yaml"
    display = str(directory / "config.yaml")
    config = load_config(config_path, display)
    files: list[Path] = []
    environments = config.policy.environments
    lines: list[Requirement] = []
    requirements: list[Requirement] = []
    for source in config.sets:
        found = [
            replace(r, set_name=source.name)
            for r in _read_set(source, root, files, display, environments)
        ]
        lines.extend(found)
        # Markers first: a line for none of the targets neither counts nor conflicts. Each
        # set is one environment of its own: pins conflict within a set, never across sets.
        # A lock's entries stay apart: a lock may pin two versions for different targets.
        applicable = [r for r in found if r.applies_to(environments)]
        locked = all(r.locked for r in found)
        requirements.extend(applicable if locked else merge_per_target(applicable, environments))
    digest = hashlib.sha256()
    for path in sorted([*files, config_path] if config_path.exists() else files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return DesiredState(
        requirements=tuple(requirements),
        config=config,
        for_no_target=tuple(r for r in lines if not r.applies_to(environments)),
        digest=f"sha256:{digest.hexdigest()}",
        root=str(root),
        location=str(directory),
    )
