"""The wall clock as a dependency: passed in through the composition root, never read directly.

Policy is judged at `now` (`--now`, or this clock's reading); what records when something
happened (a plan's `created_at`, a quarantine, a lock, a service's answer) asks the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]
"""A source of aware UTC instants."""


def system_clock() -> datetime:
    """The machine's clock, in UTC."""
    return datetime.now(timezone.utc)
