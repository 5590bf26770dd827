"""What the commands print besides plans: apply results and progress, terminal or CI."""

from __future__ import annotations

import shutil
import sys
import textwrap

import typer

from reconciler import report
from reconciler.applier import ApplyResult
from reconciler.model import Plan
from reconciler.progress import ApplyProgress, PlainProgress, RichProgress


def is_terminal() -> bool:
    """Whether a person is watching stdout (colour and a progress bar) or a CI log is."""
    return sys.stdout.isatty()


def terminal_width() -> int | None:
    """The terminal's columns, or None when stdout is not a terminal."""
    return shutil.get_terminal_size().columns if is_terminal() else None


def table_format() -> report.TableFormat:
    """The plan for whoever reads stdout: a terminal at its width, else plain lines."""
    return report.TableFormat(color=is_terminal(), width=terminal_width())


def say(text: str) -> None:
    """Print a message, wrapped at spaces to the terminal's width when there is one. (Errors
    and warnings go to stderr unwrapped: one line each, whatever reads them.)"""
    width = terminal_width()
    if width is not None:
        text = textwrap.fill(text, width=width, break_on_hyphens=False, break_long_words=False)
    typer.echo(text)


def make_progress() -> ApplyProgress:
    """A rich bar on a terminal, plain lines in CI."""
    return RichProgress() if is_terminal() else PlainProgress()


def report_result(result: ApplyResult) -> int:
    """Print the apply's outcome: exit 1 when a file failed, 130 when Ctrl-C cancelled it."""
    counts = (
        f"{result.uploaded} uploaded, {result.deleted} deleted, "
        f"{result.skipped} already done, {len(result.errors)} failed"
    )
    if result.cancelled:
        undone = ", ".join(result.undone) or "nothing"
        say(
            f"Apply interrupted: {counts}. Left undone: {undone}. Nothing was half-placed; "
            "apply the same plan again to finish."
        )
    else:
        say(f"Apply complete: {counts}.")
    for error in result.errors:
        typer.echo(f"error: {error}", err=True)
    if result.cancelled:
        return 130
    return 1 if result.errors else 0


def show_and_confirm(plan: Plan, auto_approve: bool) -> bool:
    """Print the plan (a CI log keeps what was applied), then ask unless auto-approved."""
    typer.echo(table_format().render(plan), nl=False)
    return auto_approve or typer.confirm("Apply these changes?", default=False)
