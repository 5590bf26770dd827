"""The vulnerability services against local servers, and the audit's request budget."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler import operations
from reconciler.http import make_session
from reconciler.model import ActualState, Advisory, RegistryFile
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import OsvService, PypiService, SafetyService, ServiceError, safety_db
from tests.conftest import FROZEN_NOW, days_ago, make_desired
from tests.servers.base import FakeServer, QuietHandler
from tests.servers.osv import FakeOsv
from tests.servers.upstream import FakeFile, FakeUpstream

SAFETY_DB = Path(__file__).resolve().parent.parent / "data" / "safety-db"


def mirrored_world(upstream: FakeUpstream, projects: int, versions: int) -> ActualState:
    """`projects` x `versions` releases upstream, all of them held by the registry."""
    held = []
    for p in range(projects):
        name = f"pkg{p}"
        for v in range(versions):
            fake = upstream.add_file(
                name, FakeFile(f"{name}-1.{v}-py3-none-any.whl", days_ago(100), b"x")
            )
            held.append(RegistryFile(name, f"1.{v}", fake.filename, fake.sha256))
    return ActualState(files=tuple(held))


def test_audit_of_2500_mirrored_versions_costs_three_osv_batches(
    upstream: FakeUpstream, osv: FakeOsv, tmp_path: Path
) -> None:
    actual = mirrored_world(upstream, projects=50, versions=50)
    osv.add("GHSA-one", "pkg7", ["1.3", "1.4"], fixed="1.5")
    osv.add("MAL-2026-9", "pkg9", ["1.0"])
    index = UpstreamIndex(upstream.index_url, make_session(None, 16), make_session(None, 1))
    service = OsvService(osv.url, make_session(None, 16), record_cache=tmp_path / "osv")

    plan = operations.make_plan(
        make_desired(), actual, index, [service], FROZEN_NOW, lambda: FROZEN_NOW
    )

    assert osv.batch_sizes == [1000, 1000, 500]
    assert osv.count("/v1/querybatch") == 3
    assert osv.count("/v1/vulns/") == 2  # one per id found, not one per version
    quarantined = {(a.name, a.version) for a in plan.actions if a.quarantine}
    assert quarantined == {("pkg7", "1.3"), ("pkg7", "1.4"), ("pkg9", "1.0")}

    # The next audit finds the same records unchanged (same `modified`): batches only.
    operations.make_plan(make_desired(), actual, index, [service], FROZEN_NOW, lambda: FROZEN_NOW)
    assert osv.count("/v1/querybatch") == 6 and osv.count("/v1/vulns/") == 2
    osv.withdraw("GHSA-one")  # `modified` moves on: the record is fetched again
    plan = operations.make_plan(
        make_desired(), actual, index, [service], FROZEN_NOW, lambda: FROZEN_NOW
    )
    assert osv.count("/v1/vulns/") == 3
    assert {(a.name, a.version) for a in plan.actions if a.quarantine} == {("pkg9", "1.0")}


def test_pypi_service_reads_the_per_version_document(upstream: FakeUpstream) -> None:
    upstream.add_file("foo", FakeFile("foo-1.0-py3-none-any.whl", days_ago(30), b"x"))
    upstream.add_file("foo", FakeFile("foo-2.0-py3-none-any.whl", days_ago(30), b"y"))
    upstream.add_vulnerability("PYSEC-1", "foo", ["1.0"], fixed="2.0", aliases=("CVE-1",))
    upstream.add_vulnerability("PYSEC-2", "foo", ["1.0"], withdrawn=True)
    service = PypiService(f"{upstream.url}/pypi", make_session(None, 4))

    answer = service.query([("foo", "1.0"), ("foo", "2.0"), ("foo", "3.0")])

    (advisory,) = answer.findings[("foo", "1.0")]
    assert advisory == Advisory(
        "PYSEC-1",
        ("CVE-1",),
        "details of PYSEC-1",
        "https://osv.dev/vulnerability/PYSEC-1",
        ("2.0",),
    )
    assert answer.findings[("foo", "2.0")] == ()
    assert answer.unanswered == {("foo", "3.0")}  # unknown to PyPI: unchecked, not clean
    assert upstream.count("/pypi/foo/json") == 0


def test_safety_database_in_the_newer_schema(tmp_path: Path) -> None:
    database = {
        "meta": {"last_updated": "2026-10-01 00:00:00", "base_domain": "https://data.example"},
        "vulnerable_packages": {
            "Foo_Bar": [
                {
                    "id": "pyup.io-1",
                    "cve": None,
                    "advisory": "old bug",
                    "specs": ["<1.0", ">=2.0,<2.1"],
                    "v": "<1.0,>=2.0,<2.1",
                    "more_info_path": "/v/1",
                    "fixed_versions": ["2.1"],
                }
            ]
        },
    }
    (tmp_path / "insecure_full.json").write_text(json.dumps(database))
    answer = SafetyService.from_directory(tmp_path).query(
        [("foo-bar", "0.9"), ("foo-bar", "1.5"), ("foo-bar", "2.0.3")]
    )
    assert [a.id for a in answer.findings[("foo-bar", "0.9")]] == ["pyup.io-1"]
    assert answer.findings[("foo-bar", "1.5")] == ()
    (advisory,) = answer.findings[("foo-bar", "2.0.3")]
    assert advisory.link == "https://data.example/v/1" and advisory.fixed_in == ("2.1",)
    assert answer.database == "last updated 2026-10-01 00:00:00"


def test_safety_free_database_gives_fixes_links_dates_and_whole_words(tmp_path: Path) -> None:
    """The free database's flat layout: no base_domain, an epoch timestamp, no fixed_versions."""
    long_text = "Jinja2 before 2.11.3 allows a ReDoS " + "because of the urlize filter " * 10
    database = {
        "$meta": {"advisory": "PyUp.io metadata", "timestamp": 1625119202},
        "jinja2": [
            {
                "id": "pyup.io-39525",
                "cve": "CVE-2020-28493",
                "advisory": long_text,
                "specs": ["<2.11.3"],
                "v": "<2.11.3",
                "more_info_path": "/vulnerabilities/CVE-2020-28493/39525/",
            },
            {
                "id": "pyup.io-2",
                "cve": "CVE-2021-1",
                "advisory": "open ended",
                "specs": ["<=3.0"],
                "v": "<=3.0",
            },
        ],
    }
    (tmp_path / "insecure_full.json").write_text(json.dumps(database))
    answer = SafetyService.from_directory(tmp_path).query([("jinja2", "2.10")])
    fixed, open_ended = answer.findings[("jinja2", "2.10")]
    assert fixed.fixed_in == ("2.11.3",) and open_ended.fixed_in == ()
    assert fixed.link == "https://data.safetycli.com/vulnerabilities/CVE-2020-28493/39525/"
    assert open_ended.link == "https://nvd.nist.gov/vuln/detail/CVE-2021-1"  # no page of its own
    assert answer.database == "last updated 2021-07-01 06:00 UTC"
    assert fixed.summary.endswith(" …") and len(fixed.summary) <= 200
    assert long_text.startswith(fixed.summary.removesuffix(" …") + " ")  # cut between words


