"""Project pages of the simple API, read into the mirror's own types.

PEP 691 JSON pages are read in one pass straight into `UpstreamFile`s: no model object per
file in between (pypi_simple's validated models cost more than the rest of a plan's page
handling, on pages such as botocore's with thousands of files). The shape is checked as PEP
691, 700, 714 and 792 state it; a page that breaks it is unreadable (ValueError), never half
read. PEP 503 HTML pages, the fallback, go through pypi_simple. Either way a file the mirror
never takes (not a plain wheel or sdist of the project, an absurd Requires-Python) is left out,
and an absurd size says nothing.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.message import Message
from typing import Any
from urllib.parse import urljoin

from packaging.version import InvalidVersion, Version

from reconciler import jsondata
from reconciler.model import (
    UpstreamFile,
    UpstreamProject,
    is_plain_filename,
    is_sha256,
    parse_distribution_filename,
)

# The major API version this reader understands (PEP 691: a client refuses a newer major).
API_MAJOR = 1
# The longest free text (a yank reason, a Requires-Python) taken from upstream.
MAX_TEXT = 1000
# PEP 792's statuses; any other is a page this reader does not understand.
STATUSES = frozenset({"active", "archived", "quarantined", "deprecated"})
# A URL with nothing urljoin would clean or refuse: printable ASCII, no brackets or backslash.
_PLAIN_URL = re.compile(r"[!-Z^-~]+")  # 0x21-0x7e but "[", "\\" and "]"
# PEP 700's upload-time: ISO 8601, "yyyy-mm-ddThh:mm:ss.ffffffZ", with or without the fraction.
_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"([Zz]|[+-]\d\d:?\d\d)?",
    re.ASCII,
)


JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = frozenset({"application/vnd.pypi.simple.v1+html", "text/html"})


def read_page(name: str, body: bytes, content_type: str, page_url: str) -> UpstreamProject:
    """The project `name` as its page says (by its Content-Type); ValueError names what makes
    the page unreadable."""
    header = Message()
    header["Content-Type"] = content_type
    media_type = header.get_content_type()
    if media_type == JSON_TYPE:
        return read_json(name, jsondata.loads(body), page_url)
    if media_type in HTML_TYPES:
        charset = header.get_param("charset")
        return _read_html(name, body, page_url, charset if isinstance(charset, str) else None)
    raise ValueError(f"unsupported page type {media_type[:80]}")


def _read_html(name: str, body: bytes, page_url: str, encoding: str | None) -> UpstreamProject:
    """A PEP 503 page, through pypi_simple (imported here: commands that read no page start
    in half the time without it, and BeautifulSoup)."""
    from pypi_simple import ProjectPage
    from pypi_simple.errors import UnsupportedRepoVersionError

    try:
        page = ProjectPage.from_html(name, body, page_url, from_encoding=encoding)
    except UnsupportedRepoVersionError as error:
        raise ValueError(str(error)) from None
    files = (
        _upstream_file(
            name,
            package.filename,
            package.url,
            package.digests,
            requires_python=package.requires_python,
            yanked=(package.yanked_reason or True) if package.is_yanked else False,
            size=package.size,
            upload_time=package.upload_time,
            metadata=(package.metadata_digests or True) if package.has_metadata else None,
        )
        for package in page.packages
    )
    return UpstreamProject(name=name, files=tuple(f for f in files if f is not None))


def read_json(name: str, document: Any, page_url: str) -> UpstreamProject:
    """The project `name` as its PEP 691 page `document` describes it; ValueError names what
    makes the page unreadable. File URLs are resolved against `page_url`."""
    if not isinstance(document, dict):
        raise ValueError("page validation: not a JSON object")
    _check_version(document.get("meta"))
    files = document.get("files")
    if not isinstance(files, list):
        raise ValueError("page validation: 'files' is not a list")
    read = (_file(name, entry, page_url) for entry in files)
    return UpstreamProject(
        name=name,
        files=tuple(f for f in read if f is not None),
        status=_status(document.get("project-status")),
    )


def _check_version(meta: Any) -> None:
    """PEP 691: `meta.api-version` is "major.minor"; a newer major is not understood."""
    if not isinstance(meta, dict) or not isinstance(meta.get("api-version"), str):
        raise ValueError("page validation: no meta.api-version")
    text = meta["api-version"]
    try:
        version = Version(text) if len(text) <= 40 else None  # "1.1"; "1" and "1.0.0" too
    except InvalidVersion:
        version = None
    if version is None:
        raise ValueError(f"page validation: api-version {text[:40]!r}")
    if (version.epoch, version.major) > (0, API_MAJOR):
        raise ValueError(f"unsupported repository version {text}")


def _status(value: Any) -> str | None:
    """PEP 792's project status, if the page gives one."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("page validation: 'project-status' is not an object")
    status = value.get("status")
    if status is not None and (not isinstance(status, str) or status not in STATUSES):
        raise ValueError(f"page validation: project status {str(status)[:40]!r}")
    return status if isinstance(status, str) else None


