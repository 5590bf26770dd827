"""Helpers for end-to-end tests: a real pip, a static web server, the real `mirror` process."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
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
