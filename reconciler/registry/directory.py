"""The embedded registry: a directory any static web server (or `file://`) can serve.

Layout: `simple/index.html` and `simple/<name>/index.html` (PEP 503) with `index.json` beside
each (PEP 691), files under `files/<name>/`, and the mirror's own state under `.mirror/`
(lock, staging area, hash cache). Every write is atomic: temp file, fsync, rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
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

from filelock import FileLock, Timeout

from reconciler import jsondata
from reconciler.clock import Clock, system_clock
from reconciler.errors import LockHeldError, UserError
from reconciler.metadata import MetadataUnavailable, wheel_metadata
from reconciler.model import (
    ActualState,
    PlannedFile,
    QuarantineRecord,
    RegistryFile,
    parse_distribution_filename,
)
from reconciler.registry import quarantine_log, simple_pages
from reconciler.registry.interface import LockInfo, Registry, RegistryError

# Relative link from simple/<name>/ to files/<name>/ (works for file:// and any web server).
_FILE_URL = "../../files/{name}/"


class DirectoryRegistry(Registry):
    """A static PEP 503/691 index in a local directory."""

    def __init__(self, root: Path, clock: Clock = system_clock) -> None:
        self.root = root
        self.clock = clock
        self.simple = root / "simple"
        self.files = root / "files"
        self.state = root / ".mirror"

    def describe(self) -> str:
        """The directory's path."""
        return f"directory registry {self.root}"

    def list_actual(self) -> ActualState:
        """Files listed on a project page whose bytes are on disk, with their real sha256.

        A listed file missing on disk is not held (the next plan uploads it again); hashes are
        cached by size and mtime so unchanged files are not read again.
        """
        if not self.root.exists():
            return ActualState(files=())
        if not self.root.is_dir():
            raise RegistryError(f"{self.root} is not a directory")
        generation, last_plan = self._read_generation()
        cache = self._load_hash_cache()
        fresh_cache: dict[str, list[Any]] = {}
        held = []
        try:
            for name in self._project_names():
                for record in self._records(name):
                    parsed = parse_distribution_filename(record.filename)
                    path = self.files / name / record.filename
                    if parsed is None or not path.is_file():
                        continue
                    relative = f"{name}/{record.filename}"
                    stat_key, sha256 = _hash_with_cache(path, cache.get(relative))
                    fresh_cache[relative] = [*stat_key, sha256]
                    held.append(
                        RegistryFile(
                            name,
                            parsed[1],
                            record.filename,
                            sha256,
                            yanked=record.yanked,
                            yanked_reason=record.yanked_reason,
                            recorded_sha256=record.sha256,
                        )
                    )
        except OSError as error:
            raise RegistryError(f"cannot read {self.root}: {error}") from error
        if fresh_cache != cache:
            # The cache only saves re-reading bytes; a read-only registry can still be planned.
            with contextlib.suppress(OSError):
                self.state.mkdir(parents=True, exist_ok=True)
                _atomic_write(self.state / "hashes.json", json.dumps(fresh_cache).encode())
        return ActualState(
            files=tuple(held),
            generation=generation,
            last_plan=last_plan,
            quarantined=tuple(self._read_quarantine().values()),
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
        _atomic_write(self.state / "quarantine.json", json.dumps(document, indent=2).encode())

    def begin_apply(self, plan_id: str) -> None:
        """Bump `.mirror/generation.json` unless it already records this plan (a resume)."""
        generation, last_plan = self._read_generation()
        if last_plan != plan_id:
            self.state.mkdir(parents=True, exist_ok=True)
            _atomic_write(
                self.state / "generation.json",
                json.dumps({"generation": generation + 1, "plan": plan_id}).encode(),
            )

    def update_metadata(self, name: str, version: str, planned: PlannedFile) -> None:
        """Rewrite the file's record on the project pages; the bytes stay."""
        records = {r.filename: r for r in self._records(name)}
        kept = records.get(planned.filename)
        records[planned.filename] = replace(
            planned, metadata_sha256=kept.metadata_sha256 if kept else None
        )
        self._write_project(name, list(records.values()))

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
        """Rename the verified file into place, then list it on the project's pages."""
        target_dir = self.files / name
        target_dir.mkdir(parents=True, exist_ok=True)
        wheel = planned.filename.endswith(".whl")
        metadata = _wheel_metadata(local_path, planned.filename) if wheel else None
        if metadata is not None:
            # PEP 658: the core metadata beside the file, taken from the verified wheel itself.
            _atomic_write(target_dir / f"{planned.filename}.metadata", metadata)
            planned = replace(planned, metadata_sha256=hashlib.sha256(metadata).hexdigest())
        _fsync_file(local_path)
        os.replace(local_path, target_dir / planned.filename)
        _fsync_dir(target_dir)
        records = {r.filename: r for r in self._records(name)}
        records[planned.filename] = planned
        self._write_project(name, list(records.values()))

    def delete(self, name: str, version: str, filenames: Sequence[str]) -> None:
        """Unlist the files first, then remove their bytes: a page never links a missing file."""
        records = [r for r in self._records(name) if r.filename not in set(filenames)]
        self._write_project(name, records)
        for filename in filenames:
            for path in (self.files / name / filename, self.files / name / f"{filename}.metadata"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if not records:
            shutil.rmtree(self.files / name, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, owner: str) -> Iterator[LockInfo]:
        """An OS file lock (released by the kernel if the holder dies) plus who holds it."""
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
            _atomic_write(
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

    def _read_generation(self) -> tuple[int, str | None]:
        try:
            data = jsondata.loads((self.state / "generation.json").read_bytes())
        except FileNotFoundError:
            return 0, None
        except (OSError, ValueError) as error:
            raise RegistryError(f"cannot read {self.state / 'generation.json'}: {error}") from error
        return int(data["generation"]), data.get("plan")

    def _read_lock_info(self) -> LockInfo | None:
        try:
            data = jsondata.loads((self.state / "lock.json").read_bytes())
            return LockInfo(data["id"], data["owner"], datetime.fromisoformat(data["created_at"]))
        except (OSError, ValueError, KeyError):
            return None

    def _project_names(self) -> list[str]:
        if not self.simple.is_dir():
            return []
        return sorted(p.name for p in self.simple.iterdir() if (p / "index.json").is_file())

    def _records(self, name: str) -> list[PlannedFile]:
        """The files a project page lists, with the metadata kept from upstream."""
        path = self.simple / name / "index.json"
        try:
            page = jsondata.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise RegistryError(f"cannot read {path}: {error}") from error
        records = []
        for entry in page.get("files", []):
            yanked = entry.get("yanked", False)
            upload_time = entry.get("upload-time")
            records.append(
                PlannedFile(
                    filename=entry["filename"],
                    sha256=entry["hashes"]["sha256"],
                    size=entry.get("size"),
                    upload_time=datetime.fromisoformat(upload_time.replace("Z", "+00:00"))
                    if upload_time
                    else None,
                    requires_python=entry.get("requires-python"),
                    yanked=bool(yanked),
                    yanked_reason=yanked if isinstance(yanked, str) else None,
                    url=entry.get("url"),
                    metadata_sha256=(entry.get("core-metadata") or {}).get("sha256"),
                )
            )
        return records

    def _write_project(self, name: str, records: list[PlannedFile]) -> None:
        """Rewrite a project's pages (JSON first: it is what the listing reads) and the root."""
        directory = self.simple / name
        if records:
            directory.mkdir(parents=True, exist_ok=True)
            file_url = _FILE_URL.format(name=name)
            _atomic_write(
                directory / "index.json",
                simple_pages.render_project_json(name, records, file_url).encode(),
            )
            _atomic_write(
                directory / "index.html",
                simple_pages.render_project_html(name, records, file_url).encode(),
            )
        elif directory.exists():
            shutil.rmtree(directory)
        names = self._project_names()
        _atomic_write(self.simple / "index.html", simple_pages.render_root_html(names).encode())
        _atomic_write(self.simple / "index.json", simple_pages.render_root_json(names).encode())

    def _load_hash_cache(self) -> dict[str, list[Any]]:
        try:
            data = jsondata.loads((self.state / "hashes.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _wheel_metadata(path: Path, filename: str) -> bytes | None:
    """The wheel's `.dist-info/METADATA`, or None when it has no single readable one of a
    sane size: a wheel pip can still install, it just gets no PEP 658 file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return wheel_metadata(archive, filename)
    except (MetadataUnavailable, zipfile.BadZipFile, zlib.error, OSError, KeyError,
            NotImplementedError, RuntimeError, EOFError, ValueError):  # fmt: skip
        return None


def _hash_with_cache(path: Path, cached: list[Any] | None) -> tuple[list[int], str]:
    """(stat key, sha256) of a file, reusing the cached hash while the stat key is unchanged.

    The key holds inode and ctime besides size and mtime: `os.utime` can fake an mtime, but
    nothing resets a ctime. It is read from the open descriptor before and after hashing, so a
    file replaced while being read is hashed again next time rather than cached wrongly.
    """
    with path.open("rb") as stream:
        before = _stat_key(os.fstat(stream.fileno()))
        if cached and cached[:4] == before:
            return before, str(cached[4])
        digest = hashlib.sha256()
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
        after = _stat_key(os.fstat(stream.fileno()))
    return (after if after == before else [-1, -1, -1, -1]), digest.hexdigest()


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
