"""A fake upstream that also speaks what bandersnatch (6.x) asks PyPI, for bench_peers.py.

On top of everything `FakeUpstream` serves (the simple pages, `/files/`, `.metadata`, the
per-release JSON API), with the same latency and the same request counters:
- `POST /pypi`: XML-RPC `list_packages_with_serial` and `changelog_since_serial`, as
  bandersnatch's `Master.all_packages` / `Master.changed_packages` call them;
- `GET /pypi/<name>/json`: the per-project JSON API (`info`, `last_serial`, `releases`, `urls`)
  with the `X-PyPI-Last-Serial` header bandersnatch checks against the serial it was told;
- `GET /packages/<h2>/<h2>/<filename>`: the files again, under the path bandersnatch requires of
  release URLs (it refuses URLs outside `/packages`).
Each project's serial is its position in insertion order (1, 2, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import xmlrpc.client
from datetime import timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers.upstream import (  # noqa: E402
    FakeFile,
    FakeUpstream,
    UpstreamHandler,
    _version_of,
    canonical,
)


class PeerHandler(UpstreamHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?")[0]
        match = re.fullmatch(r"/pypi/([^/]+)/json", path)
        if match:
            self.delay()
            self.project_json(match.group(1))
            return
        match = re.fullmatch(r"/packages/[0-9a-f]{2}/[0-9a-f]{2}/([^/]+)", path)
        if match:
            self.delay()
            self.file(match.group(1))
            return
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        self.delay()
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.split("?")[0] != "/pypi":
            self.send_body(404, b"not found", "text/plain")
            return
        fake: PeerUpstream = self.fake
        params, method = xmlrpc.client.loads(raw)
        if method == "list_packages_with_serial":
            result: Any = fake.serials()
        elif method == "changelog_since_serial":
            since = int(params[0]) if params else 0
            result = [
                [name, None, 0, "new release", serial]
                for name, serial in fake.serials().items()
                if serial > since
            ]
        else:
            fault = xmlrpc.client.Fault(1, f"no method {method}")
            body = xmlrpc.client.dumps(fault, methodresponse=True).encode()
            self.send_body(200, body, "text/xml")
            return
        body = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True).encode()
        self.send_body(200, body, "text/xml")

    def project_json(self, requested: str) -> None:
        fake: PeerUpstream = self.fake
        name = canonical(requested)
        project = fake.projects.get(name)
        if project is None:
            self.send_body(404, b'{"message": "Not Found"}', "application/json")
            return
        serial = fake.serials()[name]
        releases: dict[str, list[dict[str, Any]]] = {}
        for f in project.files:
            releases.setdefault(_version_of(f.filename), []).append(fake.release_file(f))
        latest = max(releases, key=lambda v: tuple(int(p) for p in re.findall(r"\d+", v)))
        document = {
            "info": {"name": name, "version": latest, "requires_python": None},
            "last_serial": serial,
            "releases": releases,
            "urls": releases[latest],
            "vulnerabilities": [],
        }
        headers = {"X-PyPI-Last-Serial": str(serial), "Cache-Control": "max-age=900, public"}
        self.send_body(200, json.dumps(document).encode(), "application/json", headers)


class PeerUpstream(FakeUpstream):
    """FakeUpstream plus bandersnatch's XML-RPC, project JSON API and `/packages/` files."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(latency)
        self.httpd.RequestHandlerClass = PeerHandler
        self._by_filename: dict[str, FakeFile] = {}

    def serials(self) -> dict[str, int]:
        return {name: i + 1 for i, name in enumerate(self.projects)}

    def add_file(self, project: str, fake_file: FakeFile) -> FakeFile:
        self._by_filename[fake_file.filename] = fake_file
        return super().add_file(project, fake_file)

    def find_file(self, filename: str) -> FakeFile | None:
        # A dict instead of the base class's scan: thousands of projects stay O(1) per request.
        return self._by_filename.get(filename)

    def release_file(self, f: FakeFile) -> dict[str, Any]:
        digest = hashlib.blake2b(f.filename.encode(), digest_size=16).hexdigest()
        uploaded = (
            f.upload_time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if f.upload_time
            else None
        )
        return {
            "filename": f.filename,
            "url": f"{self.url}/packages/{digest[:2]}/{digest[2:4]}/{f.filename}",
            "digests": {"sha256": f.sha256},
            "size": f.size,
            "upload_time_iso_8601": uploaded,
            "requires_python": f.requires_python,
            "yanked": bool(f.yanked),
            "yanked_reason": f.yanked if isinstance(f.yanked, str) else None,
            "packagetype": "bdist_wheel" if f.filename.endswith(".whl") else "sdist",
        }
