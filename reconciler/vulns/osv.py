"""OSV (osv.dev): `/v1/querybatch` for ids, then `/v1/vulns/{id}` for each id it returned.

API: https://google.github.io/osv.dev/post-v1-querybatch/ and .../get-v1-vulns/. querybatch
answers each vulnerability's id and `modified` time; a record is fetched only when the on-disk
copy is missing or older, so a nightly audit of an unchanged world costs the batches alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from packaging.utils import canonicalize_name

from reconciler import cachefile, jsondata
from reconciler.concurrency import map_concurrently
from reconciler.model import Advisory, ServiceName
from reconciler.vulns.interface import (
    MAX_ID,
    PackageVersion,
    ServiceAnswer,
    ServiceError,
    VulnerabilityService,
    aliases_of,
    answer_json,
    summary,
)

# OSV accepts at most 1000 queries per batch request.
BATCH_SIZE = 1000
# Pages of one batch followed at most: a server that always answers a next_page_token must not
# keep a plan (and the lock) forever.
MAX_PAGES = 100
# Ids become cache file names: only the characters OSV ids use (GHSA-…, PYSEC-2024-1, MAL-…).
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class OsvService(VulnerabilityService):
    """Advisories from an OSV server, batched: N versions cost N/1000 requests plus one per id."""

    name = ServiceName.OSV

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        workers: int = 16,
        timeout: float = 30.0,
        record_cache: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.workers = workers
        self.timeout = timeout
        self.record_cache = record_cache

    def query(self, packages: Sequence[PackageVersion]) -> ServiceAnswer:
        """Advisories for every (name, version); withdrawn records are left out."""
        unique = list(dict.fromkeys(packages))
        ids_by_package: dict[PackageVersion, list[str]] = {}
        modified: dict[str, str] = {}
        for start in range(0, len(unique), BATCH_SIZE):
            ids_by_package.update(self._batch(unique[start : start + BATCH_SIZE], modified))
        all_ids = sorted({vuln_id for ids in ids_by_package.values() for vuln_id in ids})
        records: dict[str, dict[str, Any]] = {}
        if all_ids:
            fetched = map_concurrently(
                lambda i: self._record(i, modified.get(i)), all_ids, self.workers
            )
            records = dict(zip(all_ids, fetched, strict=True))
        findings = {
            package: tuple(
                _advisory(records[vuln_id], package[0])
                for vuln_id in ids
                if not records[vuln_id].get("withdrawn")
            )
            for package, ids in ids_by_package.items()
        }
        return ServiceAnswer(service=self.name, findings=findings)

    def _batch(
        self, batch: Sequence[PackageVersion], modified: dict[str, str]
    ) -> dict[PackageVersion, list[str]]:
        """One querybatch call, following each query's `next_page_token`; notes `modified`."""
        pending: dict[int, str | None] = dict.fromkeys(range(len(batch)))
        ids: dict[PackageVersion, list[str]] = {package: [] for package in batch}
        pages = 0
        while pending:
            queries = []
            for index, token in pending.items():
                name, version = batch[index]
                query: dict[str, Any] = {
                    "package": {"name": name, "ecosystem": "PyPI"},
                    "version": version,
                }
                if token:
                    query["page_token"] = token
                queries.append(query)
            data = self._post("/v1/querybatch", {"queries": queries})
            results = data.get("results")
            if not isinstance(results, list) or len(results) != len(queries):
                raise ServiceError("OSV querybatch answered with a malformed result list")
            next_pending: dict[int, str | None] = {}
            for index, result in zip(pending, results, strict=True):
                found, token = _batch_result(result)
                for vuln_id, changed in found:
                    ids[batch[index]].append(vuln_id)
                    if changed:
                        modified[vuln_id] = changed
                if token:
                    next_pending[index] = token
            pending = next_pending
            pages += 1
            if pending and pages >= MAX_PAGES:
                raise ServiceError(f"OSV querybatch kept paging after {MAX_PAGES} pages")
        return ids

    def _record(self, vuln_id: str, modified: str | None) -> dict[str, Any]:
        """The full record: from the cache when it is as new as querybatch says, else fetched."""
        cache_file = self._cache_file(vuln_id)
        if cache_file is not None and modified is not None:
            try:
                cached = jsondata.loads(cache_file.read_bytes())
                if isinstance(cached, dict) and cached.get("modified") == modified:
                    return cached
            except (OSError, ValueError):
                pass
        url = f"{self.base_url}/v1/vulns/{quote(vuln_id, safe='')}"
        try:
            response = self.session.get(url, timeout=self.timeout, stream=True)
        except requests.RequestException as error:
            raise ServiceError(f"OSV could not be reached for {vuln_id}: {error}") from error
        with response:
            if response.status_code != 200:
                raise ServiceError(f"OSV answered {response.status_code} for {vuln_id}")
            record = _json_object(response, f"OSV record {vuln_id}")
        if record.get("id") != vuln_id:
            raise ServiceError(f"OSV answered the record of {vuln_id} with another id")
        if cache_file is not None:
            cachefile.store(cache_file, json.dumps(record).encode())
        return record

    def _cache_file(self, vuln_id: str) -> Path | None:
        if self.record_cache is None or not _SAFE_ID.fullmatch(vuln_id):
            return None
        return self.record_cache / f"{vuln_id}.json"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            response = self.session.post(url, json=body, timeout=self.timeout, stream=True)
        except requests.RequestException as error:
            raise ServiceError(f"OSV could not be reached at {url}: {error}") from error
        with response:
            if response.status_code != 200:
                raise ServiceError(f"OSV answered {response.status_code} at {url}")
            return _json_object(response, "OSV querybatch")


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    data = answer_json(response, what)
    if not isinstance(data, dict):
        raise ServiceError(f"{what} is not a JSON object")
    return data


def _batch_result(result: Any) -> tuple[list[tuple[str, str | None]], str | None]:
    """(vulnerability id, modified) pairs and the next page token of one querybatch result."""
    if result is None or result == {}:
        return [], None
    vulns = result.get("vulns", []) if isinstance(result, dict) else None
    if not isinstance(vulns, list) or not all(
        isinstance(v, dict) and isinstance(v.get("id"), str) and len(v["id"]) <= MAX_ID
        for v in vulns
    ):
        raise ServiceError("OSV querybatch answered a result that is not a list of vulnerabilities")
    token = result.get("next_page_token")
    if token is not None and not isinstance(token, str):
        raise ServiceError("OSV querybatch answered a next_page_token that is not a string")
    changed = [
        (v["id"], v["modified"] if isinstance(v.get("modified"), str) else None) for v in vulns
    ]
    return changed, token or None


def _advisory(record: dict[str, Any], name: str) -> Advisory:
    """An Advisory from an OSV record; a record of another shape fails closed."""
    try:
        return _parse_advisory(record, name)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ServiceError(f"OSV record {record.get('id')} is malformed: {error!r}") from None


def _parse_advisory(record: dict[str, Any], name: str) -> Advisory:
    """An Advisory from an OSV record, with the versions that fix it for this package."""
    fixed: list[str] = []
    for affected in record.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package.get("name", "")) != name:
            continue
        for version_range in affected.get("ranges", []):
            fixed.extend(
                event["fixed"] for event in version_range.get("events", []) if "fixed" in event
            )
    return Advisory(
        id=record["id"],
        aliases=aliases_of(record.get("aliases")),
        summary=summary(record.get("summary") or record.get("details")),
        link=f"https://osv.dev/vulnerability/{record['id']}",
        fixed_in=tuple(dict.fromkeys(fixed)),
    )
