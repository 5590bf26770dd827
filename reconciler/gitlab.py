"""A narrow GitLab REST client: which credential goes where, pagination, and errors.

GitLab accepts the CI job token in different ways on different routes (see
shared/reference/gitlab-api.md section 0): HTTP Basic with user `gitlab-ci-token` on the PyPI
and Terraform-state routes, the `JOB-TOKEN` header on the Packages API. Tokens travel only in
request headers to the configured host, never in URLs, messages or logs; redirects are never
followed (a redirect could carry the credential elsewhere, and GitLab's simple index forwards
unknown names to pypi.org).
"""

from __future__ import annotations

import copy
import email.utils
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from reconciler import jsondata
from reconciler.errors import ReconcilerError, UserError
from reconciler.http import MAX_RATE_LIMITED, MAX_RETRY_AFTER, RetryPolicy, make_session

# State-changing POSTs are never repeated blindly: an upload that failed may have landed.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
PER_PAGE = 100  # GitLab's maximum
MAX_WINDOW = 3600  # seconds: the longest throttle window believed (GitLab: a minute, an hour)

T = TypeVar("T")


class GitLabError(ReconcilerError):
    """GitLab refused or failed a request (after retries)."""


@dataclass(frozen=True)
class Credential:
    """A token and the way a route wants it; `repr` never shows the secret."""

    token: str

    def __repr__(self) -> str:
        return "Credential(<redacted>)"

    def job_token_header(self) -> dict[str, str]:
        """The Packages API's way: the `JOB-TOKEN` header (Basic is refused there)."""
        return {"JOB-TOKEN": self.token}

    def job_token_basic(self) -> tuple[str, str]:
        """The PyPI and Terraform-state routes' way: Basic, user `gitlab-ci-token`."""
        return ("gitlab-ci-token", self.token)

    def private_token_header(self) -> dict[str, str]:
        """A personal/project access token (`MIRROR_NOTE_TOKEN`)."""
        return {"PRIVATE-TOKEN": self.token}


@dataclass(frozen=True)
class Again:
    """An attempt that failed in a way worth repeating: a broken connection, 429 or 5xx."""

    why: str  # for the message when every attempt failed
    retry_after: str | None = None  # the server's Retry-After header, where it sent one
    rate_limited: bool = False  # a 429: waited out without using up an attempt, while paced


@dataclass
class _Window:
    """One throttle's window as the latest answers tell it."""

    deadline: float  # its end, on the budget's clock
    remaining: int
    reserve: int  # what is left to the token's owner


