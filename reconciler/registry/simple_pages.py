"""Pure renderers for simple-API pages: PEP 503 HTML and PEP 691 JSON (api-version 1.1)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape

from reconciler.model import PlannedFile, parse_distribution_filename, version_sort_key

API_VERSION = "1.1"


def render_root_html(names: Iterable[str]) -> str:
    """The root page listing every project (PEP 503)."""
    links = "\n".join(f'    <a href="{escape(n)}/">{escape(n)}</a><br/>' for n in sorted(names))
    return _html("Simple index", links)


def render_root_json(names: Iterable[str]) -> str:
    """The root page as PEP 691 JSON."""
    return _json(
        {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in sorted(names)]}
    )


def render_project_html(name: str, files: Sequence[PlannedFile], file_url: str) -> str:
    """A project page: one link per file with `#sha256=`, `data-requires-python`,
    `data-yanked` and `data-core-metadata` (PEPs 503, 592, 658/714). `file_url` is the relative
    URL prefix of the files."""
    links = []
    for record in _sorted(files):
        attributes = ""
        if record.requires_python:
            attributes += f' data-requires-python="{escape(record.requires_python)}"'
        if record.yanked:
            attributes += f' data-yanked="{escape(record.yanked_reason or "")}"'
        if record.metadata_sha256:
            # PEP 714's attribute, and PEP 658's older one for clients that only know it.
            digest = f"sha256={record.metadata_sha256}"
            attributes += f' data-core-metadata="{digest}" data-dist-info-metadata="{digest}"'
        href = f"{file_url}{record.filename}#sha256={record.sha256}"
        links.append(f'    <a href="{escape(href)}"{attributes}>{escape(record.filename)}</a><br/>')
    return _html(f"Links for {name}", "\n".join(links))


def render_project_json(name: str, files: Sequence[PlannedFile], file_url: str) -> str:
    """A project page as PEP 691 JSON with the PEP 700 fields (upload-time, size, versions) and
    PEP 714 `core-metadata`."""
    entries = []
    for record in _sorted(files):
        entry: dict[str, object] = {
            "filename": record.filename,
            "url": f"{file_url}{record.filename}",
            "hashes": {"sha256": record.sha256},
            "yanked": (record.yanked_reason or True) if record.yanked else False,
        }
        if record.requires_python:
            entry["requires-python"] = record.requires_python
        if record.size is not None:
            entry["size"] = record.size
        if record.upload_time is not None:
            entry["upload-time"] = record.upload_time.isoformat().replace("+00:00", "Z")
        if record.metadata_sha256:
            entry["core-metadata"] = {"sha256": record.metadata_sha256}  # PEP 714
            entry["dist-info-metadata"] = {"sha256": record.metadata_sha256}  # PEP 658
        entries.append(entry)
    versions = sorted(
        {parsed[1] for r in files if (parsed := parse_distribution_filename(r.filename))},
        key=version_sort_key,
    )
    return _json(
        {"meta": {"api-version": API_VERSION}, "name": name, "versions": versions, "files": entries}
    )


def _sorted(files: Sequence[PlannedFile]) -> list[PlannedFile]:
    return sorted(files, key=lambda r: r.filename)


def _html(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0">\n'
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}\n  </body>\n</html>\n"
    )


def _json(document: object) -> str:
    return json.dumps(document, indent=1) + "\n"
