"""A fake upstream index: PEP 691 JSON and PEP 503 HTML project pages, files, ETags, and
PyPI's per-release JSON API.

It follows the documented protocol: content negotiation on `Accept` (PEP 691), `upload-time`,
`size`, `hashes`, `yanked`, `requires-python` (PEPs 700, 592), PEP 792 `project-status`, ETag
revalidation with 304, and a 301 from a non-normalised name to the normalised one (as PyPI).
`/pypi/<name>/<version>/json` answers as https://docs.pypi.org/api/json/ documents: `info`,
`urls` and `vulnerabilities` (OSV-derived: id, aliases, summary, details, fixed_in, link,
source, withdrawn), 404 for a release it does not have.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any

from tests.servers.base import FakeServer, Gate, QuietHandler
from tests.servers.wheels import make_metadata, make_sdist, make_wheel

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class FakeFile:
    """A distribution file: real bytes, or `size` bytes of a repeating pattern (streamed)."""

    filename: str
    upload_time: datetime | None
    content: bytes | None = None
    size: int = 0
    yanked: bool | str = False
    requires_python: str | None = None
    corrupt: bool = False  # serve other bytes than the index's sha256 says
    gate: Gate | None = None  # a download stops at `gate_after` bytes until the gate opens
    gate_after: int = 0  # 0: before even the response headers
    sha256: str = ""
    metadata: bytes | None = None  # PEP 658: served at `<file url>.metadata` when set

    def __post_init__(self) -> None:
        if self.content is not None:
            self.size = len(self.content)
        digest = hashlib.sha256()
        for chunk in self.chunks(honest=True):
            digest.update(chunk)
        self.sha256 = digest.hexdigest()

    def byte_range(self, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of what `chunks(honest=True)` streams."""
        if self.content is not None:
            return self.content[start : end + 1]
        block = hashlib.sha256(self.filename.encode()).digest() * 2048
        return bytes(block[i % len(block)] for i in range(start, end + 1))

    def chunks(self, honest: bool = False) -> Iterator[bytes]:
        if self.content is not None:
            data = self.content
            if self.corrupt and not honest:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            for start in range(0, len(data), 65536):
                yield data[start : start + 65536]
            return
        block = hashlib.sha256(self.filename.encode()).digest() * 2048  # 64 KiB
        remaining = self.size
        while remaining:
            chunk = block[: min(len(block), remaining)]
            remaining -= len(chunk)
            if self.corrupt and not honest and remaining == 0:
                chunk = chunk[:-1] + b"\0"
            yield chunk


@dataclass
class FakeProject:
    name: str
    files: list[FakeFile] = field(default_factory=list)
    status: str | None = None  # PEP 792


