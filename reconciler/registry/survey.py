"""What a directory registry serves, read whole: both pages of every project, the root pages,
and every file under `files/`, with each place where they disagree.

The JSON page is the mirror's record of what it placed (with upstream's metadata); what clients
are served is that and the HTML page and whatever lies under `files/` (a static server serves
any file there by URL). A file on disk that no page lists is an orphan: held, for the planner
to list again or delete. Every other disagreement is a repair the next apply makes first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.utils import canonicalize_name

from reconciler import jsondata
from reconciler.model import PlannedFile, parse_distribution_filename
from reconciler.registry import simple_pages
from reconciler.registry.interface import RegistryError

# Relative link from simple/<name>/ to files/<name>/ (works for file:// and any web server).
FILE_URL = "../../files/{name}/"
PAGES = ("index.json", "index.html")


@dataclass(frozen=True)
class ProjectView:
    """One project as served: its pages, its record, the files under `files/<name>/`."""

    name: str
    records: dict[str, PlannedFile]  # what index.json lists, by file name
    present: frozenset[str]  # the project's distribution files on disk
    metadata: dict[str, bytes]  # `<file>.metadata` files on disk, by the file they describe
    pages: dict[str, bytes]  # index.json and index.html as they are on disk
    strays: tuple[Path, ...]  # anything else in its two directories
    unreadable: str | None = None  # why index.json could not be read

    @property
    def listed(self) -> list[PlannedFile]:
        """The records whose bytes are on disk: what the pages should list."""
        return [r for name, r in sorted(self.records.items()) if name in self.present]

    @property
    def orphans(self) -> list[str]:
        """Distribution files on disk that the record does not list."""
        return sorted(self.present - self.records.keys())

    def expected_pages(self) -> dict[str, bytes]:
        """Both pages as they follow from the listed records (none when nothing is listed)."""
        listed, url = self.listed, FILE_URL.format(name=self.name)
        if not listed:
            return {}
        return {
            "index.json": simple_pages.render_project_json(self.name, listed, url).encode(),
            "index.html": simple_pages.render_project_html(self.name, listed, url).encode(),
        }

    def expected_metadata(self) -> dict[str, str]:
        """The PEP 658 files the pages promise: `<file>.metadata` by file, with its sha256."""
        return {r.filename: r.metadata_sha256 for r in self.listed if r.metadata_sha256}

    def wrong_metadata(self) -> list[str]:
        """The files whose promised `.metadata` file is missing or has other bytes."""
        return [
            filename
            for filename, sha256 in sorted(self.expected_metadata().items())
            if (data := self.metadata.get(filename)) is None
            or hashlib.sha256(data).hexdigest() != sha256
        ]

    def stray_metadata(self) -> list[str]:
        """The files with a `.metadata` file on disk that no page promises."""
        return sorted(self.metadata.keys() - self.expected_metadata().keys())


@dataclass(frozen=True)
class Survey:
    """The whole registry as served."""

    projects: dict[str, ProjectView]
    root_pages: dict[str, bytes]
    strays: tuple[Path, ...]  # in `simple/` or `files/` themselves

    def served_names(self) -> list[str]:
        """The projects with something listed: what the root pages should name."""
        return sorted(n for n, p in self.projects.items() if p.listed)

    def expected_root_pages(self) -> dict[str, bytes]:
        """The root pages as they follow from the projects."""
        return root_pages(self.served_names())

    def repairs(self) -> list[str]:
        """Every disagreement between the record, the pages and the files, in words."""
        found = [f"{path.as_posix()} is not something the mirror placed" for path in self.strays]
        for _, project in sorted(self.projects.items()):
            found.extend(_project_repairs(project))
        if self.served_names() or self.root_pages:
            found.extend(
                f"simple/{page} is out of date"
                for page, data in self.expected_root_pages().items()
                if self.root_pages.get(page) != data
            )
        return found


def root_pages(names: list[str]) -> dict[str, bytes]:
    """Both root pages naming these projects."""
    return {
        "index.json": simple_pages.render_root_json(names).encode(),
        "index.html": simple_pages.render_root_html(names).encode(),
    }


def root_names(root: Path) -> set[str] | None:
    """The projects the root JSON page names, or None when it cannot be read as one."""
    try:
        projects = jsondata.loads((root / "simple" / "index.json").read_bytes())["projects"]
        return {str(p["name"]) for p in projects}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _project_repairs(project: ProjectView) -> list[str]:
    name, found = project.name, []
    if project.unreadable is not None:
        found.append(f"simple/{name}/index.json cannot be read ({project.unreadable})")
    found.extend(
        f"simple/{name}/index.json lists {filename}, whose bytes are gone"
        for filename in sorted(project.records.keys() - project.present)
    )
    expected, gone = project.expected_pages(), project.records.keys() - project.present
    found.extend(
        f"simple/{name}/{page} is out of date"
        for page in PAGES
        if project.pages.get(page) != expected.get(page) and not (page == "index.json" and gone)
    )
    found.extend(
        f"files/{name}/{filename}.metadata is missing or wrong"
        for filename in project.wrong_metadata()
    )
    found.extend(
        f"files/{name}/{filename}.metadata belongs to no listed wheel"
        for filename in project.stray_metadata()
    )
    found.extend(f"{path.as_posix()} is not something the mirror placed" for path in project.strays)
    return found


def survey(root: Path) -> Survey:
    """Read the registry at `root` as served; RegistryError when it cannot be read at all, or
    when `simple/` or `files/` is a link (a repair would remove files wherever it points)."""
    simple, files = root / "simple", root / "files"
    for top in (simple, files):
        if top.is_symlink():
            raise RegistryError(
                f"{top} is a symbolic link; the registry's directories must be its own"
            )
    try:
        strays: list[Path] = []
        names: set[str] = set()
        for top in (simple, files):
            for entry in _entries(top):
                if entry.is_dir() and not entry.is_symlink() and _plain(entry.name):
                    names.add(entry.name)
                elif not (top == simple and entry.name in PAGES and _regular(entry)):
                    strays.append(entry.relative_to(root))
        root_pages = {p: (simple / p).read_bytes() for p in PAGES if _regular(simple / p)}
        projects = {name: project_view(root, name) for name in sorted(names)}
    except OSError as error:
        raise RegistryError(f"cannot read {root}: {error}") from error
    return Survey(projects, root_pages, tuple(strays))


def project_view(root: Path, name: str) -> ProjectView:
    """One project of the registry at `root` as served (OSError when it cannot be read)."""
    pages_dir, files_dir = root / "simple" / name, root / "files" / name
    strays = [
        e.relative_to(root) for e in _entries(pages_dir) if e.name not in PAGES or not _regular(e)
    ]
    pages = {page: (pages_dir / page).read_bytes() for page in PAGES if _regular(pages_dir / page)}
    present: set[str] = set()
    metadata: dict[str, bytes] = {}
    for entry in _entries(files_dir):
        parsed = parse_distribution_filename(entry.name.removesuffix(".metadata"))
        if not _regular(entry) or parsed is None or parsed[0] != name or entry.name.startswith("."):
            strays.append(entry.relative_to(root))
        elif entry.name.endswith(".metadata"):
            metadata[entry.name.removesuffix(".metadata")] = entry.read_bytes()
        else:
            present.add(entry.name)
    records, unreadable = _records(pages.get("index.json"))
    return ProjectView(
        name, records, frozenset(present), metadata, pages, tuple(strays), unreadable
    )


def _records(page: bytes | None) -> tuple[dict[str, PlannedFile], str | None]:
    """The files a JSON page lists, with the metadata kept from upstream; none, and why,
    when it cannot be read (then every file of the project is an orphan until listed again)."""
    if page is None:
        return {}, None
    try:
        entries = jsondata.loads(page)["files"]
        records = [_record(entry) for entry in entries]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return {}, f"{type(error).__name__}: {error}"[:200]
    return {r.filename: r for r in records}, None


def _record(entry: dict[str, object]) -> PlannedFile:
    yanked, upload_time = entry.get("yanked", False), entry.get("upload-time")
    hashes, core = entry["hashes"], entry.get("core-metadata") or {}
    if not isinstance(hashes, dict) or not isinstance(core, dict):
        raise TypeError("hashes and core-metadata must be objects")
    size = entry.get("size")
    return PlannedFile(
        filename=str(entry["filename"]),
        sha256=str(hashes["sha256"]),
        size=size if type(size) is int and size >= 0 else None,
        upload_time=datetime.fromisoformat(str(upload_time).replace("Z", "+00:00"))
        if upload_time
        else None,
        requires_python=str(entry["requires-python"]) if entry.get("requires-python") else None,
        yanked=bool(yanked),
        yanked_reason=yanked if isinstance(yanked, str) else None,
        url=str(entry["url"]) if entry.get("url") else None,
        metadata_sha256=str(core["sha256"]) if core.get("sha256") else None,
    )


def _regular(path: Path) -> bool:
    """A file of the registry's own: not a link (which could point anywhere)."""
    return path.is_file() and not path.is_symlink()


def _entries(directory: Path) -> list[Path]:
    """A directory's entries (none when it does not exist)."""
    return sorted(directory.iterdir()) if directory.is_dir() else []


def _plain(name: str) -> bool:
    """A project directory's name: a normalised project name (PEP 503), nothing hidden."""
    return bool(name) and not name.startswith(".") and canonicalize_name(name) == name
