"""`mirror serve`: a small read-only server for the directory registry, for local use and tests.

It negotiates `Accept` between PEP 691 JSON and PEP 503 HTML on the simple pages (PEP 691,
"Version + Format Selection"), serves the files, and nothing else: the registry's `.mirror/`
state (lock, staging, quarantine log) and any other dotfile stay private.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# Connections served at once (a thread each), how long an idle one is kept, and how long a
# request (its line and headers) may take to arrive whole: a client trickling a byte now and
# then would otherwise hold its slot for ever (nginx's client_header_timeout).
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 30.0
REQUEST_SECONDS = 30.0
_PLAIN = re.compile(r"[A-Za-z0-9._+!~-]+")
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
# What a client may ask for, and the page that answers it. `text/html` is PEP 503's own.
_PAGES = {JSON_TYPE: "index.json", HTML_TYPE: "index.html", "text/html": "index.html"}
# Ties (`*/*`, or no preference stated) go to HTML: what pip and browsers have always had.
_TIE_ORDER = ("text/html", HTML_TYPE, JSON_TYPE)


def negotiate(accept: str | None) -> str | None:
    """The content type to serve for an Accept header; None when nothing offered is acceptable.

    Each offered type takes the quality of the most specific media range matching it
    (RFC 9110 section 12.5.1); the highest quality wins. No header at all means HTML.
    """
    if not accept or not accept.strip():
        return "text/html"
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))

    def quality_of(offered: str) -> float:
        kind = offered.split("/")[0]
        for pattern in (offered, f"{kind}/*", "*/*"):  # most specific first
            qualities = [q for media, q in ranges if media == pattern]
            if qualities:
                return max(qualities)
        return 0.0

    scored = [(quality_of(offered), -index, offered) for index, offered in enumerate(_TIE_ORDER)]
    best = max(scored)
    return best[2] if best[0] > 0 else None


class RegistryHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of simple pages (negotiated) and files; everything else is refused."""

    server_version = "pypi-delayed-mirror"
    timeout = IDLE_TIMEOUT  # a connection that sends nothing is closed
    root: Path

    def __init__(self, *args: object, root: Path, **kwargs: object) -> None:
        self.root = root
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def handle_one_request(self) -> None:
        """Read and answer one request; its line and headers must arrive in REQUEST_SECONDS."""
        server = self.server
        assert isinstance(server, _Server)
        server.watch(self.connection)
        try:
            super().handle_one_request()
        finally:
            server.unwatch(self.connection)

    def parse_request(self) -> bool:
        """Read the headers: from here on only the idle timeout applies (a slow download of
        a big file is not a slow request)."""
        try:
            return super().parse_request()
        finally:
            server = self.server
            assert isinstance(server, _Server)
            server.unwatch(self.connection)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """Serve a page or a file."""
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        """Headers only."""
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        parts = [p for p in path.split("/") if p]
        # Names on this index are plain ASCII: anything else (dot-files, control characters,
        # NUL, backslashes, non-ASCII) is not here, and never reaches a header or the disk.
        if any(p.startswith(".") or not _PLAIN.fullmatch(p) for p in parts):
            self._status(404)
            return
        if parts[:1] == ["simple"] and len(parts) <= 2:
            if not path.endswith("/"):
                self._redirect(path + "/")
                return
            if len(parts) == 2 and canonicalize_name(parts[1]) != parts[1]:
                self._redirect(f"/simple/{canonicalize_name(parts[1])}/")  # PEP 503
                return
            self._page(self.root.joinpath(*parts), send_body)
            return
        if parts[:1] == ["files"] and len(parts) == 3:
            self._file(self.root.joinpath(*parts), "application/octet-stream", send_body)
            return
        self._status(404)

    def _page(self, directory: Path, send_body: bool) -> None:
        chosen = negotiate(self.headers.get("Accept"))
        if chosen is None:
            self._status(406)
            return
        self._file(directory / _PAGES[chosen], chosen, send_body, vary=True)

    def _file(self, path: Path, content_type: str, send_body: bool, vary: bool = False) -> None:
        """A regular file inside the registry; a link out of it is not there (404)."""
        try:
            real = path.resolve(strict=True)
            if not real.is_relative_to(self.root.resolve()) or not real.is_file():
                raise FileNotFoundError(path)
            stream = real.open("rb")
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
            self._status(404)
            return
        with stream:
            size = os.fstat(stream.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(size))
            if vary:
                self.send_header("Vary", "Accept")
            self.end_headers()
            if send_body:
                shutil.copyfileobj(stream, self.wfile)

    def _redirect(self, location: str) -> None:
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _status(self, status: int) -> None:
        body = f"{status} {self.responses.get(status, ('',))[0]}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_server(root: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """A threaded server for the registry at `root` (port 0: any free port; an IPv6 host too)."""
    handler: Callable[..., RegistryHandler] = partial(RegistryHandler, root=root)
    server_class = _IPv6Server if ":" in host else _Server
    return server_class((host, port), handler)


class _Server(http.server.ThreadingHTTPServer):
    """A thread per connection, up to MAX_CONNECTIONS; one more is closed at once. One
    watchdog thread hangs up on requests that take longer than REQUEST_SECONDS to arrive."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: socketserver's 5 drops bursts of clients

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._deadlines: dict[socket.socket, float] = {}
        self._watched = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._watchdog, name="serve-watchdog", daemon=True).start()

    def watch(self, connection: socket.socket) -> None:
        """A request is awaited on `connection`: it has REQUEST_SECONDS to arrive."""
        with self._watched:
            self._deadlines[connection] = time.monotonic() + REQUEST_SECONDS

    def unwatch(self, connection: socket.socket) -> None:
        """The request arrived (or the connection ends)."""
        with self._watched:
            self._deadlines.pop(connection, None)

    def _watchdog(self) -> None:
        while not self._closed.wait(min(1.0, REQUEST_SECONDS / 4)):
            now = time.monotonic()
            with self._watched:
                late = [c for c, deadline in self._deadlines.items() if deadline < now]
            for connection in late:
                with contextlib.suppress(OSError):  # gone already
                    connection.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        """Stop listening, and the watchdog."""
        self._closed.set()
        super().server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread of its own, while there are slots; else hang up."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve, then give the slot back."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _IPv6Server(_Server):
    address_family = socket.AF_INET6
