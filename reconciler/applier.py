"""The applier: carries out a plan's actions, verifying every byte before it becomes visible.

Idempotent: each file is checked against what the registry already holds before it is touched,
so the plan is its own todo list and an apply killed half way is finished by the next one.
Cancelled (Ctrl-C), it places nothing more, stops its downloads and says what it left undone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.cancel import Cancellation, Cancelled
from reconciler.clock import Clock
from reconciler.errors import ReconcilerError
from reconciler.model import (
    Action,
    ActionKind,
    ActualState,
    Plan,
    PlannedFile,
    QuarantineRecord,
    parse_distribution_filename,
    version_key,
)
from reconciler.progress import ApplyProgress, FileProgress
from reconciler.registry import LockLostError, Registry
from reconciler.upstream import UpstreamIndex

# Concurrent downloads in an apply; placing stays sequential.
DOWNLOAD_WORKERS = 8


@dataclass
class ApplyResult:
    """What an apply did; `errors` name each file that could not be placed, `undone` each
    action a cancelled apply did not finish."""

    uploaded: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)
    cancelled: bool = False


def apply(
    plan: Plan,
    registry: Registry,
    upstream: UpstreamIndex,
    actual: ActualState,
    progress: ApplyProgress,
    clock: Clock,
    cancel: Cancellation | None = None,
    workers: int = DOWNLOAD_WORKERS,
) -> ApplyResult:
    """Carry out every action, in the plan's order; a file that fails is reported and the rest
    go on. Uploads download concurrently; each verified file is placed by this thread alone."""
    cancel = cancel or Cancellation()
    result = ApplyResult()
    if plan.has_changes:
        registry.begin_apply(plan.id, plan.desired_commit)
    progress.begin(sum(len(a.files) for a in plan.actions))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with cancel.armed(), registry.staging() as staging:
            _Apply(
                registry,
                actual,
                progress,
                result,
                clock,
                cancel,
                pool,
                upstream,
                staging,
            ).run(plan.actions)
    finally:
        # Cancelled: downloads still waiting on the network are abandoned, not waited for.
        pool.shutdown(wait=not cancel.cancelled, cancel_futures=True)
        progress.end()
    result.cancelled = bool(result.undone)
    return result


@dataclass(frozen=True)
class _Failure:
    """Why a file was not downloaded: an error to report, or the apply was cancelled."""

    message: str
    cancelled: bool = False


@dataclass
class _Apply:
    """One apply's state: what the registry holds, what was done, how to download."""

    registry: Registry
    actual: ActualState  # as the apply began: the files held, the quarantine log's records
    progress: ApplyProgress
    result: ApplyResult
    clock: Clock
    cancel: Cancellation
    pool: ThreadPoolExecutor
    upstream: UpstreamIndex
    staging: Path
    held: dict[tuple[str, str], str] = field(init=False)

    def __post_init__(self) -> None:
        self.held = self.actual.held()

    def run(self, actions: tuple[Action, ...]) -> None:
        """Deletes in order; the uploads between two deletes together, downloads concurrent."""
        uploads: list[Action] = []
        for index, action in enumerate(actions):
            if action.kind is ActionKind.UPLOAD:
                uploads.append(action)
                continue
            self._uploads(uploads)
            uploads = []
            if self.cancel.cancelled:
                self.result.undone.extend(_describe(a) for a in actions[index:])
                return
            self._delete(action)
        self._uploads(uploads)

    def _uploads(self, actions: list[Action]) -> None:
        """Upload the files of these actions: what the registry holds is skipped (or
        re-stamped), the rest downloads concurrently and is placed here as it arrives."""
        pending: dict[Future[tuple[Path | _Failure, FileProgress]], tuple[Action, PlannedFile]]
        pending = {}
        unfinished: set[int] = set()
        for action in actions:
            for planned in action.files:
                if self.held.get((action.name, planned.filename)) != planned.sha256:
                    pending[self.pool.submit(self._download, planned)] = (action, planned)
                elif not self._restamp(action, planned):
                    unfinished.add(id(action))
        stop = self.cancel.stop_future()  # completes on Ctrl-C: no waiting for the rest
        waitable: list[Future[Any]] = [*pending, stop]
        for future in as_completed(waitable) if pending else ():
            if future is stop:
                break
            action, planned = pending.pop(future)
            if not self._place(action, planned, *future.result()):
                unfinished.add(id(action))
            if not pending:
                break
        unfinished.update(id(action) for action, _ in pending.values())
        for action in actions:
            if id(action) not in unfinished:
                # The policy admits what it uploads: a quarantine log entry is history now.
                self.registry.forget_quarantine(action.name, action.version)
            elif self.cancel.cancelled:
                self.result.undone.append(_describe(action))

    def _download(self, planned: PlannedFile) -> tuple[Path | _Failure, FileProgress]:
        """A verified file in staging, or why there is none (run on the pool)."""
        handle = self.progress.file(f"upload {planned.filename}", planned.size)
        try:
            local = download_verified(self.upstream, planned, self.staging, handle, self.cancel)
        except Cancelled:
            return _Failure("cancelled", cancelled=True), handle
        except (ReconcilerError, OSError) as error:
            return _Failure(_message(planned, error)), handle
        return local, handle

    def _place(
        self, action: Action, planned: PlannedFile, local: Path | _Failure, handle: FileProgress
    ) -> bool:
        """Make a downloaded file visible, unless the download failed or the apply stops."""
        if self.cancel.cancelled:
            handle.done("not placed: cancelled")
            return False
        if isinstance(local, _Failure):
            self._fail(handle, local.message)
            return False
        upload = self.registry.upload
        return self._write(
            handle, planned, lambda: upload(action.name, action.version, planned, local), "uploaded"
        )

    def _restamp(self, action: Action, planned: PlannedFile) -> bool:
        """A file the registry holds already: new index metadata (a yank marker), or nothing."""
        handle = self.progress.file(f"upload {planned.filename}", planned.size)
        if self.cancel.cancelled:
            handle.done("not started: cancelled")
            return False
        if planned.before_sha256 != planned.sha256:
            self.result.skipped += 1
            handle.done("already in the registry")
            return True
        update = self.registry.update_metadata
        return self._write(
            handle,
            planned,
            lambda: update(action.name, action.version, planned),
            "index metadata updated",
        )

    def _write(
        self, handle: FileProgress, planned: PlannedFile, write: Callable[[], None], outcome: str
    ) -> bool:
        """One registry write for a file: counted as uploaded, or reported as failed."""
        try:
            write()
        except Cancelled:  # a retry's wait ended by Ctrl-C (GitLab): the next apply looks again
            handle.done("not placed: cancelled")
            return False
        except LockLostError:
            raise  # another apply may be writing now: this one stops
        except (ReconcilerError, OSError) as error:
            self._fail(handle, _message(planned, error))
            return False
        self.result.uploaded += 1
        handle.done(outcome)
        return True

    def _delete(self, action: Action) -> None:
        present = [f.filename for f in action.files if (action.name, f.filename) in self.held]
        record = self._quarantine_record(action)
        outcome = "deleted"
        try:
            if record is not None:
                # Why first, then the delete: an apply killed between the two leaves a record
                # of a version still held (quarantined again by the next plan), never a
                # version gone without its record (which keeps refusing new upstream bytes).
                self.registry.record_quarantine(record)
            if present:
                self.registry.delete(action.name, action.version, present)
        except Cancelled:
            self.result.undone.append(_describe(action))
            outcome = "not deleted: cancelled"
        except LockLostError:
            raise
        except (ReconcilerError, OSError) as error:
            outcome = f"FAILED: delete {action.name} {action.version}: {error}"
            self.result.errors.append(outcome.removeprefix("FAILED: "))
        else:
            self.result.deleted += len(present)
            self.result.skipped += len(action.files) - len(present)
        for planned in action.files:
            self.progress.file(f"delete {planned.filename}", None).done(
                outcome if planned.filename in present else "already gone"
            )

    def _quarantine_record(self, action: Action) -> QuarantineRecord | None:
        """The quarantine log's entry for a version quarantined whole, with when it was
        deleted (the clock, not the plan's `--now`); None when files of it stay (a single
        vanished or yanked file leaves its version in place) or it is no quarantine."""
        if not action.quarantine:
            return None
        deleted = {f.filename for f in action.files}
        key = version_key(action.version)
        remaining = [
            filename
            for (name, filename) in self.held
            if name == action.name
            and filename not in deleted
            and (parsed := parse_distribution_filename(filename)) is not None
            and version_key(parsed[1]) == key
        ]
        if remaining:
            return None
        return QuarantineRecord(
            name=action.name,
            version=action.version,
            reason=action.reason,
            advisories=action.advisories,
            at=self.clock(),
            cause=action.cause,
            files=tuple((f.filename, f.sha256) for f in action.files),
        ).after(self.actual.quarantine_record(action.name, action.version))

    def _fail(self, handle: FileProgress, message: str) -> None:
        self.result.errors.append(message)
        handle.done(f"FAILED: {message}")


def _describe(action: Action) -> str:
    verb = "quarantine" if action.quarantine else action.kind.value
    return f"{verb} {action.name} {action.version}"


def _message(planned: PlannedFile, error: Exception) -> str:
    if isinstance(error, ReconcilerError):
        return str(error)
    strerror = error.strerror if isinstance(error, OSError) else None
    return f"{planned.filename}: {strerror or error}"


def download_verified(
    upstream: UpstreamIndex,
    planned: PlannedFile,
    staging: Path,
    progress: FileProgress,
    cancel: Cancellation,
) -> Path:
    """Download a planned file into `staging`; only bytes that match the plan are returned.

    Raises Cancelled when the apply is cancelled, leaving nothing behind.
    """
    # A directory of its own per download: two downloads never write into one file.
    target = Path(tempfile.mkdtemp(dir=staging)) / planned.filename
    upstream.download(planned, target, cancel, progress.advance)
    return target
