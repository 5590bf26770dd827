"""Core metadata from upstream: PEP 658 files, wheels read by Range requests, the cache."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from reconciler.errors import UpstreamError
from reconciler.http import make_session
from reconciler.metadata import MetadataReader, MetadataUnavailable
from reconciler.model import UpstreamFile
from reconciler.upstream import UpstreamIndex
from tests.conftest import days_ago, fast_retries
from tests.servers.upstream import FakeFile, FakeUpstream

REQUIRES = ("idna>=2.5", 'pysocks!=1.5.7; extra == "socks"')


def files(upstream: FakeUpstream, name: str):  # type: ignore[no-untyped-def]
    project = UpstreamIndex(upstream.index_url, make_session(None, 2)).project(name)
    assert project is not None
    return {f.filename: f for f in project.files}


def test_pep658_metadata_is_read_verified_and_cached(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    assert wheel.has_metadata and wheel.metadata_sha256
    reader = MetadataReader(make_session(None, 2), tmp_path)
    assert reader.read(wheel).requires_dist == REQUIRES
    assert upstream.count("/files/req-1.0-py3-none-any.whl.metadata") == 1
    assert reader.read(wheel).requires_dist == REQUIRES  # from the cache: no request
    assert upstream.count("/files/") == 1


def test_a_metadata_file_that_does_not_match_its_digest_gives_way_to_the_wheel(
    upstream: FakeUpstream,
) -> None:
    (fake,) = upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    fake.metadata = b"Metadata-Version: 2.1\nName: req\nVersion: 1.0\nRequires-Dist: evil\n"
    assert MetadataReader(make_session(None, 2), None).read(wheel).requires_dist == REQUIRES


@pytest.mark.parametrize("path", [".metadata", ""])
def test_an_outage_is_not_an_absence_of_dependencies(upstream: FakeUpstream, path: str) -> None:
    upstream.serve_metadata = path == ".metadata"
    upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    upstream.fail_next[f"/files/req-1.0-py3-none-any.whl{path}"] = 100
    reader = MetadataReader(make_session(None, 2, fast_retries()), None)
    with pytest.raises(UpstreamError, match="503") as failed:
        reader.read_many([wheel])
    assert not isinstance(failed.value, MetadataUnavailable)


@pytest.mark.parametrize("ranges", [True, False])
def test_without_pep658_the_wheel_itself_is_read(upstream: FakeUpstream, ranges: bool) -> None:
    upstream.serve_metadata = False
    upstream.serve_ranges = ranges
    upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    assert not wheel.has_metadata
    assert MetadataReader(make_session(None, 2), None).read(wheel).requires_dist == REQUIRES
    statuses = upstream.statuses
    assert (206 in statuses) is ranges


def test_an_sdist_alone_has_no_readable_dependencies(upstream: FakeUpstream) -> None:
    upstream.add_release("req", "1.0", days_ago(30), wheel=False, sdist=True, requires=REQUIRES)
    sdist = files(upstream, "req")["req-1.0.tar.gz"]
    reader = MetadataReader(make_session(None, 2), None)
    with pytest.raises(MetadataUnavailable):
        reader.read(sdist)
    assert reader.read_many([sdist]) == {}


def test_a_corrupt_wheel_is_unreadable_not_a_crash(upstream: FakeUpstream) -> None:
    upstream.serve_metadata = False
    (fake,) = upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    assert fake.content is not None
    with zipfile.ZipFile(io.BytesIO(fake.content)) as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith("METADATA"))
    broken = bytearray(fake.content)
    broken[member.header_offset + 30 + len(member.filename) + 2] ^= 0xFF  # its compressed bytes
    fake.content = bytes(broken)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    assert MetadataReader(make_session(None, 2), None).read_many([wheel]) == {}


def test_metadata_that_inflates_past_the_cap_is_refused_not_read(upstream: FakeUpstream) -> None:
    huge = b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\nSummary: " + b"a" * (8 << 20) + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb-1.0.dist-info/METADATA", huge)
        archive.writestr("bomb/__init__.py", b"")
    assert len(buffer.getvalue()) < 64 * 1024  # a small wheel
    upstream.add_file(
        "bomb",
        FakeFile("bomb-1.0-py3-none-any.whl", days_ago(30), buffer.getvalue(), metadata=huge),
    )
    wheel = files(upstream, "bomb")["bomb-1.0-py3-none-any.whl"]
    reader = MetadataReader(make_session(None, 2), None)
    with pytest.raises(MetadataUnavailable, match="METADATA is larger than"):
        reader.read(wheel)
    assert reader.read_many([wheel]) == {}


def test_a_release_declaring_thousands_of_dependencies_is_not_believed(
    upstream: FakeUpstream,
) -> None:
    requires = tuple(f"dep{n}" for n in range(5000))
    upstream.add_release("greedy", "1.0", days_ago(30), requires=requires)
    wheel = files(upstream, "greedy")["greedy-1.0-py3-none-any.whl"]
    reader = MetadataReader(make_session(None, 2), None)
    with pytest.raises(MetadataUnavailable, match="declares 5000 dependencies"):
        reader.read(wheel)


def test_an_archive_claiming_a_central_directory_of_gigabytes_is_refused_not_read() -> None:
    """A 5 GiB wheel (by its size in the index) whose end record claims a 3.75 GiB directory:
    the read is refused before any memory is taken for it."""
    size, claimed = 5 << 30, 0xF0000000
    end_record = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, claimed, size - 22 - claimed, 0)

    def ranges(request: Any, context: Any) -> bytes:
        first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
        start, end = (size - int(last), size - 1) if not first else (int(first), int(last))
        context.status_code = 206
        context.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        body = bytearray(end - start + 1)
        if end == size - 1:
            body[-22:] = end_record
        return bytes(body)

    url = "https://files.example/bomb-1.0-py3-none-any.whl"
    wheel = UpstreamFile("bomb-1.0-py3-none-any.whl", url, "1.0", "a" * 64, None, size=size)
    with requests_mock.Mocker() as mock:
        mock.get(url, content=ranges)
        reader = MetadataReader(make_session(None, 2), None)
        with pytest.raises(MetadataUnavailable, match="refused"):
            reader.read(wheel)
    assert all(r.headers["Range"] for r in mock.request_history)


def test_an_advertised_metadata_file_that_is_not_there_gives_way_to_the_wheel(
    upstream: FakeUpstream,
) -> None:
    (fake,) = upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    assert wheel.has_metadata
    fake.metadata = None  # the page says there is one; the server answers 404
    assert MetadataReader(make_session(None, 2), None).read(wheel).requires_dist == REQUIRES
    assert upstream.statuses[404] == 1


def test_a_listed_wheel_the_server_does_not_have_stops_the_plan(upstream: FakeUpstream) -> None:
    """Fail closed: a caching proxy answers 404 while its own upstream is down, and a release
    must not be admitted without its dependencies read."""
    upstream.serve_metadata = False
    upstream.add_release("req", "1.0", days_ago(30), requires=REQUIRES)
    wheel = files(upstream, "req")["req-1.0-py3-none-any.whl"]
    upstream.remove_version("req", "1.0")
    reader = MetadataReader(make_session(None, 2), None)
    with pytest.raises(UpstreamError, match="answered 404") as failed:
        reader.read_many([wheel])
    assert not isinstance(failed.value, MetadataUnavailable)
