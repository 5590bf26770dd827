"""Helpers for end-to-end tests: a real pip, a static web server, the real `mirror` process."""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this machine's pip configuration: only the index we name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def pip_install(
    index_url: str, target: Path, *requirements: str
) -> subprocess.CompletedProcess[str]:
    """`pip install --index-url INDEX` into `target`, with no other index or config."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--isolated",
            "--index-url",
            index_url,
            "--target",
            str(target),
            *requirements,
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )


def installed_version(target: Path, module: str) -> str:
    """The `__version__` of a module installed into `target`, from a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
        env={**clean_env(), "PYTHONPATH": str(target)},
        check=True,
    )
    return result.stdout.strip()


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Python's plain static file server over a directory; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    with running(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url


@contextmanager
def running(server: http.server.HTTPServer) -> Iterator[str]:
    """Serve on a thread while inside; yields the server's base URL."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def mirror_command(*args: str) -> list[str]:
    """The real `mirror` console script of this environment, as a separate process."""
    return [sys.executable, "-m", "reconciler", *args]


def manager_command(*args: str) -> list[str]:
    """The real `mirror-manager` command, as a separate process."""
    code = "from reconciler.cli import manager_main; manager_main()"
    return [sys.executable, "-c", code, *args]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until `condition` holds; the timeout only bounds a test that would hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _take_the_terminal() -> None:
    """In the child: a session of its own, with the pseudo-terminal as controlling terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class Repeat:
    """Keys typed again and again (every 0.5 s) until the command ends: a Ctrl-C typed just
    before Python's `input()` takes the terminal can be lost (readline sets it up then)."""

    keys: bytes


def run_on_terminal(
    command: list[str],
    columns: int = 120,
    answers: Mapping[bytes, bytes | Repeat | Callable[[], object]] | None = None,
) -> tuple[int, str]:
    """Run a command on a pseudo-terminal `columns` wide; when a key of `answers` appears in
    its output, type the answer (or call it). (exit code, output without terminal escapes,
    each carriage return a line break: a redrawn progress bar is a line of its own)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        command,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**env, "TERM": "xterm"},
        preexec_fn=_take_the_terminal,  # Ctrl-C typed there reaches the command as SIGINT
    )
    os.close(secondary)
    seen, pending = b"", dict(answers or {})
    repeating: list[bytes] = []
    deadline = again = time.monotonic() + 60
    while time.monotonic() < deadline:
        if repeating and time.monotonic() >= again:
            again = time.monotonic() + 0.5
            for keys in repeating:
                os.write(primary, keys)
        ready, _, _ = select.select([primary], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        for prompt in [p for p in pending if p in seen]:
            answer = pending.pop(prompt)
            if isinstance(answer, Repeat):
                repeating.append(answer.keys)
                again = time.monotonic()
            elif callable(answer):
                answer()
            else:
                os.write(primary, answer)
        if process.poll() is not None and not ready:
            break
    code = process.wait(timeout=30)
    os.close(primary)
    text = _ANSI.sub("", seen.decode(errors="replace"))
    return code, text.replace("\r\n", "\n").replace("\r", "\n")


@contextmanager
def served(desired: Path) -> Iterator[str]:
    """`mirror serve --port 0` for a desired state, as a real process; yields its /simple/
    URL."""
    process = subprocess.Popen(
        mirror_command("serve", "--port", "0", "--desired-state", str(desired)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        match = re.search(r"http://\S+/simple/", process.stdout.readline())
        assert match, "mirror serve did not say where it listens"
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(timeout=10)


def uv(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """uv (the dev extra installs it beside this Python) with no configuration of this
    machine's, only what the test names."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("UV_")}
    env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(cache), UV_PYTHON_DOWNLOADS="never")
    binary = Path(sys.executable).with_name("uv")
    command = [str(binary) if binary.exists() else "uv", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def uv_install(index_url: str, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`uv pip install --index-url INDEX` into `target`, with no other index or config."""
    command = ["pip", "install", "--index-url", index_url, "--python", sys.executable]
    return uv(*command, "--target", str(target), *args, cache=target.parent / "uv-cache")
