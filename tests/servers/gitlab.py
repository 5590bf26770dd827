"""A fake GitLab: the PyPI registry, Packages API, MR notes, Terraform-state lock and `GET /user`.

It follows `/work/shared/reference/gitlab-api.md` (read from GitLab's source):

- section 0, the authentication cheat-sheet: on the PyPI and Terraform-state routes the job
  token works only as HTTP Basic with login `gitlab-ci-token` (a `JOB-TOKEN` header is ignored
  there); on the Packages API and the notes GETs only as `JOB-TOKEN` header or `job_token`
  param (Basic is ignored); notes POST/PUT and `GET /user` take access tokens only. Access
  tokens go in `PRIVATE-TOKEN` or `Authorization: Bearer`, and as Basic password on the PyPI
  and Terraform routes. Missing or invalid credentials give 401, a too-low role 403.
- 1.1 upload: multipart `content`/`name`/`version` (+ `sha256_digest`, `requires_python`),
  exact `(name, version)` lookup, a new file name attaches (201), the same file name again is
  400 "Validation failed: File name has already been taken", the digest is stored unverified.
- 1.2 / 1.3 simple index and downloads: the name is only lower-cased and compared with the
  PEP 503 form of stored names; an unknown name is a 302 to pypi.org while `forwarding` is on.
- 1.4 / 2.1 / 2.2 Packages API: substring `package_name`, exact `package_version`, ordering,
  `pending_destruction` hidden; 2.3 deletes are asynchronous (`run_destruction_worker`);
  2.5 offset pagination headers, totals and rel="last" omitted above `totals_limit`.
- 3 notes: list (default `sort=desc`), get, create (201), update (author only), `body` not
  blank and at most 1,000,000 characters.
- 4 Terraform state as a lock, as `lib/api/terraform/state.rb` and
  `app/services/terraform/remote_state_handler.rb` behave: lock 200/409 (409 carries the
  holder's ID/Who/Created and the caller's Operation/Info/Version/Path), unlock by ID or
  forced, state writes guarded by the lock ID, Developer to read and Maintainer to change.
- 6 rate limiting: a `Throttle` (Rack::Attack's fixed window per user) sends the RateLimit
  headers on every response and 429 past its limit; 429s, throttled or injected, carry the
  plain-text body `Retry later`, `Retry-After` and `RateLimit-ResetTime`.

Faults for retry tests are queued with `inject`. Secrets are never stored outside the token
attributes: query-string credentials are redacted in every log and counter.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import json
import re
import secrets
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import HTTP
from html import escape
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from packaging.version import InvalidVersion, Version

from tests.servers.base import FakeServer, Gate, QuietHandler

ROLES = {"guest": 10, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}
PACKAGE_TYPES = {
    "composer",
    "conan",
    "conda",
    "debian",
    "generic",
    "golang",
    "helm",
    "maven",
    "ml_model",
    "npm",
    "nuget",
    "pypi",
    "rpm",
    "rubygems",
    "terraform_module",
}
PACKAGE_STATUSES = {"default", "hidden", "processing", "error", "pending_destruction", "deprecated"}
DISPLAYABLE = {"default", "deprecated", "error"}  # the list's default filter (reference 2.1)
NOTE_MAX_CHARS = 1_000_000
SECRET_PARAMS = {"job_token", "private_token", "access_token"}
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
NAME_RE = re.compile(r"[\w.+-]+", re.ASCII)
UPLOAD_PATH = re.compile(r"/api/v4/projects/[^/]+/packages/pypi")
FAULT_KINDS = {"429", "500", "500-after", "reset", "reset-after"}

UNAUTHORIZED = {"message": "401 Unauthorized"}
FORBIDDEN = {"message": "403 Forbidden"}


def canonical(name: str) -> str:
    """PEP 503 normalisation, as GitLab applies it to stored names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def timestamp() -> str:
    """A GitLab-style UTC timestamp with milliseconds: `2026-11-24T12:00:00.000Z`."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def redact(path: str) -> str:
    """The request path with credential query parameters blanked."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = [
        (k, "REDACTED" if k.lower() in SECRET_PARAMS else v)
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{base}?{urlencode(pairs)}"


@dataclass
class User:
    id: int
    username: str
    name: str
    role: str
    bot: bool = False


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, document: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(document).encode(), "application/json", headers or {})


