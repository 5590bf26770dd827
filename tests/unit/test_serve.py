"""`mirror serve`: content negotiation (PEP 691) as a pure function; what it serves, and to
how many at once."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from reconciler import serve
from reconciler.serve import HTML_TYPE, JSON_TYPE, MAX_CONNECTIONS, make_server, negotiate
from tests.e2e.helpers import running, wait_for

PIP = f"{JSON_TYPE}, {HTML_TYPE}; q=0.1, text/html; q=0.01"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        (PIP, JSON_TYPE),
        (f"{HTML_TYPE}", HTML_TYPE),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html"),  # a browser
        ("*/*", "text/html"),
        (f"{JSON_TYPE};q=0.5, */*;q=0.9", "text/html"),
        (f"*/*;q=0.9, {JSON_TYPE}", JSON_TYPE),
        (f"application/*, {JSON_TYPE};q=0", HTML_TYPE),  # most specific range wins
        ("application/json", None),
        (f"{JSON_TYPE};q=0", None),
    ],
)
def test_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


@contextmanager
def serving(root: Path) -> Iterator[str]:
    with running(make_server(root, "127.0.0.1", 0)) as url:
        yield url


def test_links_out_of_the_registry_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret")
    root = tmp_path / "registry"
    (root / "files" / "foo").mkdir(parents=True)
    (root / "files" / "foo" / "foo-1.0.tar.gz").write_bytes(b"sdist")
    (root / "files" / "etcdir").symlink_to(outside)
    (root / "files" / "foo" / "leak.tar.gz").symlink_to(outside / "shadow")
    (root / "files" / "foo" / "inside.tar.gz").symlink_to(root / "files" / "foo" / "foo-1.0.tar.gz")
    with serving(root) as url:
        assert requests.get(f"{url}/files/foo/foo-1.0.tar.gz", timeout=5).content == b"sdist"
        assert requests.get(f"{url}/files/etcdir/shadow", timeout=5).status_code == 404
        assert requests.get(f"{url}/files/foo/leak.tar.gz", timeout=5).status_code == 404
        assert requests.get(f"{url}/files/foo/inside.tar.gz", timeout=5).status_code == 200


def test_held_connections_do_not_take_a_thread_each_without_bound(tmp_path: Path) -> None:
    before = threading.active_count()
    with serving(tmp_path) as url:
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(MAX_CONNECTIONS + 50)]
        try:
            wait_for(lambda: threading.active_count() >= before + MAX_CONNECTIONS)
            # Besides: the thread serving (`running`) and the server's watchdog.
            assert threading.active_count() <= before + 2 + MAX_CONNECTIONS
        finally:
            for connection in idle:
                connection.close()
        wait_for(lambda: threading.active_count() <= before + 2)
        assert requests.get(f"{url}/simple/", timeout=5).status_code == 404


@pytest.mark.timed_wait
def test_a_request_trickled_a_byte_at_a_time_is_hung_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each byte comes well within the idle timeout; the request as a whole does not."""
    monkeypatch.setattr(serve, "REQUEST_SECONDS", 0.5)
    with serving(tmp_path) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(b"GET /simple/ HTTP/1.1\r\nX-Slow: ")
            hung_up = time.monotonic() + 60  # the trickle would go on for ever
            while time.monotonic() < hung_up:
                readable, _, _ = select.select([connection], [], [], 0.1)
                try:
                    if readable and connection.recv(1024) == b"":
                        break
                    connection.sendall(b"a")
                except ConnectionError:  # hung up while we wrote
                    break
            else:
                pytest.fail("the server kept the trickling connection")
        assert requests.get(f"{url}/simple/", timeout=5).status_code == 404
