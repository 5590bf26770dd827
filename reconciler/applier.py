"""The applier: carries out a plan's actions, verifying every byte before it becomes visible.

Idempotent: each file is checked against what the registry already holds before it is touched,
so the plan is its own todo list and an apply killed half way is finished by the next one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.model import (
    Action,
    ActionKind,
    ActualState,
    Cause,
    Plan,
    PlannedFile,
    QuarantineRecord,
    parse_distribution_filename,
    version_key,
)
from reconciler.progress import ApplyProgress
from reconciler.registry import Registry
from reconciler.upstream import UpstreamIndex


class HashMismatchError(ReconcilerError):
    """Downloaded bytes do not hash to upstream's sha256; the file was discarded."""


@dataclass
class ApplyResult:
    """What an apply did; `errors` name each file that could not be placed."""

    uploaded: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def apply(
    plan: Plan,
    registry: Registry,
    upstream: UpstreamIndex,
    actual: ActualState,
    progress: ApplyProgress,
) -> ApplyResult:
    """Carry out every action; a file that fails is reported and the rest go on."""
    held = actual.held()
    result = ApplyResult()
    if plan.actions:
        registry.begin_apply(plan.id)
    progress.begin(sum(len(a.files) for a in plan.actions))
    try:
        with registry.staging() as staging:
            for action in plan.actions:
                failures = len(result.errors)
                if action.action is ActionKind.UPLOAD:
                    for planned in action.files:
                        _upload_one(
                            action, planned, held, registry, upstream, staging, progress, result
                        )
                else:
                    _delete(action, held, registry, progress, result)
                if len(result.errors) == failures:
                    _remember(action, held, registry)
    finally:
        progress.end()
    return result


def _remember(action: Action, held: dict[tuple[str, str], str], registry: Registry) -> None:
    """Keep the quarantine log: a version quarantined whole is recorded, a restored one
    forgotten (a single vanished or yanked file leaves its version in place)."""
    deleted = {f.filename for f in action.files}
    key = version_key(action.version)
    remaining = [
        filename
        for (name, filename) in held
        if name == action.name
        and filename not in deleted
        and (parsed := parse_distribution_filename(filename)) is not None
        and version_key(parsed[1]) == key
    ]
    if action.quarantine and action.action is ActionKind.DELETE and not remaining:
        registry.record_quarantine(
            QuarantineRecord(
                name=action.name,
                version=action.version,
                reason=action.reason.removeprefix("quarantine: "),
                advisories=action.advisories,
                at=datetime.now(timezone.utc),
                cause=action.cause,
                files=tuple((f.filename, f.sha256) for f in action.files),
            )
        )
    elif action.cause is Cause.RESTORED:
        registry.forget_quarantine(action.name, action.version)


def _upload_one(
    action: Action,
    planned: PlannedFile,
    held: dict[tuple[str, str], str],
    registry: Registry,
    upstream: UpstreamIndex,
    staging: Path,
    progress: ApplyProgress,
    result: ApplyResult,
) -> None:
    progress.file_started(f"upload {planned.filename}", planned.size)
    try:
        if held.get((action.name, planned.filename)) == planned.sha256:
            if planned.before_sha256 == planned.sha256:  # same bytes, new yank marker
                registry.update_metadata(action.name, action.version, planned)
                result.uploaded += 1
                progress.file_done("index metadata updated")
                return
            result.skipped += 1
            progress.file_done("already in the registry")
            return
        local = download_verified(upstream, planned, staging, progress)
        registry.upload(action.name, action.version, planned, local)
    except (ReconcilerError, OSError) as error:
        message = (
            str(error)
            if isinstance(error, ReconcilerError)
            else (f"{planned.filename}: {error.strerror or error}")
        )
        result.errors.append(message)
        progress.file_done(f"FAILED: {message}")
        return
    result.uploaded += 1
    progress.file_done("uploaded")


def _delete(
    action: Action,
    held: dict[tuple[str, str], str],
    registry: Registry,
    progress: ApplyProgress,
    result: ApplyResult,
) -> None:
    present = [f.filename for f in action.files if (action.name, f.filename) in held]
    outcome = "deleted"
    try:
        if present:
            registry.delete(action.name, action.version, present)
    except (ReconcilerError, OSError) as error:
        outcome = f"FAILED: delete {action.name} {action.version}: {error}"
        result.errors.append(outcome.removeprefix("FAILED: "))
    else:
        result.deleted += len(present)
        result.skipped += len(action.files) - len(present)
    for planned in action.files:
        progress.file_started(f"delete {planned.filename}", None)
        progress.file_done(outcome if planned.filename in present else "already gone")


def download_verified(
    upstream: UpstreamIndex, planned: PlannedFile, staging: Path, progress: ApplyProgress
) -> Path:
    """Stream a file into `staging`, hashing as it arrives; only a matching file is returned.

    Memory stays flat: chunks go straight to disk and into the hash.
    """
    if planned.url is None:
        raise ReconcilerError(f"{planned.filename}: the plan has no download URL for it")
    target = staging / planned.filename
    digest = hashlib.sha256()
    size = 0
    try:
        with upstream.open_file(planned.url) as chunks, target.open("wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                progress.advance(len(chunk))
            stream.flush()
            os.fsync(stream.fileno())
        if digest.hexdigest() != planned.sha256:
            raise HashMismatchError(
                f"{planned.filename}: sha256 mismatch: upstream index says {planned.sha256}, "
                f"the downloaded bytes hash to {digest.hexdigest()}; file discarded"
            )
        if planned.size is not None and size != planned.size:
            raise HashMismatchError(
                f"{planned.filename}: size mismatch: upstream index says {planned.size} bytes, "
                f"downloaded {size}; file discarded"
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
