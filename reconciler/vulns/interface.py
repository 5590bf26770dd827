"""The vulnerability-service interface every advisory source implements."""

from __future__ import annotations

import textwrap
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.model import Advisory, ServiceName

PackageVersion = tuple[str, str]
"""(canonical project name, normalised version)."""


# Summaries longer than this are cut at a word, for table cells and notes.
SUMMARY_LIMIT = 200


def summary(text: str | None) -> str:
    """An advisory's text on one line, cut at a word boundary with an ellipsis when long (in
    a word, when its first word alone is longer: text without spaces, a URL)."""
    line = " ".join((text or "").split())
    cut = textwrap.shorten(line, SUMMARY_LIMIT, placeholder=" …")
    return cut if cut != "…" else f"{line[: SUMMARY_LIMIT - 1]}…"


class ServiceError(ReconcilerError):
    """A vulnerability service could not answer: the plan stops, failing closed."""


@dataclass(frozen=True)
class ServiceAnswer:
    """What one service said about a batch, for the plan's audit trail.

    `unanswered` holds the pairs the service has no record of: they are not clean, they are
    unchecked. `database` is the service's own date, version or ETag, where it gives one.
    """

    service: ServiceName
    findings: Mapping[PackageVersion, tuple[Advisory, ...]]
    unanswered: frozenset[PackageVersion] = frozenset()
    database: str | None = None


class VulnerabilityService(ABC):
    """A source of advisories for (name, version) pairs."""

    name: ServiceName

    @abstractmethod
    def query(self, packages: Sequence[PackageVersion]) -> ServiceAnswer:
        """Advisories (withdrawn ones left out) for every pair it knows; raises ServiceError
        when it cannot answer (after the session's retries)."""
