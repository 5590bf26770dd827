"""GitLab's PyPI package registry, through GitLab's REST API (shared/reference/gitlab-api.md).

- Actual state: the Packages API (`package_type=pypi`, every page by `x-next-page`) and each
  package's files with their sha256; names compared by PEP 503 normalisation. The simple index
  is never read (GitLab forwards unknown names to pypi.org with a 302).
- Upload: a streamed multipart POST to the PyPI endpoint with one canonical name spelling and
  `sha256_digest` (GitLab stores it unchecked; the applier verified the bytes). An upload that
  failed may have landed, so the package's files are listed again before any retry.
- Delete: a whole version through the Packages API (deletion is asynchronous but immediate for
  listings); single files only where a version keeps others.
- Lock and the mirror's own state (apply generation, last plan, quarantine log): a GitLab
  Terraform state (`pypi-mirror`), locked for the whole apply, its content written only under
  that lock.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from packaging.utils import canonicalize_name
from requests_toolbelt import MultipartEncoder

from reconciler import __version__, jsondata
from reconciler.clock import Clock, system_clock
from reconciler.concurrency import map_concurrently
from reconciler.errors import UserError
from reconciler.gitlab import Again, Credential, GitLabClient, GitLabError
from reconciler.model import (
    ActualState,
    PlannedFile,
    QuarantineRecord,
    RegistryFile,
    parse_distribution_filename,
    version_key,
)
from reconciler.registry import quarantine_log
from reconciler.registry.interface import LockInfo, LockLostError, Registry, RegistryError

STATE_NAME = "pypi-mirror"
# lib/api/pypi_packages.rb: `bad_request!('File is too large')` past pypi_max_file_size.
_TOO_LARGE = "File is too large"
_TAKEN = "has already been taken"
# The orders the package listing is asked in, one after another while listings come up short.
_ORDERS = (("created_at", "asc"), ("created_at", "desc"), ("name", "asc"))


class GitLabRegistryError(GitLabError, RegistryError):
    """GitLab could not read or change the registry (after retries)."""


class GitLabLockLostError(GitLabRegistryError, LockLostError):
    """This apply's lock was force-unlocked while it ran."""


@dataclass(frozen=True)
class _Held:
    """Where a held file lives in GitLab, for deletes."""

    package_id: int
    file_id: int
    sha256: str


