"""Stopping an apply cleanly on Ctrl-C: the main thread asks, the work on other threads stops.

While an apply is armed, an interrupt only cancels, however often it comes: no new file is
placed, downloads in flight are shut down at once (urllib3's `HTTPResponse.shutdown`, which
wakes a blocked read), waits between retries end, and the file being placed finishes, so
nothing is half-placed. Outside that window (planning, a prompt) Ctrl-C raises
KeyboardInterrupt as usual.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Protocol


class Stoppable(Protocol):
    """A stream another thread reads from and this one can stop (urllib3's HTTPResponse)."""

    def shutdown(self) -> None:
        """Make the reader's current and later reads fail at once."""


class Cancelled(Exception):  # noqa: N818 - a signal within the applier, never shown to users
    """The apply was cancelled; raised inside a download or a retry's wait to stop it."""


class Cancellation:
    """One command's cancel flag, and what to stop when it is raised."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._armed = False
        self._lock = threading.Lock()
        self._streams: set[Stoppable] = set()
        self._callbacks: list[Callable[[], None]] = []
        self.interrupted = False  # whether Ctrl-C was pressed at all

    @property
    def cancelled(self) -> bool:
        """Whether the apply was asked to stop."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled once the apply was asked to stop (called between steps)."""
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
        """What Ctrl-C does: cancel an armed apply, else KeyboardInterrupt."""
        self.interrupted = True
        if not self._armed:
            raise KeyboardInterrupt
        self.cancel()

    def cancel(self) -> None:
        """Stop: no new work starts, watched downloads are shut down, waiters are woken."""
        self._event.set()
        with self._lock:
            streams, callbacks = list(self._streams), list(self._callbacks)
        for stream in streams:
            _stop(stream)
        for callback in callbacks:
            callback()

    def wait(self, seconds: float) -> None:
        """A wait between retries; in an armed apply a cancel ends it, and the attempt."""
        if self._event.wait(seconds) and self._armed:
            raise Cancelled

    def stop_future(self) -> Future[None]:
        """A future that completes when the apply is cancelled, to wait on beside others."""
        stop: Future[None] = Future()

        def complete() -> None:
            if not stop.done():
                stop.set_result(None)

        with self._lock:
            self._callbacks.append(complete)
        if self.cancelled:
            complete()
        return stop

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