class UpstreamHandler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.delay()
        fake: FakeUpstream = self.fake
        path = self.path.split("?")[0]
        if fake.fail_next.get(path, 0) > 0:
            fake.fail_next[path] -= 1
            status, retry_after = fake.failure
            self.send_body(status, b"try again", "text/plain", {"Retry-After": retry_after})
            return
        if path in fake.redirects:
            self.fake.record(self.command, self.path, 302)
            self.send_response(302)
            self.send_header("Location", fake.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        match = re.fullmatch(r"/simple/([^/]+)/", path)
        if match:
            self.project_page(match.group(1))
            return
        match = re.fullmatch(r"/files/([^/]+)\.metadata", path)
        if match:
            self.metadata_file(match.group(1))
            return
        match = re.fullmatch(r"/files/([^/]+)", path)
        if match:
            self.file(match.group(1))
            return
        match = re.fullmatch(r"/pypi/([^/]+)/([^/]+)/json", path)
        if match:
            self.release_json(match.group(1), match.group(2))
            return
        self.send_body(404, b"not found", "text/plain")

    def release_json(self, requested: str, version: str) -> None:
        fake: FakeUpstream = self.fake
        name = canonical(requested)
        project = fake.projects.get(name)
        files = [f for f in project.files if _version_of(f.filename) == version] if project else []
        if not files:
            self.send_body(404, b'{"message": "Not Found"}', "application/json")
            return
        document = {
            "info": {"name": name, "version": version, "yanked": all(f.yanked for f in files)},
            "last_serial": 1,
            "urls": [
                {
                    "filename": f.filename,
                    "digests": {"sha256": f.sha256},
                    "size": f.size,
                    "url": f"{fake.url}/files/{f.filename}",
                    "yanked": bool(f.yanked),
                }
                for f in files
            ],
            "vulnerabilities": fake.vulnerabilities.get((name, version), []),
        }
        self.send_revalidated(
            json.dumps(document).encode(),
            "application/json",
            {"Cache-Control": "max-age=900, public"},
        )

    def send_revalidated(self, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        """200 with an ETag, or 304 when the client's If-None-Match already names it."""
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, **headers}
        if self.headers.get("If-None-Match") == etag:
            self.fake.record(self.command, self.path, 304)
            self.send_response(304)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_body(200, body, content_type, headers)

    def project_page(self, requested: str) -> None:
        fake: FakeUpstream = self.fake
        name = canonical(requested)
        if name != requested:
            # PyPI redirects a non-normalised name to the normalised URL (PEP 503).
            self.fake.record(self.command, self.path, 301)
            self.send_response(301)
            self.send_header("Location", f"/simple/{name}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        project = fake.projects.get(name)
        if project is None:
            self.send_body(404, b"not found", "text/plain")
            return
        accept = self.headers.get("Accept", "")
        if fake.serve_json and JSON_TYPE in accept:
            body, content_type = fake.render_json(project), JSON_TYPE
        else:
            body, content_type = fake.render_html(project), "text/html"
        if name in fake.drip:
            self.drip_body(body, content_type, fake.drip[name])
            return
        self.send_revalidated(
            body, content_type, {"Cache-Control": "max-age=600, public", "Vary": "Accept"}
        )

    def drip_body(self, body: bytes, content_type: str, seconds: float) -> None:
        """A server that answers a byte at a time, never quite timing out a read."""
        self.fake.record(self.command, self.path, 200)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for index in range(len(body)):
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                time.sleep(seconds)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def metadata_file(self, filename: str) -> None:
        found = self.fake.find_file(filename)
        if found is None or found.metadata is None or not self.fake.serve_metadata:
            self.send_body(404, b"not found", "text/plain")
            return
        self.send_body(200, found.metadata, "application/octet-stream")

    def file(self, filename: str) -> None:
        fake: FakeUpstream = self.fake
        found = fake.find_file(filename)
        if found is None:
            self.send_body(404, b"not found", "text/plain")
            return
        byte_range = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if byte_range and fake.serve_ranges:
            # RFC 9110 section 14: `a-b`, `a-` and the suffix form `-n`.
            first, last = byte_range.groups()
            size = found.size
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:
                start, end = max(size - int(last), 0), size - 1
            self.send_body(
                206,
                found.byte_range(start, end),
                "application/octet-stream",
                {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"},
            )
            return
        sent, gate = 0, found.gate
        if gate is not None and found.gate_after == 0:
            gate.pass_through()  # a server slow to answer at all
            gate = None
        self.fake.record(self.command, self.path, 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(found.size))
        self.end_headers()
        try:
            for chunk in found.chunks():
                self.wfile.write(chunk)
                sent += len(chunk)
                if gate is not None and sent >= found.gate_after:
                    self.wfile.flush()
                    gate.pass_through()
                    gate = None
        except (BrokenPipeError, ConnectionResetError):
            pass


class FakeUpstream(FakeServer):
    """The fake index; add projects with `add_release` / `add_file`."""

    def __init__(self, latency: float = 0.0, serve_json: bool = True) -> None:
        super().__init__(UpstreamHandler, latency)
        self.projects: dict[str, FakeProject] = {}
        self.serve_json = serve_json
        self.fail_next: dict[str, int] = {}
        self.failure = (503, "0")  # (status, Retry-After) of the injected failures
        self.redirects: dict[str, str] = {}
        self.serve_metadata = True  # PEP 658 `.metadata` files (and `core-metadata` in pages)
        self.serve_ranges = True  # HTTP Range requests on files
        self.vulnerabilities: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.drip: dict[str, float] = {}  # project -> seconds between the bytes of its page
        self._mutex = threading.Lock()

    def add_vulnerability(
        self,
        vuln_id: str,
        project: str,
        versions: list[str],
        fixed: str | None = None,
        aliases: tuple[str, ...] = (),
        withdrawn: bool = False,
    ) -> None:
        """An entry in the `vulnerabilities` key of each affected release's JSON."""
        for version in versions:
            self.vulnerabilities.setdefault((canonical(project), version), []).append(
                {
                    "id": vuln_id,
                    "aliases": list(aliases),
                    "summary": None,
                    "details": f"details of {vuln_id}",
                    "fixed_in": [fixed] if fixed else [],
                    "link": f"https://osv.dev/vulnerability/{vuln_id}",
                    "source": "osv",
                    "withdrawn": "2026-02-01T00:00:00Z" if withdrawn else None,
                }
            )

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple"

    def add_file(self, project: str, fake_file: FakeFile, replace: bool = True) -> FakeFile:
        """List a file; `replace=False` lists it beside an entry of the same name (hostile)."""
        with self._mutex:
            entry = self.projects.setdefault(canonical(project), FakeProject(canonical(project)))
            if replace:
                entry.files = [f for f in entry.files if f.filename != fake_file.filename]
            entry.files.append(fake_file)
        return fake_file

    def add_release(
        self,
        project: str,
        version: str,
        uploaded: datetime | None,
        *,
        wheel: bool = True,
        sdist: bool = False,
        requires: tuple[str, ...] = (),
        wheel_tags: tuple[str, ...] = ("py3-none-any",),
        pyproject: str | None = None,
        source: bytes | None = None,
        **options: Any,
    ) -> list[FakeFile]:
        """A release with real, installable wheels, one per tag (and an sdist on request, with
        a `pyproject` to build it by); `requires` are its Requires-Dist lines, `source` its
        module's code. Each wheel's metadata is also offered as a PEP 658 file."""
        added = []
        metadata = make_metadata(project, version, requires)
        for tag in wheel_tags if wheel else ():
            filename, content = make_wheel(project, version, requires, tag, source)
            added.append(
                self.add_file(
                    project, FakeFile(filename, uploaded, content, metadata=metadata, **options)
                )
            )
        if sdist:
            filename, content = make_sdist(project, version, requires, pyproject)
            added.append(self.add_file(project, FakeFile(filename, uploaded, content, **options)))
        return added

    def remove_version(self, project: str, version: str) -> None:
        entry = self.projects[canonical(project)]
        entry.files = [f for f in entry.files if f"-{version}" not in f.filename]

    def yank(self, project: str, version: str, reason: str | bool = True) -> None:
        for fake_file in self.projects[canonical(project)].files:
            if f"-{version}-" in fake_file.filename or fake_file.filename.endswith(
                f"-{version}.tar.gz"
            ):
                fake_file.yanked = reason

    def find_file(self, filename: str) -> FakeFile | None:
        for project in self.projects.values():
            for fake_file in project.files:
                if fake_file.filename == filename:
                    return fake_file
        return None

    def render_json(self, project: FakeProject) -> bytes:
        files = []
        for f in project.files:
            entry: dict[str, Any] = {
                "filename": f.filename,
                "url": f"{self.url}/files/{f.filename}",
                "hashes": {"sha256": f.sha256},
                "size": f.size,
                "yanked": f.yanked,
            }
            if f.requires_python:
                entry["requires-python"] = f.requires_python
            if f.metadata is not None and self.serve_metadata:  # PEP 714's key name
                entry["core-metadata"] = {"sha256": hashlib.sha256(f.metadata).hexdigest()}
            if f.upload_time is not None:
                entry["upload-time"] = f.upload_time.astimezone(timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                )
            files.append(entry)
        document: dict[str, Any] = {
            "meta": {"api-version": "1.4" if project.status else "1.1"},
            "name": project.name,
            "versions": sorted({_version_of(f.filename) for f in project.files}),
            "files": files,
        }
        if project.status:
            document["project-status"] = {"status": project.status}
        return json.dumps(document).encode()

    def render_html(self, project: FakeProject) -> bytes:
        links = []
        for f in project.files:
            attributes = ""
            if f.requires_python:
                attributes += f' data-requires-python="{escape(f.requires_python)}"'
            if f.yanked:
                reason = f.yanked if isinstance(f.yanked, str) else ""
                attributes += f' data-yanked="{escape(reason)}"'
            links.append(
                f'<a href="{self.url}/files/{f.filename}#sha256={f.sha256}"{attributes}>'
                f"{f.filename}</a><br/>"
            )
        return (
            "<!DOCTYPE html><html><head>"
            '<meta name="pypi:repository-version" content="1.0"></head><body>'
            + "\n".join(links)
            + "</body></html>"
        ).encode()


def _version_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return filename.split("-")[1]
    return filename.rsplit("-", 1)[1].removesuffix(".tar.gz")
