"""An sdist's build requirements (PEP 518): read from its pyproject.toml, pip's fallback
without one, and refused when the archive or the file is not what an sdist holds."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from reconciler import buildreqs
from reconciler.buildreqs import FALLBACK, BuildInfoUnavailable, build_requires
from reconciler.http import make_session
from reconciler.model import UpstreamFile
from reconciler.upstream import UpstreamIndex
from tests.conftest import days_ago
from tests.servers.upstream import FakeFile, FakeUpstream
from tests.servers.wheels import make_sdist

PYPROJECT = '[build-system]\nrequires = ["hatchling>=1.20", "wheel; python_version < \'3.8\'"]\n'


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_build_system_table_is_read_and_pip_s_fallback_used_without_one(
    tmp_path: Path,
) -> None:
    name, data = make_sdist("app", "1.0", pyproject=PYPROJECT)
    assert build_requires(write(tmp_path, name, data), name) == (
        "hatchling>=1.20",
        "wheel; python_version < '3.8'",
    )
    name, data = make_sdist("old", "1.0")  # no pyproject.toml: a setup.py project
    assert build_requires(write(tmp_path, name, data), name) == FALLBACK
    name, data = make_sdist("tool", "1.0", pyproject="[tool.black]\nline-length = 99\n")
    assert build_requires(write(tmp_path, name, data), name) == FALLBACK


def test_a_zip_sdist_is_read_too(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app-1.0/PKG-INFO", "Name: app\n")
        archive.writestr("app-1.0/pyproject.toml", PYPROJECT)
    path = write(tmp_path, "app-1.0.zip", buffer.getvalue())
    assert build_requires(path, "app-1.0.zip")[0] == "hatchling>=1.20"


def tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ({"a/pyproject.toml": b"[build-system\n"}, "pyproject.toml"),
        ({"a/pyproject.toml": b"[build-system]\nrequires = 'setuptools'\n"}, "not a list"),
        ({"a/pyproject.toml": b"[build-system]\nrequires = ['not a req !!']\n"}, "not a req"),
        ({"a/pyproject.toml": b"x = " + b"[" * 100_000}, "pyproject.toml"),  # nesting
        ({"a/pyproject.toml": b"#" * (2 * 1024 * 1024)}, "larger than"),
    ],
)
def test_what_is_not_an_sdists_build_table_is_unavailable_not_a_crash(
    tmp_path: Path, members: dict[str, bytes], why: str
) -> None:
    path = write(tmp_path, "a-1.0.tar.gz", tarball(members))
    with pytest.raises(BuildInfoUnavailable, match=why):
        build_requires(path, "a-1.0.tar.gz")
    garbage = write(tmp_path, "b-1.0.tar.gz", b"not an archive")
    with pytest.raises(BuildInfoUnavailable, match="not a readable archive"):
        build_requires(garbage, "b-1.0.tar.gz")


def test_dot_slash_members_links_and_bombs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotted = write(
        tmp_path, "a-1.0.tar.gz", tarball({"./a-1.0/pyproject.toml": PYPROJECT.encode()})
    )
    assert build_requires(dotted, "a-1.0.tar.gz")[0] == "hatchling>=1.20"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("b-1.0/pyproject.toml")
        link.type, link.linkname = tarfile.SYMTYPE, "b-1.0/pyproject.toml"
        archive.addfile(link)
    linked = write(tmp_path, "b-1.0.tar.gz", buffer.getvalue())
    with pytest.raises(BuildInfoUnavailable, match="not a file"):
        build_requires(linked, "b-1.0.tar.gz")
    monkeypatch.setattr(buildreqs, "MAX_UNPACKED", 1024 * 1024)
    bomb = tarball({"c-1.0/data.bin": bytes(4 * 1024 * 1024), "c-1.0/pyproject.toml": b""})
    with pytest.raises(BuildInfoUnavailable, match="too large"):
        build_requires(write(tmp_path, "c-1.0.tar.gz", bomb), "c-1.0.tar.gz")


def test_an_sdist_whose_bytes_are_not_what_the_index_says_is_unavailable_and_not_cached(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    good = upstream.add_file("built", FakeFile("built-1.0.tar.gz", days_ago(30), size=1000))
    index = UpstreamIndex(upstream.index_url, make_session(None, 4), cache_dir=tmp_path)
    url = f"{upstream.url}/files/{good.filename}"
    lying = UpstreamFile(good.filename, url, "1.0", "0" * 64, days_ago(30), size=1000)
    (why,) = index.build_requirements([lying]).values()
    assert "sha256 mismatch" in why
    # Nothing unverified is left behind, and a bad download is not remembered as the answer.
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
