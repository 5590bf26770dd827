"""The registry interface: what the mirror holds, and the only ways to change it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.errors import LockHeldError, ReconcilerError
from reconciler.model import ActualState, PlannedFile, QuarantineRecord


class RegistryError(ReconcilerError):
    """The registry could not be read or changed."""


class LockLostError(RegistryError):
    """The apply's lock was taken from it while it ran: nothing more may be written."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds the registry lock, since when, under which id."""

    id: str
    owner: str
    created_at: datetime | None  # None: the holder did not say

    def held_error(self, registry: str) -> LockHeldError:
        """The error for an apply that finds this lock held, naming how to remove it."""
        since = f" since {self.created_at:%Y-%m-%d %H:%M:%S} UTC" if self.created_at else ""
        return LockHeldError(
            f"{registry} is locked by {self.owner}{since} (lock ID {self.id}); if that apply "
            f"is dead, run `mirror force-unlock {self.id}`"
        )


class Registry(ABC):
    """Where mirrored packages live; reads its actual state, uploads and deletes files."""

    @abstractmethod
    def describe(self) -> str:
        """A one-line, credential-free description for messages."""

    @abstractmethod
    def list_actual(self, recorded: bool = False) -> ActualState:
        """Every file held, with the sha256 of its bytes; a failed listing raises.

        `recorded`: a plan's cheaper view where the registry keeps a record of what it holds
        (GitLab: each package's files as the last apply or drift saw them, listed afresh only
        for packages not in that record); the view says how fresh it is.
        """

    @abstractmethod
    def staging(self) -> AbstractContextManager[Path]:
        """A directory for downloads in progress, private to the caller (same filesystem
        as the registry where that makes placing a file an atomic rename)."""

    @abstractmethod
    def upload(self, name: str, version: str, planned: PlannedFile, local_path: Path) -> None:
        """Make a verified local file visible in the registry, with its index metadata."""

    @abstractmethod
    def begin_apply(self, plan_id: str, commit: str | None) -> None:
        """Count one more apply and record which plan it carries out, and from which commit
        of the desired state (None: not in git), before any change.

        Resuming the plan the registry already records counts nothing new.
        """

    @abstractmethod
    def update_metadata(self, name: str, version: str, planned: PlannedFile) -> None:
        """Refresh the index metadata (yank marker) of a file already held with these bytes."""

    @abstractmethod
    def delete(self, name: str, version: str, filenames: Sequence[str]) -> None:
        """Remove files of one version; files already gone are not an error."""

    @abstractmethod
    def record_quarantine(self, record: QuarantineRecord) -> None:
        """Remember why and when a version was quarantined, so a later plan can say when it
        is restored; listed back in `ActualState.quarantined`."""

    @abstractmethod
    def forget_quarantine(self, name: str, version: str) -> None:
        """Drop the quarantine record of a version that was restored."""

    @abstractmethod
    def lock(self, owner: str) -> AbstractContextManager[LockInfo]:
        """Hold the registry's lock for a whole apply; raises LockHeldError at once if held."""

    @abstractmethod
    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a stuck lock, given its id; returns what it removed."""