def test_safety_missing_database_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="safety database in .* could not be read"):
        SafetyService.from_directory(tmp_path / "absent").query([("foo", "1.0")])


def test_safety_directory_is_read_without_the_safety_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An offline directory is one JSON file: no safety import (half a second of a plan)."""
    monkeypatch.setitem(sys.modules, "safety", None)  # `import safety` raises ImportError
    shutil.copy(SAFETY_DB / "insecure_full.json", tmp_path)
    answer = SafetyService.from_directory(tmp_path).query([("foo-bar", "1.1.5")])
    assert answer.findings[("foo-bar", "1.1.5")] and answer.database


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b"[" * 100_000, "nested too deeply"),
        (b"{}" + b" " * 100, "over 64 bytes"),
    ],
)
def test_safety_database_that_is_not_one_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, why: str
) -> None:
    monkeypatch.setattr(safety_db, "MAX_DATABASE_BYTES", 64 if why.startswith("over") else 1 << 20)
    (tmp_path / "insecure_full.json").write_bytes(content)
    with pytest.raises(ServiceError, match=f"could not be read: .*{why}"):
        SafetyService.from_directory(tmp_path).query([("foo", "1.0")])


class _SafetyApi(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802
        fake: Any = self.fake
        fake.keys.append(self.headers.get("X-Api-Key"))
        body = (SAFETY_DB / "insecure_full.json").read_bytes()
        self.send_body(200, body, "application/json")


def test_safety_api_key_goes_only_in_its_header() -> None:
    with FakeServer(_SafetyApi) as server:
        server.keys = []  # type: ignore[attr-defined]
        service = SafetyService.from_api_key("sk-secret", mirror=f"{server.url}/db/")
        answer = service.query([("foo-bar", "1.1")])
    assert server.keys == ["sk-secret"]  # type: ignore[attr-defined]
    assert [a.id for a in answer.findings[("foo-bar", "1.1")]] == ["pyup.io-99999"]
    assert answer.findings[("foo-bar", "1.1")][0].aliases == ("CVE-2026-11111",)


def test_findings_unite_by_alias_and_a_malicious_id_stays_primary() -> None:
    known: list[Advisory] = []
    operations.merge_advisories(known, [Advisory("GHSA-1", ("CVE-1",), link="https://a")])
    operations.merge_advisories(known, [Advisory("PYSEC-1", ("CVE-1", "GHSA-1"), fixed_in=("2",))])
    operations.merge_advisories(known, [Advisory("GHSA-2")])
    assert [a.id for a in known] == ["GHSA-1", "GHSA-2"]
    assert known[0].aliases == ("CVE-1", "PYSEC-1") and known[0].fixed_in == ("2",)
    operations.merge_advisories(known, [Advisory("MAL-1", ("GHSA-2",))])
    assert known[-1].id == "MAL-1" and known[-1].malicious


def test_safety_schema_2_entries_with_typed_ids(tmp_path: Path) -> None:
    database = {
        "meta": {"schema_version": "2.0.0", "base_domain": "https://data.example"},
        "vulnerable_packages": {
            "foo": [
                {
                    "ids": [{"type": "pyup", "id": "70612"}, {"type": "cve", "id": "CVE-2024-1"}],
                    "specs": ["<2.0"],
                    "advisory": "bad",
                    "more_info_path": "/v/70612",
                }
            ]
        },
    }
    (tmp_path / "insecure_full.json").write_text(json.dumps(database))
    (advisory,) = (
        SafetyService.from_directory(tmp_path).query([("foo", "1.0")]).findings[("foo", "1.0")]
    )
    assert (advisory.id, advisory.aliases) == ("pyup.io-70612", ("CVE-2024-1",))


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        ({"foo": [{"id": "pyup.io-1", "specs": ["<=1.x", "<2.0"]}]}, "unreadable specifier"),
        ({"foo": ["<2.0"]}, "malformed"),
        ({"foo": [{"specs": ["<2.0"]}]}, "malformed"),
    ],
)
def test_safety_database_it_cannot_read_fails_closed(
    tmp_path: Path, packages: dict[str, Any], message: str
) -> None:
    (tmp_path / "insecure_full.json").write_text(json.dumps({"$meta": {}, **packages}))
    with pytest.raises(ServiceError, match=message):
        SafetyService.from_directory(tmp_path).query([("foo", "1.0")])


def test_a_summary_is_never_emptied_by_one_long_word() -> None:
    from reconciler.vulns.interface import SUMMARY_LIMIT, summary

    long_word = "https://example.org/" + "x" * 300
    assert summary(long_word) == long_word[: SUMMARY_LIMIT - 1] + "…"
    assert summary("short and sweet") == "short and sweet"


def test_a_safety_timestamp_that_is_not_seconds_is_shown_as_it_is(tmp_path: Path) -> None:
    database = {"$meta": {"timestamp": 1e20}, "foo": []}
    (tmp_path / "insecure_full.json").write_text(json.dumps(database))
    answer = SafetyService.from_directory(tmp_path).query([("foo", "1.0")])
    assert answer.database == "last updated timestamp 1e+20"
