"""The upstream client against requests-mock: PEP 691 JSON, PEP 503 fallback, redirects."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import requests_mock

from reconciler.errors import UpstreamError
from reconciler.http import RetryPolicy, make_session
from reconciler.upstream import UpstreamIndex
from tests.conftest import days_ago
from tests.servers.base import Gate
from tests.servers.upstream import FakeFile, FakeUpstream

INDEX = "https://pypi.example/simple"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
SHA = "a" * 64
JSON_PAGE = {
    "meta": {"api-version": "1.1"},
    "name": "foo",
    "versions": ["1.0"],
    "files": [
        {
            "filename": "foo-1.0-py3-none-any.whl",
            "url": "https://files.example/foo-1.0-py3-none-any.whl",
            "hashes": {"sha256": SHA},
            "requires-python": ">=3.9",
            "size": 123,
            "upload-time": "2026-01-02T03:04:05.000000Z",
            "yanked": "broken",
        },
        {"filename": "foo-1.0.zip.asc", "url": "x", "hashes": {}},
    ],
}


def index() -> UpstreamIndex:
    return UpstreamIndex(INDEX, requests.Session())


def test_json_page_is_preferred_and_parsed() -> None:
    with requests_mock.Mocker() as mock:
        page = mock.get(
            f"{INDEX}/foo/",
            json=JSON_PAGE,
            headers={"Content-Type": "application/vnd.pypi.simple.v1+json"},
        )
        project = index().project("foo")
    assert "application/vnd.pypi.simple.v1+json" in page.last_request.headers["Accept"]
    assert project is not None
    (only,) = project.files
    assert only.sha256 == SHA and only.size == 123 and only.requires_python == ">=3.9"
    assert only.upload_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert only.yanked and only.yanked_reason == "broken"


def test_empty_or_absurd_page_values_say_nothing() -> None:
    """An empty Requires-Python and a size that is not a count are absent, as the registry's
    own page writes them: a mirrored page then matches upstream's, plan after plan."""
    entry = {**JSON_PAGE["files"][0], "requires-python": "", "size": -1}  # type: ignore[dict-item]
    with requests_mock.Mocker() as mock:
        mock.get(
            f"{INDEX}/foo/",
            json={**JSON_PAGE, "files": [entry]},
            headers={"Content-Type": "application/vnd.pypi.simple.v1+json"},
        )
        project = index().project("foo")
    assert project is not None
    (only,) = project.files
    assert only.requires_python is None and only.size is None


def test_html_fallback_has_no_upload_time() -> None:
    html = (
        f'<a href="https://files.example/foo-1.0.tar.gz#sha256={SHA}" '
        'data-requires-python="&gt;=3.8">foo-1.0.tar.gz</a>'
    )
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", text=html, headers={"Content-Type": "text/html"})
        project = index().project("foo")
    assert project is not None
    (only,) = project.files
    assert only.upload_time is None and only.sha256 == SHA and only.requires_python == ">=3.8"


def test_missing_project_is_none_and_errors_raise() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/gone/", status_code=404)
        mock.get(f"{INDEX}/broken/", status_code=403)
        assert index().project("gone") is None
        with pytest.raises(UpstreamError, match="403"):
            index().project("broken")


