"""The embedded registry: a directory any static web server (or `file://`) can serve.

Layout: `simple/index.html` and `simple/<name>/index.html` (PEP 503) with `index.json` beside
each (PEP 691), files under `files/<name>/`, and the mirror's own state under `.mirror/`
(lock, staging area, hash cache, quarantine log). Every change is a durable step of `FileOps`;
what a crash or a full disk leaves half done, the survey (`registry.survey`) finds: files no
page lists are held (the plan lists them again or deletes them), any other disagreement is
repaired before the next apply's first change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler import jsondata
from reconciler.clock import Clock, system_clock
from reconciler.errors import LockHeldError, UserError
from reconciler.metadata import MetadataUnavailable, wheel_metadata
from reconciler.model import (
    ActualState,
    PlannedFile,
    QuarantineRecord,
    RegistryFile,
    is_sha256,
    parse_distribution_filename,
)
from reconciler.registry import quarantine_log, simple_pages
from reconciler.registry.fileops import FileOps, fsync_file, hash_with_cache
from reconciler.registry.interface import LockInfo, Registry, RegistryError
from reconciler.registry.survey import (
    FILE_URL,
    ProjectView,
    Survey,
    project_view,
    root_names,
    root_pages,
    survey,
)


class DirectoryRegistry(Registry):
    """A static PEP 503/691 index in a local directory."""

    def __init__(self, root: Path, clock: Clock = system_clock, fs: FileOps | None = None) -> None:
        self.root = root
        self.clock = clock
        self.fs = fs or FileOps()
        self.simple = root / "simple"
        self.files = root / "files"
        self.state = root / ".mirror"

    def describe(self) -> str:
        """The directory's path."""
        return f"directory registry {self.root}"

    def list_actual(self, recorded: bool = False) -> ActualState:
        """Everything the registry serves: each distribution file on disk with the sha256 of
        its bytes (listed on its page, or an orphan no page lists), and every disagreement
        among pages and files as a repair. Hashes are cached by the files' stat keys."""
        if not self.root.exists():
            return ActualState(files=())
        if not self.root.is_dir():
            raise RegistryError(f"{self.root} is not a directory")
        generation, last_plan, applied_commit = self._read_generation()
        served = survey(self.root)
        cache = self._load_hash_cache()
        fresh_cache: dict[str, list[Any]] = {}
        held = []
        try:
            for name, project in served.projects.items():
                for filename in sorted(project.present):
                    version = parse_distribution_filename(filename)
                    record = project.records.get(filename)
                    relative = f"{name}/{filename}"
                    stat_key, sha256 = hash_with_cache(self.files / relative, cache.get(relative))
                    fresh_cache[relative] = [*stat_key, sha256]
                    held.append(
                        RegistryFile(
                            name,
                            version[1] if version else "",
                            filename,
                            sha256,
                            yanked=record.yanked if record else False,
                            yanked_reason=record.yanked_reason if record else None,
                            recorded_sha256=record.sha256 if record else None,
                            listed=record is not None,
                            requires_python=record.requires_python if record else None,
                            upload_time=record.upload_time if record else None,
                            size=record.size if record else None,
                        )
                    )
        except OSError as error:
            raise RegistryError(f"cannot read {self.root}: {error}") from error
        if fresh_cache != cache:
            # The cache only saves re-reading bytes; a read-only registry can still be planned.
            with contextlib.suppress(OSError):
                self.fs.write(self.state / "hashes.json", json.dumps(fresh_cache).encode())
        return ActualState(
            files=tuple(held),
            generation=generation,
            last_plan=last_plan,
            applied_commit=applied_commit,
            quarantined=tuple(self._read_quarantine().values()),
            repairs=tuple(served.repairs()),
        )

    def record_quarantine(self, record: QuarantineRecord) -> None:
        """Add the record to `.mirror/quarantine.json`, replacing an older one."""
        records = self._read_quarantine()
        records[quarantine_log.key(record.name, record.version)] = record
        self._write_quarantine(records)

    def forget_quarantine(self, name: str, version: str) -> None:
        """Drop the version's record from `.mirror/quarantine.json`."""
        records = self._read_quarantine()
        if records.pop(quarantine_log.key(name, version), None) is not None:
            self._write_quarantine(records)

    def _read_quarantine(self) -> dict[str, QuarantineRecord]:
        path = self.state / "quarantine.json"
        try:
            return quarantine_log.from_json(jsondata.loads(path.read_bytes()))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise RegistryError(f"cannot read {path}: {error}") from error

    def _write_quarantine(self, records: dict[str, QuarantineRecord]) -> None:
        document = {k: quarantine_log.to_json(r) for k, r in sorted(records.items())}
        self.fs.write(self.state / "quarantine.json", json.dumps(document, indent=2).encode())

    def begin_apply(self, plan_id: str, commit: str | None) -> None:
        """Repair what the survey finds out of line, then bump `.mirror/generation.json`
        unless it already records this plan (a resume)."""
        self._repair(survey(self.root))
        generation, last_plan, _ = self._read_generation()
        if last_plan != plan_id:
            record = {"generation": generation + 1, "plan": plan_id, "commit": commit}
            self.fs.write(self.state / "generation.json", json.dumps(record).encode())

    def update_metadata(self, name: str, version: str, planned: PlannedFile) -> None:
        """List a file already on disk with these bytes (again): its record, and its PEP 658
        file when it has none yet (an orphan a crash left unlisted)."""
        records = self._records(name)
        kept = records.get(planned.filename)
        if kept is not None and kept.metadata_sha256:
            planned = replace(planned, metadata_sha256=kept.metadata_sha256)
        else:
            planned = self._with_metadata(name, planned, self.files / name / planned.filename)
        records[planned.filename] = planned
        self._write_project(name, records)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private directory under `.mirror/staging`, on the registry's filesystem."""
        base = self.state / "staging"
        base.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(dir=base))
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def upload(self, name: str, version: str, planned: PlannedFile, local_path: Path) -> None:
        """Its PEP 658 file, then the verified file renamed into place, then its record on the
        project's pages (a crash in between leaves an orphan the next plan lists)."""
        target_dir = self.files / name
        target_dir.mkdir(parents=True, exist_ok=True)
        planned = self._with_metadata(name, planned, local_path)
        fsync_file(local_path)
        self.fs.rename(local_path, target_dir / planned.filename)
        records = self._records(name)
        records[planned.filename] = planned
        self._write_project(name, records)

    def delete(self, name: str, version: str, filenames: Sequence[str]) -> None:
        """Remove the bytes first (nothing quarantined stays reachable, even if the apply dies
        here), then unlist them: a page left listing a gone file is repaired next time."""
        for filename in filenames:
            self.fs.remove(self.files / name / f"{filename}.metadata")
            self.fs.remove(self.files / name / filename)
        records = self._records(name)
        for filename in filenames:
            records.pop(filename, None)
        self._write_project(name, records)
        with contextlib.suppress(OSError):  # not empty: orphans stay held
            if not any((self.files / name).iterdir()):
                self.fs.remove_tree(self.files / name)

    @contextlib.contextmanager
    def lock(self, owner: str) -> Iterator[LockInfo]:
        """An OS file lock (released by the kernel if the holder dies) plus who holds it."""
        # Imported here: filelock brings asyncio, 0.06 s of every command's start.
        from filelock import FileLock, Timeout

        self.state.mkdir(parents=True, exist_ok=True)
        file_lock = FileLock(self.state / "lock", timeout=0)
        try:
            file_lock.acquire()
        except Timeout:
            holder = self._read_lock_info()
            if holder is None:
                raise LockHeldError(f"{self.describe()} is locked by another apply") from None
            raise holder.held_error(self.describe()) from None
        created = self.clock()
        info = LockInfo(id=str(uuid.uuid4()), owner=owner, created_at=created)
        try:
            self.fs.write(
                self.state / "lock.json",
                json.dumps(
                    {"id": info.id, "owner": info.owner, "created_at": created.isoformat()}
                ).encode(),
            )
            # Downloads left by a killed apply are never visible; clear them now we hold the lock.
            shutil.rmtree(self.state / "staging", ignore_errors=True)
            yield info
        finally:
            # After a force-unlock the info may be another holder's by now: leave theirs alone.
            holder = self._read_lock_info()
            if holder is not None and holder.id == info.id:
                (self.state / "lock.json").unlink(missing_ok=True)
            file_lock.release()

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock with this id, even from a holder that is still alive."""
        holder = self._read_lock_info()
        if holder is None:
            raise UserError(f"{self.describe()} is not locked")
        if holder.id != lock_id:
            raise UserError(
                f"lock ID {lock_id} does not match the lock held by {holder.owner} "
                f"(lock ID {holder.id})"
            )
        for name in ("lock.json", "lock"):
            with contextlib.suppress(FileNotFoundError):
                (self.state / name).unlink()
        return holder

    def _read_generation(self) -> tuple[int, str | None, str | None]:
        """`.mirror/generation.json`: applies counted, the last plan applied and the commit
        of the desired state it carried out."""
        path = self.state / "generation.json"
        try:
            data = jsondata.loads(path.read_bytes())
        except FileNotFoundError:
            return 0, None, None
        except (OSError, ValueError) as error:
            raise RegistryError(f"cannot read {path}: {error}") from error
        found = data if isinstance(data, dict) else {}
        generation, plan, commit = found.get("generation"), found.get("plan"), found.get("commit")
        if (
            type(generation) is not int
            or generation < 0
            or not isinstance(plan, str | None)
            or not isinstance(commit, str | None)
        ):
            raise RegistryError(
                f'cannot read {path}: expected {{"generation": <count>, "plan": <id>, '
                '"commit": <sha>}'
            )
        return generation, plan, commit

    def _read_lock_info(self) -> LockInfo | None:
        try:
            data = jsondata.loads((self.state / "lock.json").read_bytes())
            return LockInfo(data["id"], data["owner"], datetime.fromisoformat(data["created_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _records(self, name: str) -> dict[str, PlannedFile]:
        """The project's record (what index.json lists), by file name."""
        try:
            return dict(project_view(self.root, name).records)
        except OSError as error:
            raise RegistryError(f"cannot read {self.root}: {error}") from error

    def _with_metadata(self, name: str, planned: PlannedFile, wheel: Path) -> PlannedFile:
        """PEP 658: the core metadata beside a wheel, taken from the verified wheel itself."""
        metadata = _wheel_metadata(wheel, planned.filename) if wheel.suffix == ".whl" else None
        if metadata is None:
            return replace(planned, metadata_sha256=None)
        self.fs.write(self.files / name / f"{planned.filename}.metadata", metadata)
        return replace(planned, metadata_sha256=hashlib.sha256(metadata).hexdigest())

    def _write_project(self, name: str, records: dict[str, PlannedFile]) -> None:
        """Rewrite a project's pages (JSON, the record, first) and the root pages."""
        listed = [r for _, r in sorted(records.items())]
        directory, url = self.simple / name, FILE_URL.format(name=name)
        if listed:
            directory.mkdir(parents=True, exist_ok=True)
            self.fs.write(
                directory / "index.json",
                simple_pages.render_project_json(name, listed, url).encode(),
            )
            self.fs.write(
                directory / "index.html",
                simple_pages.render_project_html(name, listed, url).encode(),
            )
        elif directory.exists():
            self.fs.remove_tree(directory)
        # The root pages name the projects with something listed: this one changed; the rest
        # are as the root page says (begin_apply repaired it), read whole only when unreadable.
        names = root_names(self.root)
        if names is None:
            names = set(survey(self.root).served_names())
        names = names | {name} if listed else names - {name}
        self._write_root(root_pages(sorted(names)))

    def _write_root(self, pages: dict[str, bytes]) -> None:
        for page, data in pages.items():
            path = self.simple / page
            if not path.is_file() or path.read_bytes() != data:
                self.fs.write(path, data)

    def _repair(self, served: Survey) -> None:
        """Bring pages and files back in line with the record (see `Survey.repairs`)."""
        for path in served.strays:
            self.fs.remove_tree(self.root / path)
        for name, project in served.projects.items():
            self._repair_project(name, project)
        self._write_root(survey(self.root).expected_root_pages())

    def _repair_project(self, name: str, project: ProjectView) -> None:
        for path in project.strays:
            self.fs.remove_tree(self.root / path)
        records = {r.filename: r for r in project.listed}
        for filename in project.stray_metadata():
            self.fs.remove(self.files / name / f"{filename}.metadata")
        for filename in project.wrong_metadata():
            wheel = self.files / name / filename
            records[filename] = self._with_metadata(name, records[filename], wheel)
        if records != {r.filename: r for r in project.listed} or (
            project.pages != project.expected_pages()
        ):
            self._write_project(name, records)

    def _load_hash_cache(self) -> dict[str, list[Any]]:
        """`.mirror/hashes.json`: the entries of the form `hash_with_cache` writes; anything
        else is ignored (the file is hashed again), as is an unreadable cache."""
        try:
            data = jsondata.loads((self.state / "hashes.json").read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: entry for key, entry in data.items() if _cache_entry(entry)}


def _cache_entry(entry: object) -> bool:
    """Whether a hash cache entry is `[size, mtime_ns, inode, ctime_ns, sha256]`."""
    return (
        isinstance(entry, list)
        and len(entry) == 5
        and all(type(number) is int for number in entry[:4])
        and isinstance(entry[4], str)
        and is_sha256(entry[4])
    )


def _wheel_metadata(path: Path, filename: str) -> bytes | None:
    """The wheel's `.dist-info/METADATA`, or None when it has no single readable one of a
    sane size: a wheel pip can still install, it just gets no PEP 658 file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return wheel_metadata(archive, filename)
    except (MetadataUnavailable, zipfile.BadZipFile, zlib.error, OSError, KeyError,
            NotImplementedError, RuntimeError, EOFError, ValueError):  # fmt: skip
        return None
