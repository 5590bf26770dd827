"""Stopping an apply cleanly on Ctrl-C: the main thread asks, the downloads on other threads stop.

While an apply is armed, an interrupt only cancels: no new file is placed, downloads in flight
are shut down at once (urllib3's `HTTPResponse.shutdown`, which wakes a blocked read), and
the file being placed finishes, so nothing is half-placed. Outside that window, and at a second
interrupt, Ctrl-C raises KeyboardInterrupt as usual.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Stoppable(Protocol):
    """A stream another thread reads from and this one can stop (urllib3's HTTPResponse)."""

    def shutdown(self) -> None:
        """Make the reader's current and later reads fail at once."""


class Cancelled(Exception):  # noqa: N818 - a signal within the applier, never shown to users
    """The apply was cancelled; raised inside a download to stop it."""


class Cancellation:
    """One apply's cancel flag, and the downloads to stop when it is raised."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._armed = False
        self._lock = threading.Lock()
        self._streams: set[Stoppable] = set()

    @property
    def cancelled(self) -> bool:
        """Whether the apply was asked to stop."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled once the apply was asked to stop (called between chunks)."""
        if self._event.is_set():
            raise Cancelled

    @contextmanager
    def armed(self) -> Iterator[None]:
        """While inside, `interrupt` cancels gracefully instead of raising."""
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def interrupt(self) -> None:
        """What Ctrl-C does: cancel an armed apply the first time, else KeyboardInterrupt."""
        if not self._armed or self.cancelled:
            raise KeyboardInterrupt
        self.cancel()

    def cancel(self) -> None:
        """Stop: no new work starts, and every watched download is shut down."""
        self._event.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            _stop(stream)

    @contextmanager
    def watching(self, stream: Stoppable) -> Iterator[None]:
        """Stop `stream` on cancel while inside (at once, if already cancelled)."""
        with self._lock:
            self._streams.add(stream)
        try:
            if self.cancelled:
                _stop(stream)
            yield
        finally:
            with self._lock:
                self._streams.discard(stream)


def _stop(stream: Stoppable) -> None:
    """Shut a stream down; one read to its end already gave its connection back (urllib3
    then refuses with RuntimeError), and a socket may be closed already (OSError)."""
    with contextlib.suppress(RuntimeError, OSError):
        stream.shutdown()
