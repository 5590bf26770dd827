"""The one place HTTP sessions are built: pooled, retried, optionally cached on disk."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from cachecontrol import CacheControlAdapter
from cachecontrol.caches import SeparateBodyFileCache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from reconciler import __version__

USER_AGENT = f"pypi-delayed-mirror/{__version__}"
# The longest Retry-After we wait out; a server asking for hours would stall a pipeline.
MAX_RETRY_AFTER = 60.0


class CappedRetry(Retry):
    """urllib3 `Retry` that honours Retry-After up to MAX_RETRY_AFTER seconds."""

    def parse_retry_after(self, retry_after: str) -> float:
        """The server's wait, capped."""
        return min(super().parse_retry_after(retry_after), MAX_RETRY_AFTER)


# Requests that are safe to repeat. POST is here for the read-only POSTs of the vulnerability
# services (OSV querybatch); a client whose POSTs change state passes its own set.
RETRIED_METHODS = frozenset({"GET", "HEAD", "POST"})


def make_retry(
    total: int = 5,
    backoff_factor: float = 0.5,
    methods: frozenset[str] = RETRIED_METHODS,
) -> Retry:
    """Retry idempotent requests on 429, 5xx and broken connections.

    Backoff is exponential; a Retry-After header on 429/503 is honoured (urllib3 `Retry`).
    Connection failures before a request was sent are retried whatever the method.
    """
    return CappedRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        backoff_factor=backoff_factor,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=methods,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def make_session(
    cache_dir: Path | None = None,
    pool_size: int = 16,
    retry: Retry | None = None,
) -> requests.Session:
    """A session with a connection pool of `pool_size` and retries.

    With `cache_dir`, responses are cached on disk (CacheControl) and revalidated with their
    ETag, so an unchanged page costs a 304 instead of a body.
    """
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter: HTTPAdapter
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        adapter = CacheControlAdapter(
            cache=SeparateBodyFileCache(str(cache_dir)),
            max_retries=retry or make_retry(),
            pool_connections=pool_size,
            pool_maxsize=pool_size,
        )
    else:
        adapter = HTTPAdapter(
            max_retries=retry or make_retry(), pool_connections=pool_size, pool_maxsize=pool_size
        )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def default_cache_dir() -> Path:
    """`$MIRROR_CACHE_DIR`, else the XDG cache directory."""
    if os.environ.get("MIRROR_CACHE_DIR"):
        return Path(os.environ["MIRROR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pypi-delayed-mirror" / "http"


def redact(url: str) -> str:
    """The URL without user info or query string, safe to print or log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
