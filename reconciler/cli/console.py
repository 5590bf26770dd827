"""What the commands print besides plans: apply results and progress, terminal or CI."""

from __future__ import annotations

import sys

import typer

from reconciler.applier import ApplyResult
from reconciler.progress import ApplyProgress, PlainProgress, RichProgress


def is_terminal() -> bool:
    """Whether a person is watching stdout (colour and a progress bar) or a CI log is."""
    return sys.stdout.isatty()


def make_progress() -> ApplyProgress:
    """A rich bar on a terminal, plain lines in CI."""
    return RichProgress() if is_terminal() else PlainProgress()


def report_result(result: ApplyResult) -> int:
    """Print the apply's outcome; the exit code is 1 when any file failed."""
    typer.echo(
        f"Apply complete: {result.uploaded} uploaded, {result.deleted} deleted, "
        f"{result.skipped} already done, {len(result.errors)} failed."
    )
    for error in result.errors:
        typer.echo(f"error: {error}", err=True)
    return 1 if result.errors else 0
