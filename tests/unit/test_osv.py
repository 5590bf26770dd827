"""OSV service against requests-mock: batching, pagination, withdrawn records, failing closed."""

from __future__ import annotations

import json

import pytest
import requests
import requests_mock

from reconciler.http import RetryPolicy, make_session
from reconciler.vulns import OsvService, ServiceError

BASE = "https://osv.example"


def record(vuln_id: str, **extra: object) -> dict[str, object]:
    return {
        "id": vuln_id,
        "aliases": ["CVE-2026-0001"],
        "summary": "bad",
        "affected": [
            {
                "package": {"name": "Foo", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2"}]}],
            }
        ],
        **extra,
    }


def test_batches_of_1000_and_details_only_for_returned_ids() -> None:
    pairs = [("foo", f"1.{i}") for i in range(2500)]

    def answer(request: requests.PreparedRequest, context: object) -> dict[str, object]:
        queries = json.loads(request.body or b"{}")["queries"]
        return {
            "results": [
                {"vulns": [{"id": "GHSA-1"}]} if q["version"] == "1.7" else {} for q in queries
            ]
        }

    with requests_mock.Mocker() as mock:
        batch = mock.post(f"{BASE}/v1/querybatch", json=answer)
        detail = mock.get(f"{BASE}/v1/vulns/GHSA-1", json=record("GHSA-1"))
        answer_ = OsvService(BASE, requests.Session()).query(pairs)
    assert [len(json.loads(r.body)["queries"]) for r in batch.request_history] == [1000, 1000, 500]
    assert detail.call_count == 1
    (advisory,) = answer_.findings[("foo", "1.7")]
    assert advisory.aliases == ("CVE-2026-0001",)
    assert advisory.fixed_in == ("2",)
    assert advisory.link == "https://osv.dev/vulnerability/GHSA-1"
    assert answer_.findings[("foo", "1.8")] == ()


def test_follows_next_page_token_per_query() -> None:
    responses = [
        {"json": {"results": [{"vulns": [{"id": "A"}], "next_page_token": "t"}, {}]}},
        {"json": {"results": [{"vulns": [{"id": "B"}]}]}},
    ]
    with requests_mock.Mocker() as mock:
        batch = mock.post(f"{BASE}/v1/querybatch", responses)
        mock.get(f"{BASE}/v1/vulns/A", json=record("A"))
        mock.get(f"{BASE}/v1/vulns/B", json=record("B"))
        answer = OsvService(BASE, requests.Session()).query([("foo", "1"), ("foo", "2")])
    assert json.loads(batch.request_history[1].body)["queries"][0]["page_token"] == "t"
    assert [a.id for a in answer.findings[("foo", "1")]] == ["A", "B"]


def test_withdrawn_records_do_not_count() -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/v1/querybatch", json={"results": [{"vulns": [{"id": "W"}]}]})
        mock.get(f"{BASE}/v1/vulns/W", json=record("W", withdrawn="2026-01-01T00:00:00Z"))
        answer = OsvService(BASE, requests.Session()).query([("foo", "1")])
    assert answer.findings[("foo", "1")] == ()


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 503},
        {"exc": requests.ConnectionError("refused")},
        {"text": "not json"},
        {"json": {"results": []}},
    ],
)
def test_failures_raise_service_error(failure: dict[str, object]) -> None:
    session = make_session(retries=RetryPolicy(retries=1, backoff=0))
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/v1/querybatch", **failure)
        with pytest.raises(ServiceError):
            OsvService(BASE, session).query([("foo", "1")])


@pytest.mark.parametrize(
    "results",
    [
        [{"vulns": 5}],
        [{"vulns": [{"modified": "2026-01-01T00:00:00Z"}]}],  # no id
        [{"vulns": [{"id": "GHSA-1"}], "next_page_token": 7}],
        ["not an object"],
    ],
)
def test_malformed_batch_answers_fail_closed_in_one_line(results: list[object]) -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/v1/querybatch", json={"results": results})
        mock.get(f"{BASE}/v1/vulns/GHSA-1", json=record("GHSA-1"))
        with pytest.raises(ServiceError) as failed:
            OsvService(BASE, requests.Session()).query([("foo", "1")])
    assert "\n" not in str(failed.value)


@pytest.mark.parametrize(
    "detail", [{"aliases": []}, record("GHSA-2"), {**record("GHSA-1"), "affected": 5}]
)
def test_a_record_without_its_id_or_of_another_shape_fails_closed(detail: object) -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/v1/querybatch", json={"results": [{"vulns": [{"id": "GHSA-1"}]}]})
        mock.get(f"{BASE}/v1/vulns/GHSA-1", json=detail)
        with pytest.raises(ServiceError, match="GHSA-1"):
            OsvService(BASE, requests.Session()).query([("foo", "1")])


def test_pagination_that_never_ends_is_bounded() -> None:
    with requests_mock.Mocker() as mock:
        batch = mock.post(f"{BASE}/v1/querybatch", json={"results": [{"next_page_token": "again"}]})
        with pytest.raises(ServiceError, match="kept paging after 100 pages"):
            OsvService(BASE, requests.Session()).query([("foo", "1")])
    assert batch.call_count == 100