@pytest.mark.parametrize(
    "location", ["https://evil.example/simple/foo/", "/other-index/simple/foo/"]
)
def test_redirect_outside_the_index_is_refused(location: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", status_code=302, headers={"Location": location})
        with pytest.raises(UpstreamError, match="outside the index"):
            index().project("foo")


def test_unsafe_file_names_and_naive_times_from_upstream() -> None:
    page = {
        **JSON_PAGE,
        "files": [
            {**JSON_PAGE["files"][0], "upload-time": "2026-01-02T03:04:05"},  # type: ignore[dict-item]
            {
                "filename": "foo-1.0-1/..-py3-none-any.whl",
                "url": "https://files.example/x.whl",
                "hashes": {"sha256": SHA.upper()},
            },
        ],
    }
    with requests_mock.Mocker() as mock:
        mock.get(
            f"{INDEX}/foo/",
            json=page,
            headers={"Content-Type": "application/vnd.pypi.simple.v1+json"},
        )
        project = index().project("foo")
    assert project is not None
    (only,) = project.files
    assert only.upload_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_retry_after_is_capped() -> None:
    assert RetryPolicy().urllib3().parse_retry_after("86400") == 60.0
    assert RetryPolicy().urllib3().parse_retry_after("2") == 2.0
    assert RetryPolicy().delay(0, "86400") == 60.0
    assert RetryPolicy(backoff=0.5).delay(3) == 4.0


def test_redirect_on_the_same_index_is_followed() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", status_code=301, headers={"Location": "/simple/foo-new/"})
        mock.get(
            f"{INDEX}/foo-new/",
            json={**JSON_PAGE, "files": []},
            headers={"Content-Type": "application/vnd.pypi.simple.v1+json"},
        )
        project = index().project("foo")
    assert project is not None and project.files == ()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("[" * 200_000 + "]" * 200_000, "JSON nested too deeply"),
        (json.dumps({"meta": {"api-version": "1.1"}, "name": "foo", "files": 5}), "validation"),
        (json.dumps({"meta": {"api-version": "2.0"}, "name": "foo", "files": []}), "version"),
        ("not json", "Expecting value"),
    ],
)
def test_a_page_that_cannot_be_read_blocks_that_project_only(body: str, why: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", text=body, headers={"Content-Type": JSON_TYPE})
        project = index().project("foo")
    assert project is not None and project.files == ()
    assert project.unreadable is not None and why in project.unreadable


@pytest.mark.timed_wait
def test_a_page_that_drips_or_swells_blocks_its_project_within_bounds(
    upstream: FakeUpstream,
) -> None:
    upstream.add_release("slow", "1.0", days_ago(30))
    upstream.add_release("huge", "1.0", days_ago(30))
    for n in range(300):
        upstream.add_release("huge", f"1.{n}", days_ago(30), wheel=False, sdist=True)
    upstream.drip["slow"] = 0.05
    index = UpstreamIndex(
        upstream.index_url, make_session(None, 2), page_bytes=64 * 1024, page_seconds=0.3
    )
    slow, huge = index.project("slow"), index.project("huge")
    assert slow is not None and slow.unreadable == "answered too slowly (over 0.3 s)"
    assert huge is not None and huge.unreadable == "answered more than 65536 bytes"


def test_upstream_text_is_bounded_before_anything_renders_it() -> None:
    page = json.loads(json.dumps(JSON_PAGE))
    page["files"][0]["yanked"] = "r" * (20 << 20)  # a 20 MiB yank reason
    page["files"].append(
        {**page["files"][0], "filename": "foo-1.0.tar.gz", "requires-python": ">=3," * 10_000}
    )
    page["files"].append({**page["files"][0], "filename": "foo-1.0-py3-none-" + "x" * 300 + ".whl"})
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", json=page, headers={"Content-Type": JSON_TYPE})
        project = index().project("foo")
    assert project is not None
    (wheel,) = project.files  # the absurd Requires-Python and file name are left out
    assert wheel.yanked_reason is not None and len(wheel.yanked_reason) == 1000


@pytest.mark.timed_wait
def test_a_download_that_drips_is_cut_at_its_deadline(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler import upstream as module
    from reconciler.cancel import Cancellation

    monkeypatch.setattr(module, "DOWNLOAD_SECONDS", 0.3)
    monkeypatch.setattr(module, "MIN_DOWNLOAD_RATE", 1 << 30)
    gate = Gate()  # the server sends 64 KiB, then nothing: a read never times out by itself
    big = FakeFile("big-1.0-py3-none-any.whl", days_ago(30), size=1 << 20, gate=gate)
    big.gate_after = 64 * 1024
    upstream.add_file("big", big)
    index = UpstreamIndex(upstream.index_url, make_session(None, 2), timeout=60)
    try:
        with (
            pytest.raises(UpstreamError, match="was too slow"),
            index.open_file(
                f"{upstream.url}/files/{big.filename}", 1 << 20, Cancellation()
            ) as chunks,
        ):
            for _ in chunks:
                pass
    finally:
        gate.open()


def test_a_digest_that_is_not_a_sha256_is_no_digest() -> None:
    page = json.loads(json.dumps(JSON_PAGE))
    page["files"][0]["hashes"]["sha256"] = "../../../home/user/.bashrc"
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", json=page, headers={"Content-Type": JSON_TYPE})
        project = index().project("foo")
    assert project is not None and project.files[0].sha256 is None
