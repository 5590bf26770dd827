"""The one error root every expected failure derives from, caught once at the CLI boundary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.model import Plan


class ReconcilerError(Exception):
    """An expected failure: the CLI prints its message on one line and exits 1."""


class UserError(ReconcilerError):
    """Bad input from the user, located at a file and line (or a config key)."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        if key is not None:
            message = f"{key}: {message}"
        super().__init__(f"{location}{message}")


class UpstreamError(ReconcilerError):
    """The upstream index could not answer (after retries), or answered out of protocol."""


class StalePlanError(ReconcilerError):
    """The saved plan no longer matches the desired state or the registry."""


class LockHeldError(ReconcilerError):
    """Another apply holds the registry lock."""


class MassDeleteError(ReconcilerError):
    """A plan deletes more than `policy.max_deletions` without `--allow-mass-delete`.

    Carries the refused plan, so that a report can still show what it would have done.
    """

    def __init__(self, message: str, plan: Plan) -> None:
        super().__init__(message)
        self.plan = plan


class HashMismatchError(ReconcilerError):
    """Downloaded bytes are not the size and sha256 upstream's index gives; discarded."""


class OlderStateError(ReconcilerError):
    """An apply of a desired state older than the one the registry last carried out."""
