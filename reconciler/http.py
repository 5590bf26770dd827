"""The one place HTTP sessions are built: pooled, retried, optionally cached on disk."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from cachecontrol import CacheControlAdapter
from cachecontrol.caches import SeparateBodyFileCache
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.util.retry import Retry

from reconciler import __version__

if TYPE_CHECKING:
    from typing_extensions import Self

USER_AGENT = f"pypi-delayed-mirror/{__version__}"
# The longest Retry-After we wait out; a server asking for hours would stall a pipeline.
MAX_RETRY_AFTER = 60.0
# The longest one request waits out rate limits in all (GitLab's windows are a minute long).
MAX_RATE_LIMITED = 1800.0


# Requests that are safe to repeat. POST is here for the read-only POSTs of the vulnerability
# services (OSV querybatch); a client whose POSTs change state passes its own set.
RETRIED_METHODS = frozenset({"GET", "HEAD", "POST"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed request is repeated and how long to wait in between.

    A dependency like the clock: production backs off exponentially and honours Retry-After (up
    to `max_wait`), waiting with `sleep` (None: the machine's; the composition root passes one
    that Ctrl-C ends); tests pass one that records the waits instead of sleeping them.
    """

    retries: int = 5  # repeats after the first attempt
    backoff: float = 0.5  # seconds before the second attempt; doubles with each one after
    max_wait: float = MAX_RETRY_AFTER
    sleep: Callable[[float], None] | None = None
    # A rate limit (429 with Retry-After) is waited out without using up a retry, for this
    # long in all per request: sustained limiting over a whole run paces it, never fails it.
    rate_limited: float = MAX_RATE_LIMITED
    # ...and at most this many times: urllib3 retries by recursion, a level per attempt.
    paced_times: int = 60

    def paces(self, waited: float, wait: float | None, times: int) -> bool:
        """Whether a rate limit's `wait` is waited out on top of `waited` (in `times` waits
        so far), not as a retry."""
        return wait is not None and waited + wait <= self.rate_limited and times < self.paced_times

    def pause(self, seconds: float) -> None:
        """Wait `seconds` between two attempts."""
        (self.sleep or time.sleep)(seconds)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """The wait after failed attempt `attempt` (0-based): the server's Retry-After in
        seconds where it gives one, else the backoff; never more than `max_wait`."""
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_wait)
        return min(self.backoff * 2.0**attempt, self.max_wait)

    def urllib3(self, methods: frozenset[str] = RETRIED_METHODS) -> Retry:
        """The policy as urllib3's `Retry`, for a session's adapters.

        Retries 429, 5xx and broken connections; connection failures before a request was
        sent are retried whatever the method.
        """
        return _PolicyRetry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=methods,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            policy=self,
        )


class _PolicyRetry(Retry):
    """urllib3 `Retry` that caps Retry-After and waits through the policy's `sleep`."""

    def __init__(self, *args: Any, policy: RetryPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy or RetryPolicy()
        self.limited = 0.0  # seconds of rate limits waited out so far
        self.paced = 0  # and how many times

    def new(self, **kwargs: Any) -> Self:
        """The next state of the retry counter, keeping the policy (urllib3 drops unknowns)."""
        fresh = super().new(**kwargs)
        fresh.policy, fresh.limited, fresh.paced = self.policy, self.limited, self.paced
        return fresh

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        """A 429 with Retry-After uses up no retry while the policy paces it: the same
        counters again, with its wait counted."""
        limited = response is not None and response.status == 429
        wait = self.get_retry_after(response) if limited and response is not None else None
        if self.policy.paces(self.limited, wait, self.paced):
            fresh = self.new()
            fresh.limited, fresh.paced = self.limited + (wait or 0.0), self.paced + 1
            return fresh
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def parse_retry_after(self, retry_after: str) -> float:
        """The server's wait, capped."""
        return min(super().parse_retry_after(retry_after), self.policy.max_wait)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Wait Retry-After where the server gave one, else the backoff."""
        wait = self.get_retry_after(response) if response is not None else None
        wait = wait if wait is not None else self.get_backoff_time()
        if wait > 0:
            self.policy.pause(wait)


def make_session(
    cache_dir: Path | None = None,
    pool_size: int = 16,
    retries: RetryPolicy | None = None,
    methods: frozenset[str] = RETRIED_METHODS,
) -> requests.Session:
    """A session with a connection pool of `pool_size`, retrying `methods` by `retries`.

    With `cache_dir`, responses are cached on disk (CacheControl) and revalidated with their
    ETag, so an unchanged page costs a 304 instead of a body.
    """
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    retry = (retries or RetryPolicy()).urllib3(methods)
    adapter: HTTPAdapter
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        adapter = CacheControlAdapter(
            cache=SeparateBodyFileCache(str(cache_dir)),
            max_retries=retry,
            pool_connections=pool_size,
            pool_maxsize=pool_size,
        )
    else:
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BodyError(Exception):
    """A response body that is too large or too slow to be believed (a hostile server)."""


@contextmanager
def deadline(response: requests.Response, seconds: float) -> Iterator[threading.Event]:
    """While inside, the response is shut down once `seconds` have passed (the event tells):
    the session's timeout bounds each read, not a server that drips a byte every few seconds."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        with contextlib.suppress(RuntimeError, OSError):  # already given back, or closed
            response.raw.shutdown()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


def body_chunks(response: requests.Response, limit: int, seconds: float) -> Iterator[bytes]:
    """The body of a streamed response in chunks, at most `limit` bytes within `seconds` in
    all; BodyError past either."""
    size = 0
    with deadline(response, seconds) as expired:
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise BodyError(f"answered more than {limit} bytes")
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError):
            if not expired.is_set():
                raise
    if expired.is_set():
        raise BodyError(f"answered too slowly (over {seconds:g} s)")


def read_body(response: requests.Response, limit: int, seconds: float) -> bytes:
    """The body of a streamed response, at most `limit` bytes within `seconds` in all."""
    return b"".join(body_chunks(response, limit, seconds))


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