def _file(name: str, entry: Any, page_url: str) -> UpstreamFile | None:
    """One file of the page; None for a file the mirror never takes (not a plain wheel or
    sdist of this project, or a Requires-Python no real release writes)."""
    if not isinstance(entry, dict):
        raise ValueError("page validation: a file is not an object")
    filename, url = entry.get("filename"), entry.get("url")
    # PEP 691's hashes (and PEP 714's metadata digests) are objects of strings; only the
    # sha256 one is read, and checked where it is.
    if not (
        isinstance(filename, str) and isinstance(url, str) and isinstance(entry.get("hashes"), dict)
    ):
        raise ValueError("page validation: a file without filename, url and hashes")
    hashes: Mapping[str, str] = entry["hashes"]
    requires_python = _optional(entry, "requires-python", str)
    yanked = entry.get("yanked", False)
    if not isinstance(yanked, (bool, str)):
        raise ValueError(f"page validation: {filename[:80]}: 'yanked'")
    metadata = entry.get("core-metadata")  # PEP 714's key; the older one is not read
    if not (metadata is None or isinstance(metadata, (bool, dict))):
        raise ValueError(f"page validation: {filename[:80]}: 'core-metadata'")
    uploaded = _optional(entry, "upload-time", str)
    return _upstream_file(
        name,
        filename,
        _resolved(page_url, url),
        hashes,
        requires_python=requires_python,
        yanked=yanked,
        size=entry.get("size"),
        upload_time=_time(uploaded) if uploaded is not None else None,
        metadata=metadata,
    )


def _upstream_file(
    name: str,
    filename: str,
    url: str,
    hashes: Mapping[str, str],
    *,
    requires_python: str | None,
    yanked: bool | str,
    size: object,
    upload_time: datetime | None,
    metadata: bool | Mapping[str, str] | None,
) -> UpstreamFile | None:
    """What a page says of one file, as the mirror keeps it; None for a file the mirror never
    takes (not a plain wheel or sdist of this project, or a Requires-Python no real release
    writes). `yanked`: a reason is a yank (PEP 592); `metadata`: PEP 714's core-metadata."""
    parsed = parse_distribution_filename(filename)
    if parsed is None or parsed[0] != name or not is_plain_filename(filename):
        return None
    if requires_python and len(requires_python) > MAX_TEXT:
        return None
    return UpstreamFile(
        filename=filename,
        url=url,
        version=parsed[1],
        sha256=_sha256(hashes),
        # PEP 700: upload-time is UTC; a server that omits the zone still means UTC.
        upload_time=upload_time.replace(tzinfo=timezone.utc)
        if upload_time is not None and upload_time.tzinfo is None
        else upload_time,
        yanked=yanked is not False,
        yanked_reason=_bounded(yanked) if isinstance(yanked, str) else None,
        size=size if type(size) is int and size >= 0 else None,  # PEP 700: bytes
        # "" says nothing; a project's files repeat a few, each kept once.
        requires_python=sys.intern(requires_python) if requires_python else None,
        # PEP 658/714: the core metadata is served beside the file, with its digest.
        has_metadata=metadata is not None and metadata is not False,
        metadata_sha256=_sha256(metadata) if isinstance(metadata, Mapping) else None,
    )


def _optional(entry: Mapping[str, Any], key: str, kind: type) -> Any:
    """`entry[key]` if it is of `kind` (a bool is no int), None if absent or null."""
    value = entry.get(key)
    if value is None:
        return None
    if type(value) is not kind:
        raise ValueError(f"page validation: {str(entry['filename'])[:80]}: {key!r}")
    return value


def _time(text: str) -> datetime:
    """PEP 700's upload time (`yyyy-mm-ddThh:mm:ss[.f…][Z|±hh:mm]`, nothing else, on every
    Python), in UTC; a time without a zone means UTC."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"page validation: upload-time {text[:40]!r}")
    try:  # C, and the form above since Python 3.11 (3.10's takes no "Z")
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = _iso_time(text, match)
    try:
        return (
            moment.astimezone(timezone.utc)
            if moment.tzinfo
            else moment.replace(tzinfo=timezone.utc)
        )
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        raise ValueError(f"page validation: upload-time {text[:40]!r}") from None


def _iso_time(text: str, match: re.Match[str]) -> datetime:
    """The form `_TIME` matched, read by hand (Python 3.10, or a lower-case "z")."""
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc,
        )  # fmt: skip
        if zone and zone not in "Zz":
            sign = -1 if zone[0] == "-" else 1
            hours, minutes = int(zone[1:3]), int(zone[-2:])
            if hours > 23 or minutes > 59:
                raise ValueError(zone)
            moment -= sign * timedelta(hours=hours, minutes=minutes)
    except (ValueError, OverflowError):
        raise ValueError(f"page validation: upload-time {text[:40]!r}") from None
    return moment


def _sha256(digests: Mapping[str, str]) -> str | None:
    """A sha256 hex digest, or None for anything else (lower case: kept as given, no copy)."""
    digest = digests.get("sha256")
    if not isinstance(digest, str):
        return None
    return digest if is_sha256(digest) else (digest.lower() if is_sha256(digest.lower()) else None)


def _bounded(text: str) -> str | None:
    """Free text from upstream (a yank reason), cut to MAX_TEXT: it reaches every report."""
    if not text:
        return None
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _resolved(page_url: str, url: str) -> str:
    """A file URL, resolved against its page's: a plain absolute one as it is (most are),
    anything else (relative, with spaces, controls, brackets or backslashes) by `urljoin`, which
    cleans what it can and refuses the rest (ValueError)."""
    if url.startswith(("https://", "http://")) and _PLAIN_URL.fullmatch(url):
        return url
    return urljoin(page_url, url)