class GitLabRegistry(Registry):
    """A GitLab project's PyPI registry, driven with the CI job token."""

    def __init__(
        self,
        client: GitLabClient,
        job_token: Credential,
        state_name: str = STATE_NAME,
        workers: int = 16,
        clock: Clock = system_clock,
    ) -> None:
        self.client = client.raising(GitLabRegistryError)
        self.clock = clock
        self.token = job_token
        self.state_name = state_name
        self.workers = workers
        self._lock_id: str | None = None
        self._state: dict[str, Any] = {}
        self._held: dict[tuple[str, str], list[_Held]] = {}
        self._packages: dict[tuple[str, str], list[int]] = {}
        # Packages listed in status `error` (never served), by (name, version key): replaced
        # when this apply uploads their version, else left (and named by the plan).
        self._broken: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._replacing = threading.Lock()
        self._lost: GitLabLockLostError | None = None  # the lock was taken from this apply
        # The full listing an apply started from (package id -> files), and the packages it
        # changed since: what it records for the next plans when it lets go of the lock.
        self._snapshot: dict[int, list[dict[str, Any]]] | None = None
        self._touched: set[int] = set()
        self._unwritten = False  # yank marks changed and not yet in the state

    def describe(self) -> str:
        """The project's API URL (no credentials)."""
        return f"GitLab registry {self.client.describe()}"

    # -- reading -------------------------------------------------------------------------------

    def list_actual(self, recorded: bool = False) -> ActualState:
        """Every PyPI file the project holds; any failed page is an error, never emptiness.

        `recorded`: each package's files from the record the last apply or drift wrote (one
        request per package saved: a plan costs the listing's pages), listed afresh only for
        packages the record does not know. A file changed by hand inside a recorded package is
        then seen by the next apply or drift, which list every package's files.
        """
        self._state = self._read_state()
        packages = self._list_packages()
        # A package GitLab failed to process is listed but never served (reference 2.4): its
        # files are not held; an upload of its version replaces it (one would join it).
        broken = [p for p in packages if p.get("status") == "error"]
        packages = [p for p in packages if p.get("status") != "error"]
        self._broken = {}
        for package in broken:
            key = (canonicalize_name(str(package["name"])), version_key(str(package["version"])))
            self._broken.setdefault(key, []).append(package)
        record = self._record() if recorded else {}
        unknown = [p for p in packages if str(p["id"]) not in record]
        fetched = map_concurrently(self._package_files, unknown, self.workers)
        files_of = {int(p["id"]): record.get(str(p["id"]), []) for p in packages}
        files_of.update(zip((int(p["id"]) for p in unknown), fetched, strict=True))
        files_by_package = [files_of[int(p["id"])] for p in packages]
        self._snapshot, self._touched = (None if recorded else files_of), set()
        try:
            held = self._index(packages, files_by_package)
        except (KeyError, TypeError, AttributeError) as error:
            raise GitLabRegistryError(
                f"GitLab's package listing has an unexpected shape: {error!r}"
            ) from None
        mirror = self._state.get("mirror", {})
        try:
            quarantined = quarantine_log.from_json(mirror.get("quarantine", {}))
        except ValueError as error:
            raise GitLabRegistryError(f"the mirror state ({self.state_name}): {error}") from None
        recorded_at = _parse_time(mirror.get("files_recorded_at")) if recorded else None
        return ActualState(
            files=tuple(self._with_yanks(held)),
            recorded_at=recorded_at,
            recorded_packages=len(packages) - len(unknown) if recorded else 0,
            generation=int(mirror.get("generation", 0)),
            last_plan=mirror.get("last_plan"),
            applied_commit=mirror.get("commit") if isinstance(mirror.get("commit"), str) else None,
            quarantined=tuple(quarantined.values()),
            keeps_index_metadata=False,
            unserved=tuple(f"{p['name']} {p['version']} (GitLab status 'error')" for p in broken),
        )

    def _list_packages(self) -> list[dict[str, Any]]:
        """Every PyPI package the project lists, each once; a listing that lost some is an
        error, never a smaller registry.

        GitLab orders the listing by one column with no tie-break (reference 2.1, 2.5):
        packages created at one instant can come in another order on each page's query, so a
        page can repeat one and skip another. Repeats are dropped by id. A listing short of its
        own `x-total` is listed again in another order (creation time the other way round,
        then by name) and the listings united, keeping from earlier ones only the packages
        that still exist (one may have been deleted meanwhile); without a total (above 10,000
        packages) until a listing adds nothing new. Still short: an error.
        """
        united: dict[int, dict[str, Any]] = {}
        total: int | None = None
        for number, (order_by, sort) in enumerate(_ORDERS):
            listed, total = self.client.listing(
                f"{self.client.project_url}/packages",
                {"package_type": "pypi", "order_by": order_by, "sort": sort},
                self.token.job_token_header(),
                "the package listing",
            )
            try:
                latest = {int(p["id"]): p for p in listed}
            except (KeyError, TypeError, ValueError) as error:
                raise GitLabRegistryError(
                    f"GitLab's package listing has an unexpected shape: {error!r}"
                ) from None
            if total is not None and len(latest) >= total:
                return list(latest.values())
            earlier = {i: p for i, p in united.items() if i not in latest}
            added = len(latest.keys() - united.keys())
            united = {**{i: p for i, p in earlier.items() if self._exists(i)}, **latest}
            if total is not None and len(united) >= total:
                return list(united.values())
            if total is None and number > 0 and not added:
                return list(united.values())
        raise GitLabRegistryError(
            f"GitLab's package listing skipped packages: {len(united)} of the {total} it counts "
            f"after {len(_ORDERS)} listings (packages created at one instant tie in its order); "
            "run again"
        )

    def _exists(self, package_id: int) -> bool:
        """Whether a package one listing gave and a later one did not is still there."""
        response = self.client.request(
            "GET",
            f"{self.client.project_url}/packages/{package_id}",
            headers=self.token.job_token_header(),
        )
        if response.status_code == 404:
            return False
        self.client.check(response, f"package {package_id}")
        return True

    def _with_yanks(self, held: list[RegistryFile]) -> Iterator[RegistryFile]:
        """The files with the yank markers the mirror state keeps for them: GitLab serves
        none, but a retained version's date must outlive the run that set it."""
        yanks = self._yanks()
        for registry_file in held:
            reason = yanks.get(registry_file.name, {}).get(registry_file.filename)
            if isinstance(reason, str):
                yield replace(registry_file, yanked=True, yanked_reason=reason[:1000] or None)
            else:
                yield registry_file

    def _record(self) -> dict[str, list[dict[str, Any]]]:
        """`mirror.files` of the state: package id -> its files as last listed in full."""
        record = self._state.get("mirror", {}).get("files", {})
        if not isinstance(record, dict):
            return {}
        return {k: v for k, v in record.items() if isinstance(v, list)}

    def _flush(self) -> None:
        """What an apply keeps in the mirror state, written once as it lets go of the lock:
        the yank marks it changed, and each package's files as its full listing saw them,
        less the packages it changed (the next plan lists those afresh)."""
        if self._snapshot is not None:
            mirror = self._state.setdefault("mirror", {})
            mirror["files"] = {
                str(package_id): [
                    {k: entry.get(k) for k in ("id", "file_name", "file_sha256")} for entry in files
                ]
                for package_id, files in self._snapshot.items()
                if package_id not in self._touched
            }
            mirror["files_recorded_at"] = self.clock().isoformat()
            self._unwritten = True
        if self._unwritten:
            self._write_state()
            self._unwritten = False

    def _yanks(self) -> dict[str, dict[str, str]]:
        """`mirror.yanks` of the state: project -> file name -> yank reason."""
        yanks = self._state.setdefault("mirror", {}).setdefault("yanks", {})
        if not isinstance(yanks, dict) or not all(isinstance(v, dict) for v in yanks.values()):
            raise GitLabRegistryError(f"the mirror state ({self.state_name}): bad 'yanks'")
        return yanks

    def _index(
        self, packages: list[dict[str, Any]], files_by_package: list[list[dict[str, Any]]]
    ) -> list[RegistryFile]:
        """The files held, and where each lives (kept for uploads and deletes)."""
        held: list[RegistryFile] = []
        self._held, self._packages = {}, {}
        for package, files in zip(packages, files_by_package, strict=True):
            name = canonicalize_name(str(package["name"]))
            for entry in files:
                parsed = parse_distribution_filename(str(entry["file_name"]))
                sha256 = str(entry.get("file_sha256") or "").lower()
                if parsed is None or parsed[0] != name or not sha256:
                    continue  # not a distribution of this package, or no digest: not ours
                where = _Held(int(package["id"]), int(entry["id"]), sha256)
                self._held.setdefault((name, str(entry["file_name"])), []).append(where)
                key = (name, version_key(parsed[1]))
                if where.package_id not in self._packages.setdefault(key, []):
                    self._packages[key].append(where.package_id)
                # GitLab keeps the digest the uploader sent; only the mirror uploads, so it is
                # both the bytes' hash and the record of what was taken.
                held.append(
                    RegistryFile(
                        name, parsed[1], entry["file_name"], sha256, recorded_sha256=sha256
                    )
                )
        return held

    def _package_files(self, package: dict[str, Any]) -> list[dict[str, Any]]:
        return list(
            self.client.paginate(
                f"{self.client.project_url}/packages/{package['id']}/package_files",
                {},
                self.token.job_token_header(),
                f"the files of package {package['name']} {package['version']}",
            )
        )

    # -- writing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private temporary directory: files are verified there, then streamed up."""
        with tempfile.TemporaryDirectory(prefix="mirror-staging-") as directory:
            yield Path(directory)

    def upload(self, name: str, version: str, planned: PlannedFile, local_path: Path) -> None:
        """POST the verified file; a retry first checks whether the last attempt landed."""
        if any(h.sha256 != planned.sha256 for h in self._held.get((name, planned.filename), [])):
            # A deleted file's name stays taken in its package until GitLab's cleanup worker
            # runs, so deleting first would only lose the old file.
            raise GitLabRegistryError(
                f"{planned.filename}: GitLab cannot replace a file in place; delete the "
                f"{name} {version} package in GitLab, let its cleanup run, then apply again"
            )
        what = f"the upload of {planned.filename}"
        self._touched.update(self._packages.get((name, version_key(version)), []))
        self._replace_broken(name, version)

        def attempt() -> None | Again:
            response = self._post_file(name, version, planned, local_path)
            if not isinstance(response, Again):
                if response.status_code == 201:
                    return None
                if response.status_code == 400 and _TOO_LARGE in response.text:
                    raise GitLabRegistryError(
                        f"{planned.filename}: larger than this GitLab takes for a PyPI file (its "
                        "'PyPI maximum file size' limit: 3 GB by default on self-managed, 5 GB "
                        "on GitLab.com); an administrator can raise it"
                    )
                if not (response.status_code == 400 and _TAKEN in response.text):
                    self.client.check(response, what, role="Developer", package=True)
                    raise GitLabRegistryError(
                        f"{planned.filename}: GitLab answered {response.status_code}"
                    )
            # A failed upload may have landed, and a taken name may be our own earlier try.
            landed = self._landed(name, version, planned)
            if landed == planned.sha256:
                return None
            if landed is not None:
                raise GitLabRegistryError(
                    f"{planned.filename}: GitLab already holds a file of that name with sha256 "
                    f"{landed}, not the {planned.sha256} the plan uploads"
                )
            if not isinstance(response, Again):
                raise GitLabRegistryError(f"{planned.filename}: GitLab says the file name is taken")
            return response

        self.client.retry(attempt, what)

    def _replace_broken(self, name: str, version: str) -> None:
        """Delete the `error` packages of this version before its first upload (GitLab would
        attach the file to one of them, unserved); uploads of its other files wait for it."""
        with self._replacing:
            for package in self._broken.pop((name, version_key(version)), []):
                self._delete(f"packages/{package['id']}", f"{name} {version} (status 'error')")

    def _post_file(
        self, name: str, version: str, planned: PlannedFile, local_path: Path
    ) -> requests.Response | Again:
        """One upload attempt, streamed from disk (flat memory)."""
        with local_path.open("rb") as stream:
            fields: dict[str, Any] = {
                "name": name,  # one canonical spelling: GitLab matches packages exactly
                "version": version,
                "sha256_digest": planned.sha256,
                "content": (planned.filename, stream, "application/octet-stream"),
            }
            if planned.requires_python:
                fields["requires_python"] = planned.requires_python
            encoder = MultipartEncoder(fields=fields)
            return self.client.post(
                f"{self.client.project_url}/packages/pypi",
                data=encoder,
                headers={"Content-Type": encoder.content_type},
                auth=self.token.job_token_basic(),
            )

    def _landed(self, name: str, version: str, planned: PlannedFile) -> str | None:
        """The sha256 GitLab holds for this file name in this package, if any."""
        packages = self.client.paginate(
            f"{self.client.project_url}/packages",
            {"package_type": "pypi", "package_name": name, "package_version": version},
            self.token.job_token_header(),
            f"the listing of {name} {version}",
        )
        for package in packages:
            if canonicalize_name(str(package["name"])) != name:
                continue  # the name filter is a substring match
            for entry in self._package_files(package):
                if entry["file_name"] == planned.filename:
                    sha256 = str(entry.get("file_sha256") or "").lower()
                    where = _Held(int(package["id"]), int(entry["id"]), sha256)
                    self._held[(name, planned.filename)] = [where]
                    return sha256
        return None

    def update_metadata(self, name: str, version: str, planned: PlannedFile) -> None:
        """A file's yank marker, kept in the mirror state (GitLab's PyPI API has none)."""
        marks = self._yanks().setdefault(name, {})
        before = marks.get(planned.filename)
        if planned.yanked:
            marks[planned.filename] = planned.yanked_reason or ""
        else:
            marks.pop(planned.filename, None)
        if marks.get(planned.filename) != before:
            self._unwritten = True  # written once, as the apply lets go of the lock

    def delete(self, name: str, version: str, filenames: Sequence[str]) -> None:
        """Delete the whole version where every file goes, else the files one by one.

        Each package's files are listed afresh: this apply may have added one since.
        """
        wanted = set(filenames)
        self._touched.update(self._packages.get((name, version_key(version)), []))
        for package_id in self._packages.get((name, version_key(version)), []):
            live = {
                str(entry["file_name"]): int(entry["id"])
                for entry in self._package_files(
                    {"id": package_id, "name": name, "version": version}
                )
            }
            if live and set(live) <= wanted:
                self._delete(f"packages/{package_id}", f"{name} {version}")
                continue
            for filename in sorted(set(live) & wanted):
                self._delete(f"packages/{package_id}/package_files/{live[filename]}", filename)
        marks = self._yanks().get(name, {})
        if wanted & set(marks):  # a file uploaded again later starts unmarked
            for filename in wanted:
                marks.pop(filename, None)
            self._unwritten = True

    def _delete(self, path: str, what: str) -> None:
        response = self.client.request(
            "DELETE", f"{self.client.project_url}/{path}", headers=self.token.job_token_header()
        )
        if response.status_code == 404:
            return  # already gone (a retried delete, or someone else's)
        self.client.check(response, f"the deletion of {what}", role="Maintainer", package=True)

    # -- the mirror's own state ------------------------------------------------------------------

    def begin_apply(self, plan_id: str, commit: str | None) -> None:
        """Count one more apply, unless the state already records this plan (a resume)."""
        mirror = self._state.setdefault("mirror", {})
        if mirror.get("last_plan") != plan_id:
            mirror["generation"] = int(mirror.get("generation", 0)) + 1
            mirror["last_plan"] = plan_id
            mirror["commit"] = commit
            # Until this apply ends well and records what it saw, no plan trusts a record.
            mirror.pop("files", None)
            self._write_state()

    def record_quarantine(self, record: QuarantineRecord) -> None:
        """Add the record to the state's quarantine log."""
        log = self._state.setdefault("mirror", {}).setdefault("quarantine", {})
        log[quarantine_log.key(record.name, record.version)] = quarantine_log.to_json(record)
        self._write_state()

    def forget_quarantine(self, name: str, version: str) -> None:
        """Drop a restored version's record."""
        log = self._state.setdefault("mirror", {}).setdefault("quarantine", {})
        if log.pop(quarantine_log.key(name, version), None) is not None:
            self._write_state()

    def _state_url(self) -> str:
        return f"{self.client.project_url}/terraform/state/{self.state_name}"

    def _read_state(self) -> dict[str, Any]:
        response = self.client.request("GET", self._state_url(), auth=self.token.job_token_basic())
        if response.status_code in (204, 404):
            return {}
        self.client.check(response, f"the mirror state ({self.state_name})", role="Developer")
        try:
            document = jsondata.loads(response.content)
        except ValueError:
            document = None
        if not isinstance(document, dict) or not isinstance(document.get("mirror", {}), dict):
            # Never overwrite what we cannot read: it may be someone's Terraform state.
            raise GitLabRegistryError(
                f"the Terraform state {self.state_name} does not hold the mirror's state; "
                "name another state or remove it"
            )
        return document

    def _write_state(self) -> None:
        """Write the state under our lock (GitLab refuses a write without the lock's ID)."""
        if self._lost is not None:
            raise self._lost
        if self._lock_id is None:
            raise GitLabRegistryError("the mirror state can only be written while holding the lock")
        self._state["serial"] = int(self._state.get("serial", 0)) + 1
        # The shape of a Terraform state, so GitLab's state pages show it; ours is `mirror`.
        self._state.setdefault("version", 4)
        self._state.setdefault("lineage", "pypi-delayed-mirror")
        response = self.client.request(
            "POST",
            self._state_url(),
            params={"ID": self._lock_id},
            data=json.dumps(self._state),
            headers={"Content-Type": "application/json"},
            auth=self.token.job_token_basic(),
        )
        if response.status_code == 500:
            self._check_still_locked(self._lock_id)
        self.client.check(
            response, f"the write of the mirror state ({self.state_name})", role="Maintainer"
        )

    def _check_still_locked(self, lock_id: str) -> None:
        """After a refused state write: GitLab answers a write whose lock ID is not the lock's
        with a 500 (reference section 4), so ask who holds the lock now, and name them."""
        try:
            probe, holder = self._take_lock("mirror apply (lock check)")
        except GitLabRegistryError:
            return  # cannot tell: the write's own error stands
        if holder is not None and holder.id == lock_id:
            return  # still ours: a 500 of GitLab's own
        if holder is not None:
            now = f"{holder.owner} holds it (lock ID {holder.id})"
        else:  # nobody held it: the probe does now, and gives it back
            try:
                self._release(probe.id)
                now = "nobody holds it"
            except GitLabRegistryError:
                now = (
                    f"nobody held it, and this check's own lock (lock ID {probe.id}) could not "
                    f"be given back: run `mirror force-unlock {probe.id}`"
                )
        self._lost = GitLabLockLostError(
            f"the registry lock this apply took (lock ID {lock_id}) was force-unlocked while "
            f"it ran, and {now}; the apply stops, the mirror state not written (the next plan "
            "lists the registry afresh)"
        )
        raise self._lost

    # -- the lock --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, owner: str) -> Iterator[LockInfo]:
        """The Terraform-state lock for the whole apply; a held lock fails at once."""
        info, holder = self._take_lock(owner)
        if holder is not None:
            raise holder.held_error(self.describe())
        self._lock_id, self._lost = info.id, None
        try:
            yield info
            self._flush()
        except BaseException:
            # The apply's own error matters more; a lock left behind is named by the next run.
            # What it listed still holds for the packages it did not touch (a stale plan's
            # apply refreshes the record the next plan reads). A lock taken from it is not its
            # own to write under or release.
            if self._lost is None:
                with contextlib.suppress(GitLabRegistryError):
                    self._flush()
                with contextlib.suppress(GitLabRegistryError):
                    self._release(info.id)
            raise
        finally:
            self._lock_id = None
        self._release(info.id)

    def _release(self, lock_id: str) -> None:
        """DELETE our lock; a mismatch (409) means someone force-unlocked and relocked."""
        response = self.client.request(
            "DELETE",
            f"{self._state_url()}/lock",
            params={"ID": lock_id},
            auth=self.token.job_token_basic(),
        )
        if response.status_code != 409:
            self.client.check(
                response, f"releasing the registry lock (lock ID {lock_id})", role="Maintainer"
            )

    def _take_lock(self, owner: str) -> tuple[LockInfo, LockInfo | None]:
        """POST a new lock: (it, None) when it is ours, else (it, who holds the lock).

        A retried POST may find our own earlier attempt holding it: same ID, ours.
        """
        created = self.clock()
        info = LockInfo(id=str(uuid.uuid4()), owner=owner, created_at=created)
        body = {
            "ID": info.id,
            "Operation": "mirror apply",
            "Info": owner,
            "Who": owner,
            "Version": __version__,
            "Created": created.isoformat(),
            "Path": self.state_name,
        }

        def attempt() -> LockInfo | None | Again:
            response = self.client.post(
                f"{self._state_url()}/lock", json=body, auth=self.token.job_token_basic()
            )
            if isinstance(response, Again):
                return response
            if response.status_code == 200:
                return None
            if response.status_code == 409:
                holder = _lock_holder(response)
                return None if holder.id == info.id else holder
            self.client.check(response, "taking the registry lock", role="Maintainer")
            raise GitLabRegistryError(
                f"GitLab answered {response.status_code} taking the registry lock"
            )

        try:
            return info, self.client.retry(attempt, "taking the registry lock")
        except GitLabRegistryError:
            # A failed POST may have taken it: give back whatever we hold under our ID.
            with contextlib.suppress(GitLabRegistryError):
                self._release(info.id)
            raise

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Release a stuck lock by its ID (a mismatching ID is refused)."""
        probe, holder = self._take_lock("mirror force-unlock")
        if holder is None:  # nobody held it, and now our probe does: give it back
            self._release(probe.id)
            raise UserError(f"{self.describe()} is not locked")
        if holder.id != lock_id:
            raise UserError(
                f"lock ID {lock_id} does not match the lock held by {holder.owner} "
                f"(lock ID {holder.id})"
            )
        response = self.client.request(
            "DELETE",
            f"{self._state_url()}/lock",
            params={"ID": lock_id},
            auth=self.token.job_token_basic(),
        )
        self.client.check(response, "releasing the registry lock", role="Maintainer")
        return holder


def _lock_holder(response: requests.Response) -> LockInfo:
    """The holder a 409 names (its ID, GitLab username and time)."""
    try:
        body = jsondata.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise GitLabRegistryError("GitLab says the registry lock is held, but not by whom")
    created = _parse_time(body.get("Created"))
    return LockInfo(id=str(body.get("ID", "")), owner=str(body.get("Who", "?")), created_at=created)


def _parse_time(value: object) -> datetime | None:
    """An instant GitLab or the mirror state gives (ISO 8601 with `Z` or an offset; none
    given: UTC), or None."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
