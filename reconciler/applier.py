"""The applier: carries out a plan's actions, verifying every byte before it becomes visible.

Idempotent: each file is checked against what the registry already holds before it is touched,
so the plan is its own todo list and an apply killed half way is finished by the next one.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.clock import Clock
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
from reconciler.progress import ApplyProgress, FileProgress
from reconciler.registry import Registry
from reconciler.upstream import UpstreamIndex

# Concurrent downloads in an apply; placing stays sequential.
DOWNLOAD_WORKERS = 8


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
    clock: Clock,
    workers: int = DOWNLOAD_WORKERS,
) -> ApplyResult:
    """Carry out every action, in the plan's order; a file that fails is reported and the rest
    go on. Uploads download concurrently; each verified file is placed by this thread alone."""
    held = actual.held()
    result = ApplyResult()
    if plan.actions:
        registry.begin_apply(plan.id)
    progress.begin(sum(len(a.files) for a in plan.actions))
    try:
        with registry.staging() as staging, ThreadPoolExecutor(max_workers=workers) as pool:
            fetch = _Fetch(upstream, staging, progress, pool)
            uploads: list[Action] = []
            for action in plan.actions:
                if action.kind is ActionKind.UPLOAD:
                    uploads.append(action)
                    continue
                _upload_all(uploads, held, registry, fetch, progress, result, clock)
                uploads = []
                failures = len(result.errors)
                _delete(action, held, registry, progress, result)
                if len(result.errors) == failures:
                    _remember(action, held, registry, clock)
            _upload_all(uploads, held, registry, fetch, progress, result, clock)
    finally:
        progress.end()
    return result


@dataclass
class _Fetch:
    """Verified downloads into staging, run on the pool."""

    upstream: UpstreamIndex
    staging: Path
    progress: ApplyProgress
    pool: ThreadPoolExecutor

    def submit(self, planned: PlannedFile) -> Future[tuple[Path | str, FileProgress]]:
        """Start a download: its future gives the verified file, or why there is none."""
        return self.pool.submit(self._run, planned)

    def _run(self, planned: PlannedFile) -> tuple[Path | str, FileProgress]:
        handle = self.progress.file(f"upload {planned.filename}", planned.size)
        try:
            return download_verified(self.upstream, planned, self.staging, handle), handle
        except (ReconcilerError, OSError) as error:
            return _message(planned, error), handle


def _upload_all(
    actions: list[Action],
    held: dict[tuple[str, str], str],
    registry: Registry,
    fetch: _Fetch,
    progress: ApplyProgress,
    result: ApplyResult,
    clock: Clock,
) -> None:
    """Upload the files of these actions: what the registry holds is skipped (or re-stamped),
    the rest downloads concurrently and is placed here, one file at a time, as it arrives."""
    pending: dict[Future[tuple[Path | str, FileProgress]], tuple[Action, PlannedFile]] = {}
    failed: set[int] = set()
    for action in actions:
        for planned in action.files:
            if held.get((action.name, planned.filename)) != planned.sha256:
                pending[fetch.submit(planned)] = (action, planned)
                continue
            handle = progress.file(f"upload {planned.filename}", planned.size)
            if planned.before_sha256 == planned.sha256:  # same bytes, new yank marker
                try:
                    registry.update_metadata(action.name, action.version, planned)
                except (ReconcilerError, OSError) as error:
                    _fail(result, handle, _message(planned, error))
                    failed.add(id(action))
                    continue
                result.uploaded += 1
                handle.done("index metadata updated")
            else:
                result.skipped += 1
                handle.done("already in the registry")
    for future in as_completed(pending):
        action, planned = pending[future]
        local, handle = future.result()
        if isinstance(local, str):
            _fail(result, handle, local)
            failed.add(id(action))
            continue
        try:
            registry.upload(action.name, action.version, planned, local)
        except (ReconcilerError, OSError) as error:
            _fail(result, handle, _message(planned, error))
            failed.add(id(action))
            continue
        result.uploaded += 1
        handle.done("uploaded")
    for action in actions:
        if id(action) not in failed:
            _remember(action, held, registry, clock)


def _fail(result: ApplyResult, handle: FileProgress, message: str) -> None:
    result.errors.append(message)
    handle.done(f"FAILED: {message}")


def _message(planned: PlannedFile, error: Exception) -> str:
    if isinstance(error, ReconcilerError):
        return str(error)
    strerror = error.strerror if isinstance(error, OSError) else None
    return f"{planned.filename}: {strerror or error}"


def _remember(
    action: Action, held: dict[tuple[str, str], str], registry: Registry, clock: Clock
) -> None:
    """Keep the quarantine log: a version quarantined whole is recorded with when it was
    deleted (the clock, not the plan's `--now`), a restored one forgotten (a single vanished
    or yanked file leaves its version in place)."""
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
    if action.quarantine and action.kind is ActionKind.DELETE and not remaining:
        registry.record_quarantine(
            QuarantineRecord(
                name=action.name,
                version=action.version,
                reason=action.reason,
                advisories=action.advisories,
                at=clock(),
                cause=action.cause,
                files=tuple((f.filename, f.sha256) for f in action.files),
            )
        )
    elif action.cause is Cause.RESTORED:
        registry.forget_quarantine(action.name, action.version)


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
        progress.file(f"delete {planned.filename}", None).done(
            outcome if planned.filename in present else "already gone"
        )


def download_verified(
    upstream: UpstreamIndex, planned: PlannedFile, staging: Path, progress: FileProgress
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
