"""Hostile PEP 691 pages block their own project (unreadable), whatever breaks in them."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import requests_mock

from reconciler.upstream import UpstreamIndex

INDEX = "https://pypi.example/simple"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def page(files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"meta": {"api-version": "1.4"}, "name": "foo", "files": files, **extra}


def wheel(**fields: Any) -> dict[str, Any]:
    return {
        "filename": "foo-1.0-py3-none-any.whl",
        "url": "https://files.example/foo-1.0-py3-none-any.whl",
        "hashes": {"sha256": "a" * 64},
        **fields,
    }


@pytest.mark.parametrize(
    "document",
    [
        page([wheel(**{"upload-time": "0001-01-01T00:00:00+01:00"})]),  # before year 1 in UTC
        page([wheel(**{"upload-time": "9999-12-31T23:59:59-01:00"})]),  # after 9999
        page([wheel(**{"upload-time": "2026-01-02T03:04:05+25:00"})]),  # no such offset
        page([wheel(**{"upload-time": "2026-W01-1"})]),  # ISO, but not PEP 700's form
        page([], **{"project-status": {"status": ["active"]}}),
        page([], **{"project-status": {"status": {}}}),
        page([wheel(url="https://[files.example/foo-1.0-py3-none-any.whl")]),
        {"meta": {"api-version": "2.0"}, "name": "foo", "files": []},
    ],
    ids=[
        "year-1",
        "year-9999",
        "offset-25h",
        "week-date",
        "status-list",
        "status-object",
        "bracket-url",
        "api-2",
    ],  # fmt: skip
)
def test_a_hostile_page_blocks_only_its_project(document: dict[str, Any]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", json=document, headers={"Content-Type": JSON_TYPE})
        project = UpstreamIndex(INDEX, requests.Session()).project("foo")
    assert project is not None and project.unreadable is not None


@pytest.mark.parametrize("version", ["1", "1.0.0", "1.1"])
def test_an_api_version_of_major_one_in_any_spelling_is_read(version: str) -> None:
    document = {"meta": {"api-version": version}, "name": "foo", "files": [wheel()]}
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", json=document, headers={"Content-Type": JSON_TYPE})
        project = UpstreamIndex(INDEX, requests.Session()).project("foo")
    assert project is not None and project.unreadable is None and len(project.files) == 1


def test_a_url_with_a_tab_is_cleaned_as_urljoin_cleans_it() -> None:
    document = page([wheel(url="https://files.example/foo-1.0-py3-none\t-any.whl")])
    with requests_mock.Mocker() as mock:
        mock.get(f"{INDEX}/foo/", json=document, headers={"Content-Type": JSON_TYPE})
        project = UpstreamIndex(INDEX, requests.Session()).project("foo")
    assert project is not None
    assert project.files[0].url == "https://files.example/foo-1.0-py3-none-any.whl"
