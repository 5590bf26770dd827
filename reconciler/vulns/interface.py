"""The vulnerability-service interface every advisory source implements."""

from __future__ import annotations

import textwrap
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from reconciler import jsondata
from reconciler.errors import ReconcilerError
from reconciler.http import BodyError, read_body
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


# The most aliases kept per advisory, and the longest id or alias.
MAX_ALIASES = 20
MAX_ID = 128
# The largest answer a service may give, and how long it may take in all.
MAX_ANSWER = 64 * 1024 * 1024
ANSWER_SECONDS = 300.0


def aliases_of(value: Any) -> tuple[str, ...]:
    """A record's aliases: strings, as many as a report can show (a CVE, a GHSA, a PYSEC...)."""
    if not isinstance(value, list):
        return ()
    return tuple(str(alias)[:MAX_ID] for alias in value[:MAX_ALIASES])


def answer_json(response: requests.Response, what: str) -> Any:
    """A streamed answer's JSON, bounded in size and time; ServiceError naming `what`."""
    try:
        return jsondata.loads(read_body(response, MAX_ANSWER, ANSWER_SECONDS))
    except BodyError as error:
        raise ServiceError(f"{what} {error}") from None
    except requests.RequestException as error:
        raise ServiceError(f"{what} broke off: {error}") from None
    except ValueError as error:
        raise ServiceError(f"{what} is not JSON: {error}") from None


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
