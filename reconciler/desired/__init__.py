"""The desired state: `requirements.txt` plus `config.yaml`, validated before any network call."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.desired.config import load_config
from reconciler.desired.requirements import merge_per_target, read_requirements
from reconciler.errors import UserError
from reconciler.model import DesiredState

__all__ = ["load_desired_state"]


def load_desired_state(directory: Path) -> DesiredState:
    """Read and validate `DIR/requirements.txt` and `DIR/config.yaml`.

    The digest covers the bytes of every file read (includes too), so any edit makes a saved
    plan stale.
    """
    if not directory.is_dir():
        raise UserError("desired-state directory not found", path=directory)
    root = directory.resolve()
    config_path = root / "config.yaml"
    config = load_config(config_path, str(directory / "config.yaml"))
    files: list[Path] = []
    lines = read_requirements(root / "requirements.txt", root, files)
    # Markers first: a line for none of the targets neither counts nor conflicts.
    environments = config.policy.environments
    requirements = merge_per_target([r for r in lines if r.applies_to(environments)], environments)
    digest = hashlib.sha256()
    for path in sorted([*files, config_path] if config_path.exists() else files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return DesiredState(
        requirements=requirements,
        config=config,
        for_no_target=tuple(r for r in lines if not r.applies_to(environments)),
        digest=f"sha256:{digest.hexdigest()}",
        root=str(root),
        location=str(directory),
    )
