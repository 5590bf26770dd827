"""A threaded HTTP server on 127.0.0.1 for fakes that speak a real protocol."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Gate:
    """Holds a request at a chosen point until the test opens it: "mid-request", deterministic.

    The fake calls `pass_through` where it should stop; the test waits for `arrived`, does
    what it must while the client is stuck there, then calls `open`.
    """

    arrived: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def pass_through(self) -> None:
        self.arrived.set()
        self.opened.wait(timeout=120)

    def open(self) -> None:
        self.opened.set()


class _Server(ThreadingHTTPServer):
    # A deep accept queue: the default of 5 drops connections under concurrent clients.
    request_queue_size = 256
    daemon_threads = True


class FakeServer:
    """Runs a handler class on an ephemeral port; counts requests by (method, path)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: Counter[tuple[str, str]] = Counter()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests[(method, path)] += 1
            self.statuses[status] += 1

    def count(self, prefix: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (m, p), n in self.requests.items()
                if p.startswith(prefix) and (method is None or m == method)
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """Base handler: no stderr logging, HTTP/1.1 keep-alive, optional latency."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms), which real CDNs do not add.
    disable_nagle_algorithm = True

    @property
    def fake(self) -> Any:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def delay(self) -> None:
        if self.fake.latency:
            time.sleep(self.fake.latency)

    def send_body(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.fake.record(self.command, self.path, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
