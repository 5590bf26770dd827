"""Progress of an apply, as an observer the applier calls; adapters never print."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class ApplyProgress(Protocol):
    """What the applier reports while it works."""

    def begin(self, total_files: int) -> None:
        """The apply starts; `total_files` files will be uploaded or deleted."""

    def file_started(self, description: str, size: int | None) -> None:
        """Work on one file starts; `size` in bytes where known."""

    def advance(self, nbytes: int) -> None:
        """`nbytes` more of the current file are done."""

    def file_done(self, outcome: str) -> None:
        """The current file is finished: `outcome` is done, skipped or an error."""

    def end(self) -> None:
        """The apply is over."""


class NullProgress:
    """Reports nothing (tests, `--format json`)."""

    def begin(self, total_files: int) -> None:
        """Nothing."""

    def file_started(self, description: str, size: int | None) -> None:
        """Nothing."""

    def advance(self, nbytes: int) -> None:
        """Nothing."""

    def file_done(self, outcome: str) -> None:
        """Nothing."""

    def end(self) -> None:
        """Nothing."""


class PlainProgress:
    """One line per file, for CI logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.total = 0
        self.index = 0
        self.current = ""

    def begin(self, total_files: int) -> None:
        """Remember the total for `[i/n]` prefixes."""
        self.total = total_files

    def file_started(self, description: str, size: int | None) -> None:
        """Remember what is being worked on."""
        self.index += 1
        self.current = description

    def advance(self, nbytes: int) -> None:
        """Plain logs carry no byte counts."""

    def file_done(self, outcome: str) -> None:
        """Print one line for the finished file."""
        print(f"[{self.index}/{self.total}] {self.current}: {outcome}", file=self.stream)

    def end(self) -> None:
        """Nothing to close."""


class RichProgress:
    """A byte-level bar for the file in flight and a line per finished file, at a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.current: TaskID | None = None
        self.description = ""
        self.total = 0
        self.index = 0

    def begin(self, total_files: int) -> None:
        """Start the display."""
        self.total = total_files
        self.progress.start()

    def file_started(self, description: str, size: int | None) -> None:
        """A bar for the file's bytes."""
        self.index += 1
        self.description = f"[{self.index}/{self.total}] {description}"
        self.current = self.progress.add_task(self.description, total=size)

    def advance(self, nbytes: int) -> None:
        """Move the file's bar."""
        if self.current is not None:
            self.progress.advance(self.current, nbytes)

    def file_done(self, outcome: str) -> None:
        """Replace the file's bar with one line saying how it ended."""
        if self.current is None:
            return
        self.progress.remove_task(self.current)
        self.progress.console.print(f"{self.description}: {outcome}", highlight=False, markup=False)
        self.current = None

    def end(self) -> None:
        """Stop the display."""
        self.progress.stop()