class RateBudget:
    """Pacing by GitLab's rate-limit headers, shared by every thread of one client.

    GitLab's throttles count requests per user in fixed windows and say where a response
    stands (`RateLimit-Name`, `-Observed`, `-Remaining`, `-Reset` in Unix time: reference
    section 6). Once any window known is down to its reserve, requests wait for it to end, so
    a run that needs more than one window's worth (a nightly drift of thousands of packages)
    spreads over several instead of meeting 429s. The reserve is a tenth of the window (at
    least the requests in flight, at most half): the token is a person's (the merging user's
    job token), and their own work shares the window. Each window (a throttle and its end) is
    tracked apart, so a roomy hourly one never hides a spent per-minute one. A window said to
    end more than an hour away is not believed; a throttle GitLab applies without these
    headers still answers 429 with Retry-After, which the retry policy waits out.
    """

    def __init__(
        self,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
        in_flight: int = 16,
        max_wait: float = MAX_RETRY_AFTER,
        max_total: float = MAX_RATE_LIMITED,
    ) -> None:
        self.sleep, self.clock = sleep, clock
        self.in_flight, self.max_wait, self.max_total = in_flight, max_wait, max_total
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], _Window] = {}
        self._ended: dict[str, int] = {}  # per throttle, the end of the last window over

    def take(self) -> None:
        """Count one request about to go, first waiting (in steps of at most `max_wait`, at
        most `max_total` in all) while a window is spent; every thread waits with it."""
        with self._lock:
            waited = 0.0
            while waited < self.max_total:
                now = self.clock()
                for key in [k for k, w in self._windows.items() if w.deadline <= now]:
                    del self._windows[key]
                    self._ended[key[0]] = max(self._ended.get(key[0], 0), key[1])
                spent = [w.deadline for w in self._windows.values() if w.remaining <= w.reserve]
                if not spent:
                    break
                wait = min(min(spent) - now, self.max_wait, self.max_total - waited)
                self.sleep(wait)
                waited += wait
            for window in self._windows.values():
                window.remaining -= 1

    def observe(self, headers: Mapping[str, str]) -> None:
        """Where a response says its window stands; within a window the lowest count wins
        (responses overtake each other). Absent or absurd figures say nothing."""
        try:
            remaining = int(headers["RateLimit-Remaining"])
            observed = int(headers["RateLimit-Observed"])
            ends = int(headers["RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        # How long the window has left by GitLab's clock (its Date header), not ours.
        sent = _http_date(headers.get("Date"))
        left = ends - int(sent if sent is not None else time.time()) if ends < 2**40 else -1
        if not 0 < left <= MAX_WINDOW:
            return
        limit = max(observed + remaining, 0)
        key = (headers.get("RateLimit-Name", "")[:100], ends)
        with self._lock:
            if ends <= self._ended.get(key[0], 0):
                return  # a late answer from a window already over
            window = self._windows.get(key)
            if window is None:
                reserve = min(max(self.in_flight, limit // 10), limit // 2)
                self._windows[key] = _Window(self.clock() + left, remaining, reserve)
            elif remaining < window.remaining:
                window.remaining = remaining


def _http_date(value: str | None) -> float | None:
    """An HTTP Date header as Unix time, or None."""
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def ci_setting(name: str, purpose: str) -> str:
    """A CI/CD variable the GitLab parts need; a clear error when it is missing."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise UserError(f"environment variable {name} is not set; {purpose}")
    return value


class GitLabClient:
    """Requests to one GitLab project's API over one pooled, retrying session."""

    def __init__(
        self,
        api_url: str,
        project_id: str,
        session: requests.Session | None = None,
        pool_size: int = 16,
        timeout: float = 60.0,
        retries: RetryPolicy | None = None,
        error: type[GitLabError] = GitLabError,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            # Never echo the value: it might carry a credential.
            raise UserError(
                "CI_API_V4_URL must be an http(s) URL like https://gitlab.example/api/v4, "
                "without credentials"
            )
        self.api_url = api_url.rstrip("/")
        self.project_url = f"{self.api_url}/projects/{quote(project_id, safe='')}"
        # The session retries what is safe to repeat; callers retry their POSTs by hand with
        # the same policy, checking first whether the failed attempt landed.
        self.retries = retries or RetryPolicy()
        self.session = session or make_session(None, pool_size, self.retries, IDEMPOTENT)
        self.timeout = timeout
        self.error = error
        self.budget = RateBudget(self.retries.pause, in_flight=pool_size)

    def raising(self, error: type[GitLabError]) -> GitLabClient:
        """This client (same session) raising `error`: a registry's failures are its own."""
        clone = copy.copy(self)
        clone.error = error
        return clone

    def describe(self) -> str:
        """Host and project, for messages."""
        return self.project_url

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request, redirects off, paced by the rate-limit budget; connection failures
        become GitLabError."""
        kwargs.setdefault("timeout", self.timeout)
        self.budget.take()
        try:
            response = self.session.request(method, url, allow_redirects=False, **kwargs)
        except requests.RequestException as error:
            raise self.error(
                f"GitLab could not be reached ({method} {_path(url)}): {type(error).__name__}"
            ) from None
        self.budget.observe(response.headers)
        return response

    def post(self, url: str, **kwargs: Any) -> requests.Response | Again:
        """One POST, not repeated by the session (it changes state): a broken connection, 429
        or 5xx is `Again`, and the caller looks whether it landed before trying again."""
        try:
            response = self.request("POST", url, **kwargs)
        except GitLabError as error:
            return Again(str(error))
        if response.status_code == 429 or response.status_code >= 500:
            why = f"GitLab answered {response.status_code}: {_message(response)}"
            return Again(why, response.headers.get("Retry-After"), response.status_code == 429)
        return response

    def retry(self, attempt: Callable[[], T | Again], what: str) -> T:
        """`attempt` until it gives a result, waiting between tries as the retry policy says.

        The retry of state-changing POSTs, whose every attempt first checks whether the last
        one landed; raises GitLabError naming `what` when every try asked to go again.
        """
        attempts = self.retries.retries + 1
        number, limited, paced_times = 0, 0.0, 0
        while True:
            outcome = attempt()
            if not isinstance(outcome, Again):
                return outcome
            wait = self.retries.delay(number, outcome.retry_after)
            paced = outcome.rate_limited and outcome.retry_after is not None
            if paced and self.retries.paces(limited, wait, paced_times):
                limited, paced_times = limited + wait, paced_times + 1  # no attempt used up
            else:
                number += 1
                if number == attempts:
                    raise self.error(
                        f"{what} failed {attempts} times; the last time: {outcome.why}"
                    )
            self.retries.pause(wait)

    def document(self, response: requests.Response, what: str) -> Any:
        """The response's JSON; malformed data is this client's error, naming `what`."""
        try:
            return jsondata.loads(response.content)
        except ValueError as error:
            raise self.error(f"GitLab answered {what} with malformed JSON: {error}") from None

    def created_id(self, response: requests.Response, what: str) -> int:
        """The `id` of what a response describes (a note, the user)."""
        document = self.document(response, what)
        if not isinstance(document, dict) or not isinstance(document.get("id"), int):
            raise self.error(f"GitLab answered {what} without an id")
        return int(document["id"])

    def check(
        self, response: requests.Response, what: str, role: str = "Reporter", package: bool = False
    ) -> None:
        """Raise a clear error for a failed response, naming the permission GitLab wants.

        `package`: the request writes a package, which a package protection rule can refuse
        with a 403 too ("Package protected.", shared/reference/gitlab-api.md 1.1 and 2.3).
        """
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise self.error(
                f"GitLab did not accept the credential for {what} (401): check that the token "
                "is set, unexpired, and allowed for this project"
            )
        if status == 403:
            message = _message(response)
            protection = (
                "a package protection rule (Settings > Packages and registries > Protected "
                "packages) covers this package"
            )
            if package and "protected" in message.lower():
                raise self.error(f"GitLab refused {what} (403: {message}): {protection}")
            cause = f"the token's user needs at least the {role} role on the project"
            if package:
                cause += f", or {protection} above that role"
            raise self.error(f"GitLab refused {what} (403): {cause}")
        if 300 <= status < 400:
            raise self.error(
                f"GitLab redirected {what} to {redacted_location(response)}; redirects are not "
                "followed (check CI_API_V4_URL)"
            )
        raise self.error(f"GitLab answered {status} for {what}: {_message(response)}")

    def paginate(
        self, url: str, params: Mapping[str, Any], headers: Mapping[str, str], what: str
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page by page."""
        for items, _ in self._pages(url, params, headers, what):
            yield from items

    def listing(
        self, url: str, params: Mapping[str, Any], headers: Mapping[str, str], what: str
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Every item of a list endpoint, and the count GitLab gave on the first page
        (`x-total`; None above 10,000 results, where GitLab omits it)."""
        items: list[dict[str, Any]] = []
        total: int | None = None
        for number, (page, response) in enumerate(self._pages(url, params, headers, what)):
            items.extend(page)
            if number == 0 and response.headers.get("x-total", "").isdigit():
                total = int(response.headers["x-total"])
        return items, total

    def _pages(
        self, url: str, params: Mapping[str, Any], headers: Mapping[str, str], what: str
    ) -> Iterator[tuple[list[dict[str, Any]], requests.Response]]:
        """Each page of a list endpoint with its response.

        Follows `x-next-page` (or `Link: rel="next"`), never the totals: GitLab omits them
        above 10,000 results (reference section 2.5).
        """
        page: str | None = "1"
        while page:
            response = self.request(
                "GET", url, params={**params, "per_page": PER_PAGE, "page": page}, headers=headers
            )
            self.check(response, what)
            items = self.document(response, what)
            if not isinstance(items, list):
                raise self.error(f"GitLab answered {what} with something other than a list")
            yield items, response
            page = response.headers.get("x-next-page")
            if page is None:  # no offset headers: fall back to the Link header
                next_link = response.links.get("next", {}).get("url")
                if next_link:
                    page = dict(
                        item.split("=", 1)
                        for item in urlsplit(next_link).query.split("&")
                        if "=" in item
                    ).get("page")


def redacted_location(response: requests.Response) -> str:
    """The redirect target without credentials or query."""
    location = response.headers.get("Location", "")
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.hostname}{parts.path}" if parts.hostname else "elsewhere"


def _message(response: requests.Response) -> str:
    """GitLab's own message, on one line (a proxy's HTML error page included)."""
    try:
        data = jsondata.loads(response.content)
    except ValueError:
        data = response.text
    if isinstance(data, dict):
        data = data.get("message") or data.get("error") or data
    return " ".join(str(data).split())[:200]


def _path(url: str) -> str:
    return urlsplit(url).path
