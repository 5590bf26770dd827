"""The upstream client against requests-mock: PEP 691 JSON, PEP 503 fallback, redirects."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import requests
import requests_mock

from reconciler.errors import UpstreamError
from reconciler.http import RetryPolicy
from reconciler.upstream import UpstreamIndex

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
        ("[" * 200_000 + "]" * 200_000, "maximum recursion depth exceeded"),
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
