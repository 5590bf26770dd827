"""A fake OSV server: `/v1/querybatch` (ids only, as OSV answers) and `/v1/vulns/{id}`.

Shapes from https://google.github.io/osv.dev/post-v1-querybatch/ and get-v1-vulns.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers.base import FakeServer, QuietHandler


class OsvHandler(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.delay()
        fake: FakeOsv = self.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if fake.unavailable:
            self.send_body(503, b"unavailable", "text/plain", {"Retry-After": "0"})
            return
        if self.path != "/v1/querybatch":
            self.send_body(404, b"{}", "application/json")
            return
        body = json.loads(raw)
        queries = body["queries"]
        if len(queries) > 1000:
            self.send_body(400, b'{"message":"Too many queries."}', "application/json")
            return
        fake.batch_sizes.append(len(queries))
        results = []
        for query in queries:
            name = re.sub(r"[-_.]+", "-", query["package"]["name"]).lower()
            ids = fake.affected.get((name, query["version"]), [])
            results.append(
                {"vulns": [{"id": i, "modified": fake.records[i]["modified"]} for i in ids]}
                if ids
                else {}
            )
        self.send_body(200, json.dumps({"results": results}).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        self.delay()
        fake: FakeOsv = self.fake
        if fake.unavailable:
            self.send_body(503, b"unavailable", "text/plain", {"Retry-After": "0"})
            return
        match = re.fullmatch(r"/v1/vulns/([^/]+)", self.path)
        record = fake.records.get(match.group(1)) if match else None
        if record is None:
            self.send_body(404, b'{"code":5,"message":"Bug not found."}', "application/json")
            return
        self.send_body(200, json.dumps(record).encode(), "application/json")


class FakeOsv(FakeServer):
    """Add advisories with `add`; `unavailable` makes every request a 503."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(OsvHandler, latency)
        self.affected: dict[tuple[str, str], list[str]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.batch_sizes: list[int] = []
        self.unavailable = False

    def add(
        self,
        vuln_id: str,
        project: str,
        versions: list[str],
        fixed: str | None = None,
        aliases: tuple[str, ...] = (),
        withdrawn: bool = False,
        summary: str = "a test advisory",
    ) -> None:
        for version in versions:
            self.affected.setdefault((project, version), []).append(vuln_id)
        events: list[dict[str, str]] = [{"introduced": "0"}]
        if fixed:
            events.append({"fixed": fixed})
        record: dict[str, Any] = {
            "id": vuln_id,
            "summary": summary,
            "aliases": list(aliases),
            "modified": "2026-01-01T00:00:00Z",
            "affected": [
                {
                    "package": {"name": project, "ecosystem": "PyPI"},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    "versions": versions,
                }
            ],
        }
        if withdrawn:
            record["withdrawn"] = "2026-02-01T00:00:00Z"
        self.records[vuln_id] = record

    def withdraw(self, vuln_id: str) -> None:
        """Withdraw a record as OSV does: `withdrawn` set and `modified` moved on."""
        self.records[vuln_id]["withdrawn"] = "2026-11-20T00:00:00Z"
        self.records[vuln_id]["modified"] = "2026-11-20T00:00:00Z"
