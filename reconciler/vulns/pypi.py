"""PyPI's JSON API: the `vulnerabilities` key of `/pypi/<name>/<version>/json`.

Only the per-version URL: the project-level document lists the vulnerabilities of the latest
release alone. https://docs.pypi.org/api/json/#get-a-release
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import requests

from reconciler.concurrency import map_concurrently
from reconciler.model import Advisory, ServiceName
from reconciler.vulns.interface import (
    PackageVersion,
    ServiceAnswer,
    ServiceError,
    VulnerabilityService,
    aliases_of,
    answer_json,
    summary,
)

# Revalidate with the cached ETag on every plan: advisories must be current, bytes need not be
# sent again when nothing changed.
_HEADERS = {"Accept": "application/json", "Cache-Control": "max-age=0"}


class PypiService(VulnerabilityService):
    """Advisories from PyPI's JSON API, one request per version, fetched concurrently."""

    name = ServiceName.PYPI

    def __init__(
        self, base_url: str, session: requests.Session, workers: int = 16, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.workers = workers
        self.timeout = timeout

    def query(self, packages: Sequence[PackageVersion]) -> ServiceAnswer:
        """Advisories per version; a version PyPI does not know (404) is unanswered."""
        unique = list(dict.fromkeys(packages))
        answers: list[tuple[Advisory, ...] | None] = []
        if unique:
            answers = map_concurrently(self._release, unique, self.workers)
        return ServiceAnswer(
            service=self.name,
            findings={p: a for p, a in zip(unique, answers, strict=True) if a is not None},
            unanswered=frozenset(p for p, a in zip(unique, answers, strict=True) if a is None),
        )

    def _release(self, package: PackageVersion) -> tuple[Advisory, ...] | None:
        name, version = package
        url = f"{self.base_url}/{quote(name)}/{quote(version)}/json"
        try:
            response = self.session.get(url, headers=_HEADERS, timeout=self.timeout, stream=True)
        except requests.RequestException as error:
            raise ServiceError(
                f"PyPI JSON API could not be reached for {name} {version}: {error}"
            ) from None
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise ServiceError(
                    f"PyPI JSON API answered {response.status_code} for {name} {version}"
                )
            document = answer_json(response, f"PyPI JSON API for {name} {version}")
        try:
            records = document.get("vulnerabilities") or []
            return tuple(_advisory(r) for r in records if not r.get("withdrawn"))
        except (ValueError, AttributeError, KeyError, TypeError) as error:
            raise ServiceError(
                f"PyPI JSON API answered malformed data for {name} {version}: {error!r}"
            ) from None


def _advisory(record: dict[str, Any]) -> Advisory:
    """An Advisory from one entry of the `vulnerabilities` list (OSV-derived fields)."""
    return Advisory(
        id=record["id"],
        aliases=aliases_of(record.get("aliases")),
        summary=summary(record.get("summary") or record.get("details")),
        link=record.get("link") or "",
        fixed_in=tuple(record.get("fixed_in") or ()),
    )
