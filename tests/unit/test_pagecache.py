"""Pages already read, taken from disk when their bytes are the same (reconciler/pagecache.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock

from reconciler import upstream
from reconciler.model import UpstreamProject
from reconciler.pagecache import FORMAT, MIN_CACHED_PAGE, PageCache, page_key
from reconciler.upstream import UpstreamIndex
from tests.unit.test_upstream import INDEX, JSON_PAGE, JSON_TYPE

PAGE: dict[str, Any] = {
    **JSON_PAGE,
    "project-status": {"status": "deprecated"},
    "files": [
        *JSON_PAGE["files"],
        {
            "filename": "foo-1.0.tar.gz",
            "url": "https://files.example/foo-1.0.tar.gz",
            "hashes": {"sha256": "b" * 64},
            "upload-time": "2026-01-02T03:04:05.123456+02:00",  # kept to the microsecond
            "core-metadata": {"sha256": "c" * 64},
        },
        {"filename": "foo-0.9.tar.gz", "url": "/files/foo-0.9.tar.gz", "hashes": {}},
    ],
}


@pytest.fixture(autouse=True)
def every_page_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages here are small; real pages worth keeping are not."""
    monkeypatch.setattr(upstream, "MIN_CACHED_PAGE", 0)


class Counted:
    """read_page, counting its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.read_page = upstream.read_page
        monkeypatch.setattr(upstream, "read_page", self)

    def __call__(self, *args: Any) -> UpstreamProject:
        self.calls += 1
        return self.read_page(*args)


def fetch(cache_dir: Path, page: dict[str, Any]) -> UpstreamProject | None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", json=page, headers={"Content-Type": JSON_TYPE})
        return UpstreamIndex(INDEX, requests.Session(), cache_dir=cache_dir).project("foo")


def test_a_page_whose_bytes_were_read_before_is_taken_as_read_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Counted(monkeypatch)
    first = fetch(tmp_path, PAGE)
    again = fetch(tmp_path, PAGE)
    assert reads.calls == 1
    assert first is not None and again == first and len(first.files) == 3
    assert again.status == "deprecated"
    assert {f.upload_time for f in again.files} == {f.upload_time for f in first.files}
    assert (tmp_path / "pages" / "foo.json").is_file()


def test_a_page_that_changed_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = Counted(monkeypatch)
    fetch(tmp_path, PAGE)
    changed = copy.deepcopy(PAGE)
    changed["files"][0]["yanked"] = False
    project = fetch(tmp_path, changed)
    assert reads.calls == 2
    assert project is not None and not any(f.yanked for f in project.files)
    assert fetch(tmp_path, changed) == project and reads.calls == 2  # kept in its place


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short by a crash or a full disk
        lambda text: text.replace(f'"format":{FORMAT}', '"format":999'),  # another reader's
        lambda text: text.replace('"page":"', '"page":"0'),  # another page's
        lambda text: text.replace('"files":[[', '"files":[["x"],['),  # a row of the wrong shape
        lambda _: "[]",
        lambda _: "",
    ],
)
def test_an_entry_that_is_not_what_this_reader_wrote_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Any
) -> None:
    fresh = fetch(tmp_path, PAGE)
    entry = tmp_path / "pages" / "foo.json"
    entry.write_text(damage(entry.read_text()))
    reads = Counted(monkeypatch)
    assert fetch(tmp_path, PAGE) == fresh
    assert reads.calls == 1
    assert json.loads(entry.read_text())["format"] == FORMAT  # written again


def test_unreadable_pages_and_names_that_are_not_canonical_are_not_kept(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    cache.put("foo", "k", UpstreamProject("foo", (), unreadable="not JSON"))
    cache.put("../foo", "k", UpstreamProject("../foo", ()))
    cache.put("Foo", "k", UpstreamProject("Foo", ()))
    assert not list(tmp_path.iterdir())


def test_a_cache_that_cannot_be_written_only_costs_a_read(tmp_path: Path) -> None:
    (tmp_path / "pages").write_text("a file where the directory would be")
    assert fetch(tmp_path, PAGE) == fetch(tmp_path, PAGE) is not None


def test_the_key_is_the_bytes_their_type_and_the_url_files_resolve_against() -> None:
    keys = {
        page_key(b"{}", JSON_TYPE, "https://a/simple/foo/"),
        page_key(b"{} ", JSON_TYPE, "https://a/simple/foo/"),
        page_key(b"{}", "text/html", "https://a/simple/foo/"),
        page_key(b"{}", JSON_TYPE, "https://b/simple/foo/"),
    }
    assert len(keys) == 4


def test_a_small_page_is_read_each_time_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream, "MIN_CACHED_PAGE", MIN_CACHED_PAGE)
    reads = Counted(monkeypatch)
    assert fetch(tmp_path, PAGE) == fetch(tmp_path, PAGE)
    assert reads.calls == 2 and not (tmp_path / "pages").exists()