class ApiError(Exception):
    """Ends a request with this reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def fail(status: int, document: Any, headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(json_reply(status, document, headers))


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    kind: str
    times: int
    retry_after: str


@dataclass
class Throttle:
    """A Rack::Attack throttle as GitLab configures `throttle_authenticated_api` (reference 6):
    `limit` requests per user per fixed window of `period` seconds (windows start at multiples
    of the period in Unix time), every request counted, throttled ones too. Each response says
    where its window stands; past the limit the answer is 429 `Retry later` with Retry-After
    (whole seconds to the window's end) and RateLimit-ResetTime."""

    limit: int
    period: int = 60
    clock: Callable[[], float] = time.time
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def count(self, who: str) -> tuple[bool, dict[str, str]]:
        """(throttled, the RateLimit headers) for one more request of `who`."""
        now = int(self.clock())
        key = (who, now // self.period)
        self.counts[key] = observed = self.counts.get(key, 0) + 1
        retry_after = self.period - now % self.period
        headers = {
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(-(-self.limit * 60 // self.period)),  # per minute, rounded up
            "RateLimit-Observed": str(observed),
            "RateLimit-Remaining": str(max(self.limit - observed, 0)),
            "RateLimit-Reset": str(now + retry_after),
        }
        if observed <= self.limit:
            return False, headers
        headers["Retry-After"] = str(retry_after)
        headers["RateLimit-ResetTime"] = email.utils.formatdate(now + retry_after, usegmt=True)
        return True, headers


@dataclass
class Request:
    """What a route needs: method, raw path segments, query, body, and the caller."""

    method: str
    path: str
    segments: list[str]
    query: dict[str, str]
    body: bytes
    headers: Any
    user: User | None = None


# Route kinds (reference section 0): which transports carry which credential.
BASIC_ROUTES = "basic"  # PyPI, Terraform state: Basic (job token or PAT), PAT headers
HEADER_ROUTES = "header"  # Packages API, notes GETs: JOB-TOKEN header/param, PAT headers
PAT_ROUTES = "pat"  # notes POST/PUT, GET /user: PAT headers only


class GitLabHandler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.handle_api()

    def do_HEAD(self) -> None:  # noqa: N802
        self.handle_api()

    def do_POST(self) -> None:  # noqa: N802
        self.handle_api()

    def do_PUT(self) -> None:  # noqa: N802
        self.handle_api()

    def do_DELETE(self) -> None:  # noqa: N802
        self.handle_api()

    # -- transport --------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or "0")
        return self.rfile.read(length) if length > 0 else b""

    def send_reply(self, reply: Reply) -> None:
        fake: FakeGitLab = self.fake
        fake.record(self.command, redact(self.path), reply.status)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)

    def reset(self) -> None:
        """Close the socket without an answer (an RST once closed: linger 0)."""
        self.fake.record(self.command, redact(self.path), 0)
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_api(self) -> None:
        self.delay()
        fake: FakeGitLab = self.fake
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_reply(json_reply(400, {"error": "400 Bad request - malformed body"}))
            return
        path, _, query_string = self.path.partition("?")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        request = Request(self.command, path, [], query, body, self.headers)
        with fake.mutex:
            fake.request_log.append((self.command, redact(self.path)))
            if self.command == "POST" and UPLOAD_PATH.fullmatch(path):
                fake.upload_body_sizes.append(len(body))  # every attempt, faulted ones too
            fake.auth_log.append((self.command, path, fake.credential_kind(request)))
            fault = fake.take_fault(self.command, path)
            throttled, limits = (
                fake.throttle.count(fake.caller_key(request))
                if fake.throttle is not None
                else (False, {})
            )
            gate, upload = fake.upload_gate, self.command == "POST" and UPLOAD_PATH.fullmatch(path)
            if gate is not None and upload:
                fake.upload_gate = None
        if throttled:
            fake.throttled += 1
            self.send_reply(Reply(429, b"Retry later", "text/plain", limits))
            return
        if gate is not None and upload:
            gate.pass_through()  # outside the mutex: other requests go on meanwhile
        if fault is not None and fault.kind in ("429", "500", "reset"):
            self.serve_fault(fault)
            return
        try:
            reply = fake.dispatch(request)
        except ApiError as error:
            reply = error.reply
        except Exception:  # a bug in the fake: answer 500 and keep the traceback for tests
            fake.errors.append(traceback.format_exc())
            reply = json_reply(500, {"message": "500 Internal Server Error"})
        if fault is not None:
            self.serve_fault(fault)
            return
        reply.headers.update(limits)
        self.send_reply(reply)

    def serve_fault(self, fault: Fault) -> None:
        if fault.kind.startswith("reset"):
            self.reset()
            return
        if fault.kind == "429":
            try:
                delay = float(fault.retry_after)
            except ValueError:
                delay = 0.0
            reset_at = email.utils.formatdate(time.time() + delay, usegmt=True)
            headers = {"Retry-After": fault.retry_after, "RateLimit-ResetTime": reset_at}
            self.send_reply(Reply(429, b"Retry later", "text/plain", headers))
            return
        self.send_reply(json_reply(500, {"message": "500 Internal Server Error"}))


class FakeGitLab(FakeServer):
    """One private project (id 42, path `group/mirror`) with its registry, MRs and states."""

    project_id = "42"
    project_path = "group/mirror"

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(GitLabHandler, latency)
        self.mutex = threading.RLock()  # every route runs under it: lock-taking is atomic
        self.job_token = secrets.token_hex(20)
        self.note_token = secrets.token_hex(20)
        self.other_token = secrets.token_hex(20)
        self.job_role = "maintainer"
        self.job_user = User(10, "pipeline-user", "Pipeline User", "maintainer")
        self.users: dict[int, User] = {
            10: self.job_user,
            77: User(77, "mirror-bot", "Mirror Bot", "reporter", bot=True),
            5: User(5, "alice", "Alice", "developer"),
        }
        self.users_by_token: dict[str, User] = {  # access tokens (PAT / project token)
            self.note_token: self.users[77],
            self.other_token: self.users[5],
        }
        self.forwarding = True
        self.totals_limit = 10000
        self.merge_requests: set[int] = {7}
        self.merged_by_commit: dict[str, int] = {}  # a merge commit's sha -> the MR it merged
        self.max_file_size = 3 * 1024**3  # the instance's pypi_max_file_size
        self.throttle: Throttle | None = None  # a rate limit on every API request
        self.throttled = 0  # the 429s it answered
        self.unstable_ties = False  # order ties differently per page, as GitLab may
        self.max_per_page = 100  # GitLab's; a test lowers it to see many pages
        self.packages: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.locks: dict[str, dict[str, Any]] = {}
        self.states: dict[str, bytes] = {}
        self.state_serials: dict[str, set[int]] = {}  # the serials each state's versions took
        self.deleted_states: set[str] = set()
        self.upload_body_sizes: list[int] = []
        self.auth_log: list[tuple[str, str, str]] = []
        self.request_log: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.faults_served: list[str] = []  # the kind of each fault served, in order
        self.fault_log: list[tuple[str, str, str]] = []  # (method, path, kind)
        self.errors: list[str] = []
        self.upload_gate: Gate | None = None  # holds the next upload until the test opens it
        # Package protection rules: (name pattern with `*`, minimum role to push, to delete).
        self.protection_rules: list[tuple[str, str, str]] = []
        self._next_package_id = 1
        self._next_file_id = 1
        self._next_note_id = 1

    # -- public helpers ---------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    @property
    def simple_url(self) -> str:
        return f"{self.api_url}/projects/{self.project_id}/packages/pypi/simple"

    def role_of(self, user: User) -> str:
        return self.job_role if user.id == self.job_user.id else user.role

    def add_package(self, name: str, version: str, files: dict[str, bytes]) -> dict[str, Any]:
        """Seed a package (or add files to the live one of that exact name and version)."""
        with self.mutex:
            package = self._find_or_create(name, version)
            for file_name, content in files.items():
                digest = hashlib.sha256(content).hexdigest()
                self._attach(package, file_name, content, digest, None)
            return package

    def package_named(self, name: str, version: str) -> dict[str, Any] | None:
        """The first live package whose PEP 503 name and version match."""
        with self.mutex:
            for package in self.packages:
                if (
                    package["status"] == "default"
                    and canonical(package["name"]) == canonical(name)
                    and package["version"] == version
                ):
                    return package
            return None

    def add_note(self, iid: int, author_id: int, body: str, system: bool = False) -> dict[str, Any]:
        """Seed a note by any user (e.g. someone else's comment, a system note)."""
        with self.mutex:
            self.merge_requests.add(iid)
            return self._create_note(iid, self.users[author_id], body, system)

    def run_destruction_worker(self) -> int:
        """Physically remove what deletes marked `pending_destruction`; returns rows removed."""
        with self.mutex:
            removed = 0
            kept = []
            for package in self.packages:
                if package["status"] == "pending_destruction":
                    removed += 1 + len(package["files"])
                    continue
                live = [f for f in package["files"] if f["status"] != "pending_destruction"]
                removed += len(package["files"]) - len(live)
                package["files"] = live
                kept.append(package)
            self.packages[:] = kept
            return removed

    def inject(
        self, method: str, path_regex: str, kind: str, times: int = 1, retry_after: str = "0"
    ) -> None:
        """Queue a fault for `times` requests whose path (no query) `re.search`es `path_regex`.

        `method` is matched case-insensitively; "*" matches any. Kinds: "429" (Retry later,
        `Retry-After: retry_after`, `RateLimit-ResetTime`), "500" (nothing done), "500-after"
        (the action done, then a 500), "reset" (the body read, the socket closed unanswered),
        "reset-after" (the action done, then the reset).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        with self.mutex:
            self.faults.append(
                Fault(method.upper(), re.compile(path_regex), kind, times, retry_after)
            )

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.mutex:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    self.faults_served.append(fault.kind)
                    self.fault_log.append((method, path, fault.kind))
                    return fault
            return None

    # -- authentication ---------------------------------------------------------------------

    def _presented(self, request: Request) -> list[tuple[str, str, str]]:
        """(transport, login, secret) for every credential in the request."""
        found = []
        authorization = request.headers.get("Authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                login, password = "", "\0malformed"
            found.append(("basic", login, password))
        elif scheme.lower() == "bearer":
            found.append(("bearer", "", value.strip()))
        if request.headers.get("PRIVATE-TOKEN") is not None:
            found.append(("private-token", "", request.headers["PRIVATE-TOKEN"]))
        if request.headers.get("JOB-TOKEN") is not None:
            found.append(("job-token", "", request.headers["JOB-TOKEN"]))
        if "job_token" in request.query:
            found.append(("job-token", "", request.query["job_token"]))
        return found

    def caller_key(self, request: Request) -> str:
        """Whom a throttle counts a request against: its first credential (a digest of it:
        the fake keeps no token outside its token attributes), else anyone."""
        presented = self._presented(request)
        secret = presented[0][2] if presented else "anonymous"
        return hashlib.sha256(secret.encode()).hexdigest()[:12]

    def credential_kind(self, request: Request) -> str:
        """What secret the request carried: basic-job-token, job-token-header, pat, ...

        The job token anywhere in Basic counts as `basic-job-token`, anywhere else (JOB-TOKEN,
        `job_token=`, PRIVATE-TOKEN, Bearer) as `job-token-header`: the log exists to prove
        where the job token travelled, whether or not the route accepted it.
        """
        presented = self._presented(request)
        for transport, _, secret in presented:
            if secrets.compare_digest(secret.encode(), self.job_token.encode()):
                return "basic-job-token" if transport == "basic" else "job-token-header"
        if any(secret in self.users_by_token for _, _, secret in presented):
            return "pat"
        return "invalid" if presented else "none"

    def authenticate(self, request: Request, route_kind: str) -> User:
        """The caller per the route's accepted transports; 401 when none, or one read is bad.

        A credential the route does not read (Basic off the PyPI/Terraform routes, JOB-TOKEN
        off the Packages API/notes GETs) is ignored; one it reads but cannot match (a
        `gitlab-ci-token` login without the job token, an unknown PRIVATE-TOKEN) is a 401, as
        GitLab's auth finders raise on it.
        """
        user: User | None = None
        for transport, login, secret in self._presented(request):
            is_job = secrets.compare_digest(secret.encode(), self.job_token.encode())
            if transport == "basic":
                if route_kind != BASIC_ROUTES:
                    continue  # Basic is not read on these routes
                if login == "gitlab-ci-token":
                    candidate = self.job_user if is_job else None
                else:
                    candidate = self.users_by_token.get(secret)
            elif transport == "job-token":
                if route_kind != HEADER_ROUTES:
                    continue  # JOB-TOKEN header / job_token param not read here
                candidate = self.job_user if is_job else None
            else:  # PRIVATE-TOKEN, Bearer: access tokens only
                candidate = self.users_by_token.get(secret)
            if candidate is None:
                user = None
                break
            user = user or candidate
        if user is not None:
            return user
        headers = {}
        if route_kind == BASIC_ROUTES:
            headers["WWW-Authenticate"] = 'Basic realm="GitLab Packages Registry"'
        raise fail(401, UNAUTHORIZED, headers)

    def require(self, request: Request, role: str) -> None:
        assert request.user is not None
        if ROLES[self.role_of(request.user)] < ROLES[role]:
            raise fail(403, FORBIDDEN)

    def protect(self, request: Request, name: str, push: bool) -> None:
        """Package protection rules: the push or delete minimum of a rule matching the name
        (`*` a wildcard) refuses a lower role, as Packages::Protection::Rule does."""
        assert request.user is not None
        role = ROLES[self.role_of(request.user)]
        for pattern, push_role, delete_role in self.protection_rules:
            regex = ".*".join(re.escape(part) for part in pattern.split("*"))
            if re.fullmatch(regex, name) and role < ROLES[push_role if push else delete_role]:
                reason = "Package protected." if push else "Package is deletion protected."
                raise fail(403, {"message": f"403 Forbidden - {reason}"})

    # -- routing ----------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        if not request.path.startswith("/api/v4/"):
            raise fail(404, {"error": "404 Not Found"})
        segments = request.path[len("/api/v4/") :].split("/")
        method = request.method if request.method != "HEAD" else "GET"
        if segments == ["user"]:
            self._allow(method, "GET")
            request.user = self.authenticate(request, PAT_ROUTES)
            user = request.user
            document = {"id": user.id, "username": user.username, "name": user.name}
            return json_reply(200, {**document, "state": "active", "bot": user.bot})
        if len(segments) < 3 or segments[0] != "projects":
            raise fail(404, {"error": "404 Not Found"})
        project, rest = segments[1], segments[2:]
        request.segments = rest
        handler, kind = self._route(method, rest)
        request.user = self.authenticate(request, kind)
        if project != self.project_id and unquote(project) != self.project_path:
            raise fail(404, {"message": "404 Project Not Found"})
        with self.mutex:
            return handler(request)

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise fail(405, {"error": "405 Not Allowed"})

    def _route(self, method: str, rest: list[str]) -> tuple[Callable[[Request], Reply], str]:
        """(handler, route kind) for the path below /projects/:id."""
        n = len(rest)
        if rest[:2] == ["packages", "pypi"]:
            if n == 2:
                self._allow(method, "POST")
                return self.pypi_upload, BASIC_ROUTES
            if rest[2] == "simple" and (n == 3 or (n == 4 and rest[3] == "")):
                self._allow(method, "GET")
                return self.pypi_root, BASIC_ROUTES
            if rest[2] == "simple" and rest[3] and (n == 4 or (n == 5 and rest[4] == "")):
                self._allow(method, "GET")
                return self.pypi_page, BASIC_ROUTES
            if rest[2] == "files" and n >= 5:
                self._allow(method, "GET")
                return self.pypi_file, BASIC_ROUTES
        elif rest[0] == "packages":
            if n == 1:
                self._allow(method, "GET")
                return self.packages_list, HEADER_ROUTES
            if n == 2:
                self._allow(method, "GET", "DELETE")
                return (self.package_get if method == "GET" else self.package_delete), (
                    HEADER_ROUTES
                )
            if n == 3 and rest[2] == "package_files":
                self._allow(method, "GET")
                return self.package_files_list, HEADER_ROUTES
            if n == 4 and rest[2] == "package_files":
                self._allow(method, "DELETE")
                return self.package_file_delete, HEADER_ROUTES
        elif rest[:2] == ["terraform", "state"] and n in (3, 4) and rest[2]:
            if n == 3:
                self._allow(method, "GET", "POST", "DELETE")
                handlers = {"GET": self.state_get, "POST": self.state_write}
                return handlers.get(method, self.state_delete), BASIC_ROUTES
            if rest[3] == "lock":
                self._allow(method, "POST", "DELETE")
                return (self.state_lock if method == "POST" else self.state_unlock), (BASIC_ROUTES)
        elif rest[:2] == ["repository", "commits"] and n == 4 and rest[3] == "merge_requests":
            self._allow(method, "GET")
            return self.commit_merge_requests, PAT_ROUTES
        elif rest[0] == "merge_requests" and n in (3, 4) and rest[2] == "notes":
            if n == 3:
                self._allow(method, "GET", "POST")
                if method == "GET":
                    return self.notes_list, HEADER_ROUTES
                return self.note_create, PAT_ROUTES
            self._allow(method, "GET", "PUT")
            if method == "GET":
                return self.note_get, HEADER_ROUTES
            return self.note_update, PAT_ROUTES
        raise fail(404, {"error": "404 Not Found"})

    # -- pagination (reference 2.5) ---------------------------------------------------------

    def paginate(self, request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            page = int(request.query.get("page") or 1)
        except ValueError:
            raise fail(400, {"error": "page is invalid"}) from None
        try:
            per_page = int(request.query.get("per_page") or 20)
        except ValueError:
            raise fail(400, {"error": "per_page is invalid"}) from None
        page = max(page, 1)
        per_page = 20 if per_page < 1 else min(per_page, self.max_per_page)
        total = len(items)
        total_pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        has_next = page * per_page < total
        out_of_range = page > total_pages
        prev_page = page - 1 if page > 1 and not out_of_range else None
        show_totals = total <= self.totals_limit

        params = {k: v for k, v in request.query.items() if k.lower() not in SECRET_PARAMS}

        def link(number: int, rel: str) -> str:
            query = urlencode({**params, "page": str(number), "per_page": str(per_page)})
            return f'<{self.url}{request.path}?{query}>; rel="{rel}"'

        links = []
        if prev_page:
            links.append(link(prev_page, "prev"))
        if has_next:
            links.append(link(page + 1, "next"))
        links.append(link(1, "first"))
        if show_totals:
            links.append(link(total_pages, "last"))
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-next-page": str(page + 1) if has_next else "",
            "x-prev-page": str(prev_page) if prev_page else "",
            "Link": ", ".join(links),
        }
        if show_totals:
            headers["x-total"] = str(total)
            headers["x-total-pages"] = str(total_pages)
        return chunk, headers

    def _order(
        self,
        items: list[dict[str, Any]],
        request: Request,
        allowed: dict[str, Any],
        default: str,
        default_sort: str = "asc",
    ) -> list[dict[str, Any]]:
        order_by = request.query.get("order_by") or default
        sort = request.query.get("sort") or default_sort
        if order_by not in allowed:
            raise fail(400, {"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            raise fail(400, {"error": "sort does not have a valid value"})
        key = allowed[order_by]
        if not self.unstable_ties:
            return sorted(items, key=lambda item: (key(item), item["id"]), reverse=sort == "desc")
        # GitLab orders by the column alone: rows that tie may come in another order on each
        # page's query, so a package can repeat on two pages (or miss both).
        page = int(request.query.get("page") or 1)
        tie = (lambda item: -item["id"]) if page % 2 == 0 else (lambda item: item["id"])
        return sorted(items, key=lambda item: (key(item), tie(item)), reverse=sort == "desc")

    # -- PyPI (reference 1) -----------------------------------------------------------------

    def pypi_upload(self, request: Request) -> Reply:
        self.require(request, "developer")
        fields, files = parse_multipart(request.headers.get("Content-Type", ""), request.body)
        missing = [k for k in ("name", "version") if k not in fields]
        if "content" not in files:
            missing.insert(0, "content")
        if missing:
            raise fail(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        file_name, content = files["content"]
        name, version = fields["name"], fields["version"]
        try:
            Version(version)
        except InvalidVersion:
            raise fail(400, {"error": "version is invalid"}) from None
        if not NAME_RE.fullmatch(name):
            raise fail(400, {"message": "Validation failed: Name is invalid"})
        digest = fields.get("sha256_digest")
        if digest is not None and not SHA256_RE.fullmatch(digest):
            raise fail(400, {"error": "sha256_digest is invalid"})
        if not file_name:
            raise fail(400, {"error": "content is invalid"})
        self.protect(request, name, push=True)
        # `actual_limits.exceeded?(:pypi_max_file_size, ...)`: 3 GB self-managed by default,
        # 5 GB on GitLab.com.
        if len(content) > self.max_file_size:
            raise fail(400, {"message": "400 Bad request - File is too large"})
        package = self._find_or_create(name, version)
        if any(f["file_name"] == file_name for f in package["files"]):
            raise fail(400, {"message": "Validation failed: File name has already been taken"})
        self._attach(package, file_name, content, digest, fields.get("requires_python"))
        return json_reply(201, {"message": "201 Created"})

    def _find_or_create(self, name: str, version: str) -> dict[str, Any]:
        for package in self.packages:
            if (
                package["name"] == name
                and package["version"] == version
                and package["status"] != "pending_destruction"
            ):
                return package
        package = {
            "id": self._next_package_id,
            "name": name,
            "version": version,
            "package_type": "pypi",
            "status": "default",
            "created_at": timestamp(),
            "files": [],
        }
        self._next_package_id += 1
        self.packages.append(package)
        return package

    def _attach(
        self,
        package: dict[str, Any],
        file_name: str,
        content: bytes,
        sha256: str | None,
        requires_python: str | None,
    ) -> dict[str, Any]:
        if any(f["file_name"] == file_name for f in package["files"]):
            raise ValueError(f"{file_name} already in package {package['id']}")
        record = {
            "id": self._next_file_id,
            "package_id": package["id"],
            "file_name": file_name,
            "file_sha256": sha256,
            "size": len(content),
            "content": content,
            "actual_sha256": hashlib.sha256(content).hexdigest(),
            "requires_python": requires_python,
            "status": "default",
            "created_at": timestamp(),
        }
        self._next_file_id += 1
        package["files"].append(record)
        return record

    def _live_pypi(self) -> list[dict[str, Any]]:
        return [p for p in self.packages if p["status"] == "default"]

    def pypi_root(self, request: Request) -> Reply:
        self.require(request, "reporter")
        seen: dict[str, dict[str, Any]] = {}
        for package in self._live_pypi():
            seen.setdefault(canonical(package["name"]), package)
        links = []
        for normalized, package in seen.items():
            files = [
                f
                for p in self._live_pypi()
                if canonical(p["name"]) == normalized
                for f in p["files"]
                if f["status"] == "default"
            ]
            requires = (files[-1]["requires_python"] if files else None) or ""
            href = f"{self.simple_url}/{normalized}"
            links.append(
                f'<a href="{escape(href)}" data-requires-python="{escape(requires)}">'
                f"{escape(package['name'])}</a><br>"
            )
        return Reply(200, html_page(self.project_path, links), "text/html; charset=utf-8")

    def pypi_page(self, request: Request) -> Reply:
        self.require(request, "reporter")
        requested = unquote(request.segments[3])
        packages = [p for p in self._live_pypi() if canonical(p["name"]) == requested.lower()]
        if not packages:
            if self.forwarding:
                location = f"https://pypi.org/simple/{requested}/"
                return Reply(302, b"", "text/html", {"Location": location})
            raise fail(404, {"message": "404 Package Not Found"})
        base = f"{self.api_url}/projects/{self.project_id}/packages/pypi/files"
        links = []
        for package in packages:
            for f in package["files"]:
                if f["status"] != "default":
                    continue
                sha = f["file_sha256"] or ""
                href = f"{base}/{sha}/{f['file_name']}#sha256={sha}"
                links.append(
                    f'<a href="{escape(href)}" '
                    f'data-requires-python="{escape(f["requires_python"] or "")}">'
                    f"{escape(f['file_name'])}</a><br>"
                )
        return Reply(200, html_page(requested, links), "text/html; charset=utf-8")

    def pypi_file(self, request: Request) -> Reply:
        self.require(request, "reporter")
        sha = unquote(request.segments[3]).lower()
        file_name = unquote("/".join(request.segments[4:]))
        for package in self._live_pypi():
            for f in package["files"]:
                if (
                    f["status"] == "default"
                    and f["file_name"] == file_name
                    and (f["file_sha256"] or "").lower() == sha
                ):
                    return Reply(200, f["content"], "application/octet-stream")
        raise fail(404, {"message": "404 Not Found"})

    # -- Packages API (reference 2) ---------------------------------------------------------

    def _package_json(self, package: dict[str, Any], user: User | None) -> dict[str, Any]:
        links: dict[str, str] = {}
        if package["status"] in ("default", "deprecated"):
            links["web_path"] = f"/{self.project_path}/-/packages/{package['id']}"
        if user is not None and ROLES[self.role_of(user)] >= ROLES["maintainer"]:
            links["delete_api_path"] = (
                f"{self.api_url}/projects/{self.project_id}/packages/{package['id']}"
            )
        return {
            "id": package["id"],
            "name": package["name"],
            "version": package["version"],
            "package_type": "pypi",
            "status": package["status"],
            "_links": links,
            "created_at": package["created_at"],
            "last_downloaded_at": None,
            "tags": [],
        }

    @staticmethod
    def _file_json(f: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f["id"],
            "package_id": f["package_id"],
            "created_at": f["created_at"],
            "file_name": f["file_name"],
            "size": f["size"],
            "file_md5": None,
            "file_sha1": None,
            "file_sha256": f["file_sha256"],
        }

    def packages_list(self, request: Request) -> Reply:
        self.require(request, "reporter")
        query = request.query
        package_type = query.get("package_type")
        if package_type is not None and package_type not in PACKAGE_TYPES:
            raise fail(400, {"error": "package_type does not have a valid value"})
        status = query.get("status")
        if status is not None and status not in PACKAGE_STATUSES:
            raise fail(400, {"error": "status does not have a valid value"})
        items = [
            p
            for p in self.packages
            if (p["status"] == status if status else p["status"] in DISPLAYABLE)
            and package_type in (None, "pypi")
            and query.get("package_name", "").lower() in p["name"].lower()
            and query.get("package_version", p["version"]) == p["version"]
        ]
        items = self._order(
            items,
            request,
            {
                "created_at": lambda p: p["created_at"],
                "name": lambda p: p["name"],
                "version": lambda p: p["version"],
                "type": lambda p: "pypi",
            },
            "created_at",
        )
        page, headers = self.paginate(request, items)
        body = [self._package_json(p, request.user) for p in page]
        return json_reply(200, body, headers)

    def _live_package(self, raw_id: str, statuses: set[str] | None = None) -> dict[str, Any]:
        """The package of that id in one of `statuses` (the single GET's default and
        deprecated; the files and delete routes' finder takes every displayable one)."""
        for package in self.packages:
            if str(package["id"]) == raw_id and package["status"] in (
                statuses or {"default", "deprecated"}
            ):
                return package
        raise fail(404, {"message": "404 Package Not Found"})

    def package_get(self, request: Request) -> Reply:
        self.require(request, "reporter")
        package = self._live_package(request.segments[1])
        document = self._package_json(package, request.user)
        document["versions"] = [
            {"id": p["id"], "version": p["version"], "created_at": p["created_at"], "tags": []}
            for p in self._live_pypi()
            if p["name"] == package["name"] and p["id"] != package["id"]
        ]
        return json_reply(200, document)

    def package_delete(self, request: Request) -> Reply:
        self.require(request, "reporter")
        self.require(request, "maintainer")
        package = self._live_package(request.segments[1], DISPLAYABLE)
        self.protect(request, package["name"], push=False)
        package["status"] = "pending_destruction"
        for f in package["files"]:
            f["status"] = "pending_destruction"
        return Reply(204)

    def package_files_list(self, request: Request) -> Reply:
        self.require(request, "reporter")
        package = self._live_package(request.segments[1], DISPLAYABLE)
        files = [f for f in package["files"] if f["status"] != "pending_destruction"]
        files = self._order(
            files,
            request,
            {
                "id": lambda f: f["id"],
                "created_at": lambda f: f["created_at"],
                "file_name": lambda f: f["file_name"],
            },
            "id",
        )
        page, headers = self.paginate(request, files)
        return json_reply(200, [self._file_json(f) for f in page], headers)

    def package_file_delete(self, request: Request) -> Reply:
        self.require(request, "reporter")
        self.require(request, "maintainer")
        package = self._live_package(request.segments[1], DISPLAYABLE)
        self.protect(request, package["name"], push=False)
        for f in package["files"]:
            if str(f["id"]) == request.segments[3] and f["status"] != "pending_destruction":
                f["status"] = "pending_destruction"
                return Reply(204)
        raise fail(404, {"message": "404 Package File Not Found"})

    # -- Terraform state (reference 4) ------------------------------------------------------

    def _state_name(self, request: Request, create: bool) -> str:
        name = unquote(request.segments[2])
        if name in self.deleted_states:
            raise fail(422, {"message": "422 Unprocessable Entity"})
        if name not in self.states:
            if not create:
                raise fail(404, {"message": "404 Not Found"})
            self.states[name] = b""
        return name

    def _lock_id(self, request: Request, from_body: bool) -> str | None:
        lock_id = request.query.get("ID")
        if lock_id is None and from_body and request.body:
            try:
                document = json.loads(request.body)
            except ValueError:
                document = dict(parse_qsl(request.body.decode(errors="replace")))
            if isinstance(document, dict) and document.get("ID") is not None:
                lock_id = str(document["ID"])
        if lock_id is not None and len(lock_id) > 255:
            raise fail(400, {"error": "ID is too long"})
        return lock_id

    def _lock_matches(self, name: str, lock_id: str | None) -> bool:
        held = self.locks.get(name)
        if held is None and lock_id is None:
            return True
        return secrets.compare_digest(
            (held["ID"] if held else "").encode(), (lock_id or "").encode()
        )

    def state_get(self, request: Request) -> Reply:
        self.require(request, "developer")
        name = self._state_name(request, create=False)
        content = self.states[name]
        if not content:
            return Reply(204)
        return Reply(200, content, "application/json")

    def state_write(self, request: Request) -> Reply:
        self.require(request, "developer")
        self.require(request, "maintainer")
        if not request.body:
            return Reply(204)
        lock_id = self._lock_id(request, from_body=False)
        name = self._state_name(request, create=True)
        if not self._lock_matches(name, lock_id):
            # RemoteStateHandler#handle_with_lock raises StateLockedError, which the state
            # API does not rescue: a 500, not a 409.
            return json_reply(500, {"message": "500 Internal Server Error"})
        try:
            serial = json.loads(request.body).get("serial")
        except (ValueError, AttributeError):
            serial = None
        # Since GitLab 18.5 each write is a state version whose serial must be new for the
        # state (`Terraform::StateVersion` validates its uniqueness): 422 otherwise.
        if not isinstance(serial, int) or serial in self.state_serials.setdefault(name, set()):
            raise fail(422, {"message": "422 Unprocessable Entity"})
        self.state_serials[name].add(serial)
        self.states[name] = request.body
        return Reply(200, b"", "application/json")

    def state_delete(self, request: Request) -> Reply:
        self.require(request, "developer")
        self.require(request, "maintainer")
        lock_id = self._lock_id(request, from_body=True)
        name = self._state_name(request, create=True)
        if not self._lock_matches(name, lock_id):
            return Reply(409, b"", "application/json")
        self.states.pop(name, None)
        self.locks.pop(name, None)
        self.deleted_states.add(name)
        return Reply(200, b"", "application/json")

    def state_lock(self, request: Request) -> Reply:
        self.require(request, "developer")
        self.require(request, "maintainer")
        params = dict(request.query)
        if request.body:
            try:
                document = json.loads(request.body)
            except ValueError:
                document = dict(parse_qsl(request.body.decode(errors="replace")))
            if not isinstance(document, dict):
                raise fail(400, {"error": "body is invalid"})
            params.update(document)
        keys = ("ID", "Operation", "Info", "Who", "Version", "Created", "Path")
        missing = [k for k in keys if params.get(k) is None]
        invalid = [k for k in keys if isinstance(params.get(k), (dict, list))]
        if missing or invalid:
            errors = [f"{k} is missing" for k in missing] + [f"{k} is invalid" for k in invalid]
            raise fail(400, {"error": ", ".join(errors)})
        values = {
            k: params[k] if isinstance(params[k], str) else json.dumps(params[k]) for k in keys
        }
        if len(values["ID"]) > 255:
            raise fail(400, {"error": "ID is too long"})
        if not values["ID"].strip():
            raise fail(400, {"message": "400 Bad request - lock ID is blank"})
        name = self._state_name(request, create=True)
        status = 200
        if name in self.locks:
            status = 409
        else:
            assert request.user is not None
            self.locks[name] = {
                "ID": values["ID"],
                "Who": request.user.username,
                "Created": timestamp(),
                "user_id": request.user.id,
            }
        held = self.locks[name]
        document = {k: values[k] for k in ("Operation", "Info", "Version", "Path")}
        document.update({"ID": held["ID"], "Who": held["Who"], "Created": held["Created"]})
        return Reply(status, json.dumps(document).encode(), "application/json")

    def state_unlock(self, request: Request) -> Reply:
        self.require(request, "developer")
        self.require(request, "maintainer")
        lock_id = self._lock_id(request, from_body=True)
        name = self._state_name(request, create=True)
        # GitLab: "force-unlock does not pass ID, so we ignore it if it is missing"; an ID
        # against an unlocked state compares with "" and is a 409 too.
        if lock_id is not None and not self._lock_matches(name, lock_id):
            return Reply(409, b"", "application/json")
        self.locks.pop(name, None)
        return Reply(200, b"", "application/json")

    # -- notes (reference 3) ----------------------------------------------------------------

    def _merge_request(self, request: Request) -> int:
        raw = request.segments[1]
        if not raw.isdigit() or int(raw) not in self.merge_requests:
            raise fail(404, {"message": "404 Merge Request Not Found"})
        return int(raw)

    def _note(self, iid: int, raw_id: str) -> dict[str, Any]:
        for note in self.notes:
            if str(note["id"]) == raw_id and note["noteable_iid"] == iid:
                return note
        raise fail(404, {"message": "404 Not found"})

    def _create_note(self, iid: int, author: User, body: str, system: bool) -> dict[str, Any]:
        now = timestamp()
        note = {
            "id": self._next_note_id,
            "type": None,
            "body": body,
            "attachment": None,
            "author": {
                "id": author.id,
                "username": author.username,
                "name": author.name,
                "state": "active",
                "web_url": f"{self.url}/{author.username}",
            },
            "created_at": now,
            "updated_at": now,
            "system": system,
            "noteable_id": 1000 + iid,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "project_id": int(self.project_id),
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
        }
        self._next_note_id += 1
        self.notes.append(note)
        return note

    @staticmethod
    def _note_params(request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.body:
            content_type = request.headers.get("Content-Type", "")
            if "json" in content_type:
                try:
                    document = json.loads(request.body)
                except ValueError:
                    raise fail(400, {"error": "body is invalid JSON"}) from None
                if isinstance(document, dict):
                    params.update(document)
            elif "multipart/form-data" in content_type:
                fields, _ = parse_multipart(content_type, request.body)
                params.update(fields)
            else:
                params.update(parse_qsl(request.body.decode(errors="replace")))
        if "body" in params and not isinstance(params["body"], str):
            if isinstance(params["body"], (dict, list)) or params["body"] is None:
                raise fail(400, {"error": "body is invalid"})
            params["body"] = str(params["body"])
        return params

    def commit_merge_requests(self, request: Request) -> Reply:
        """`GET /projects/:id/repository/commits/:sha/merge_requests` (Commits API): the merge
        requests that brought the commit in; the job token has no access to it."""
        self.require(request, "reporter")
        iid = self.merged_by_commit.get(request.segments[2])
        found = [] if iid is None else [{"iid": iid, "state": "merged", "title": f"MR {iid}"}]
        return json_reply(200, found)

    def notes_list(self, request: Request) -> Reply:
        self.require(request, "reporter")
        iid = self._merge_request(request)
        activity = request.query.get("activity_filter") or "all_notes"
        if activity not in ("all_notes", "only_comments", "only_activity"):
            raise fail(400, {"error": "activity_filter does not have a valid value"})
        notes = [
            n
            for n in self.notes
            if n["noteable_iid"] == iid
            and (activity == "all_notes" or (activity == "only_activity") == bool(n["system"]))
        ]
        notes = self._order(
            notes,
            request,
            {"created_at": lambda n: n["created_at"], "updated_at": lambda n: n["updated_at"]},
            "created_at",
            default_sort="desc",
        )
        page, headers = self.paginate(request, notes)
        return json_reply(200, page, headers)

    def note_get(self, request: Request) -> Reply:
        self.require(request, "reporter")
        iid = self._merge_request(request)
        return json_reply(200, self._note(iid, request.segments[3]))

    def note_create(self, request: Request) -> Reply:
        self.require(request, "reporter")
        iid = self._merge_request(request)
        params = self._note_params(request)
        if "body" not in params:
            raise fail(400, {"error": "body is missing"})
        body = params["body"]
        if not body.strip():
            raise fail(400, {"message": {"note": ["can't be blank"]}})
        if len(body) > NOTE_MAX_CHARS:
            too_long = f"is too long (maximum is {NOTE_MAX_CHARS} characters)"
            raise fail(400, {"message": {"note": [too_long]}})
        assert request.user is not None
        return json_reply(201, self._create_note(iid, request.user, body, system=False))

    def note_update(self, request: Request) -> Reply:
        self.require(request, "reporter")
        iid = self._merge_request(request)
        note = self._note(iid, request.segments[3])
        params = self._note_params(request)
        assert request.user is not None
        if note["author"]["id"] != request.user.id or note["system"]:
            raise fail(403, FORBIDDEN)
        if "body" in params:  # optional in GitLab's PUT; not blank when given
            body = params["body"]
            if not body.strip():
                raise fail(400, {"error": "body is empty"})
            if len(body) > NOTE_MAX_CHARS:
                reason = f'{{:note=>["is too long (maximum is {NOTE_MAX_CHARS} characters)"]}}'
                raise fail(400, {"message": f"400 Bad request - Failed to save note {reason}"})
            note["body"] = body
            note["updated_at"] = timestamp()
        return json_reply(200, note)


def html_page(title: str, links: list[str]) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f"    <title>Links for {escape(title)}</title>\n"
        "  </head>\n  <body>\n"
        f"    <h1>Links for {escape(title)}</h1>\n"
        + "".join(f"    {link}\n" for link in links)
        + "  </body>\n</html>\n"
    ).encode()


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Text fields and file parts ({name: (filename, bytes)}) of a multipart/form-data body."""
    header = BytesHeaderParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode()
    )
    if header.get_content_type() != "multipart/form-data":
        return {}, {}
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise fail(400, {"error": "400 Bad request - multipart boundary missing"})
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise fail(400, {"error": "400 Bad request - malformed multipart body"})
    for piece in pieces[1:-1]:
        piece = piece.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, separator, content = piece.partition(b"\r\n\r\n")
        if not separator:
            raise fail(400, {"error": "400 Bad request - malformed multipart part"})
        part = BytesHeaderParser(policy=HTTP).parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, content)
        else:
            fields[name] = content.decode("utf-8", errors="replace")
    return fields, files
