"""Progress of an apply, as an observer the applier calls; adapters never print on their own.

Several downloads run at once, so each file gets its own handle: bytes advance from the
thread that downloads it, and one line per file is written when it is done.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column

# Terminals at least this wide show transfer speed and time left too.
WIDE = 90


class FileProgress(Protocol):
    """One file's progress."""

    def advance(self, nbytes: int) -> None:
        """`nbytes` more of this file are done (from any thread)."""

    def done(self, outcome: str) -> None:
        """The file is finished: `outcome` is done, skipped or an error."""


class ApplyProgress(Protocol):
    """What the applier reports while it works."""

    def begin(self, total_files: int) -> None:
        """The apply starts; `total_files` files will be uploaded or deleted."""

    def file(self, description: str, size: int | None) -> FileProgress:
        """Work on one file starts; `size` in bytes where known."""

    def end(self) -> None:
        """The apply is over."""


class _Silent:
    def advance(self, nbytes: int) -> None:
        """Nothing."""

    def done(self, outcome: str) -> None:
        """Nothing."""


class NullProgress:
    """Reports nothing (tests, `--format json`)."""

    def begin(self, total_files: int) -> None:
        """Nothing."""

    def file(self, description: str, size: int | None) -> FileProgress:
        """A handle that reports nothing."""
        return _Silent()

    def end(self) -> None:
        """Nothing."""


class _Lines:
    """`[i/n] description: outcome` lines, numbered in the order files finish."""

    def __init__(self) -> None:
        self.total = 0
        self.index = 0
        self.lock = threading.Lock()

    def line(self, description: str, outcome: str) -> str:
        """The next numbered line."""
        with self.lock:
            self.index += 1
            return f"[{self.index}/{self.total}] {description}: {outcome}"


class _PlainFile:
    def __init__(self, owner: PlainProgress, description: str) -> None:
        self.owner = owner
        self.description = description

    def advance(self, nbytes: int) -> None:
        """Plain logs carry no byte counts."""

    def done(self, outcome: str) -> None:
        """Print one line for the finished file."""
        print(self.owner.lines.line(self.description, outcome), file=self.owner.stream)


class PlainProgress:
    """One line per file, for CI logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lines = _Lines()

    def begin(self, total_files: int) -> None:
        """Remember the total for `[i/n]` prefixes."""
        self.lines.total = total_files

    def file(self, description: str, size: int | None) -> FileProgress:
        """A handle printing its line when done."""
        return _PlainFile(self, description)

    def end(self) -> None:
        """Nothing to close."""


class _RichFile:
    def __init__(self, owner: RichProgress, description: str, task: TaskID) -> None:
        self.owner = owner
        self.description = description
        self.task = task

    def advance(self, nbytes: int) -> None:
        """Move this file's bar."""
        self.owner.progress.advance(self.task, nbytes)

    def done(self, outcome: str) -> None:
        """Replace the file's bar with one line saying how it ended."""
        self.owner.progress.remove_task(self.task)
        self.owner.progress.console.print(
            self.owner.lines.line(self.description, outcome), highlight=False, markup=False
        )


class RichProgress:
    """A byte-level bar per file in flight and a line per finished file, at a terminal.

    The columns fit the terminal: file names are cut with an ellipsis rather than wrapped, and
    a narrow terminal drops speed and time left.
    """

    def __init__(self, console: Console | None = None) -> None:
        console = console or Console()
        columns: list[ProgressColumn] = [
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis", min_width=12),
            ),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
            DownloadColumn(),
        ]
        if console.width >= WIDE:
            columns += [TransferSpeedColumn(), TimeRemainingColumn()]
        self.progress = Progress(*columns, console=console, transient=True, expand=True)
        self.lines = _Lines()

    def begin(self, total_files: int) -> None:
        """Start the display."""
        self.lines.total = total_files
        self.progress.start()

    def file(self, description: str, size: int | None) -> FileProgress:
        """A bar for the file's bytes."""
        return _RichFile(self, description, self.progress.add_task(description, total=size))

    def end(self) -> None:
        """Stop the display."""
        self.progress.stop()
