"""The security promise end to end: advisories block, the audit quarantines, drift reports.

Real local servers (fake upstream with PyPI's JSON API, fake OSV), the real CLI, the directory
registry on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import installed_version, pip_install
from tests.servers.upstream import FakeFile

SAFETY_DB = Path(__file__).resolve().parent.parent / "data" / "safety-db"


def seed(workspace: Workspace, requirements: str = "foo-bar>=1\n") -> None:
    upstream = workspace.upstream
    upstream.add_release("foo-bar", "1.0", days_ago(100))
    upstream.add_release("foo-bar", "1.1", days_ago(40))
    upstream.add_release("foo-bar", "1.2", days_ago(3))
    upstream.add_release("baz", "2.0", days_ago(30))
    workspace.requirements(requirements)


def held(workspace: Workspace) -> set[tuple[str, str]]:
    files = (workspace.registry / "simple").glob("*/index.json")
    return {
        (path.parent.name, entry["filename"].split("-")[1])
        for path in files
        for entry in json.loads(path.read_text())["files"]
    }


def served(workspace: Workspace) -> dict[str, tuple[int, bytes]]:
    """Every file the registry serves (pages and distributions), with its mtime and bytes."""
    return {
        str(path): (path.stat().st_mtime_ns, path.read_bytes())
        for top in ("simple", "files")
        for path in (workspace.registry / top).rglob("*")
        if path.is_file()
    }


def plan_json(workspace: Workspace) -> dict[str, Any]:
    result = workspace.mirror("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def drift(workspace: Workspace, *args: str) -> tuple[int, dict[str, Any], str]:
    result = workspace.mirror("drift", "--report-dir", "reports", *args)
    assert result.exit_code in (0, 2), result.output
    report = json.loads((workspace.root / "reports" / "drift-report.json").read_text())
    markdown = (workspace.root / "reports" / "drift-report.md").read_text()
    return result.exit_code, report, markdown


def test_clean_version_is_admitted_and_no_drift_means_exit_0(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert held(workspace) == {("foo-bar", "1.1")}
    code, report, markdown = drift(workspace)
    assert code == 0 and report["drifted"] is False and report["quarantined"] == []
    assert "No drift" in markdown


def test_new_advisory_quarantines_on_drift_and_the_range_moves_in_the_same_run(
    workspace: Workspace,
) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-aaaa-bbbb-cccc", "foo-bar", ["1.1"], fixed="1.2", aliases=("CVE-1",))

    code, report, markdown = drift(workspace)

    assert code == 2 and report["mode"] == "applied" and report["apply"]["errors"] == []
    (quarantined,) = report["quarantined"]
    assert (quarantined["name"], quarantined["version"]) == ("foo-bar", "1.1")
    assert quarantined["cause"] == "advisory"
    (advisory,) = quarantined["advisories"]
    assert advisory["id"] == "GHSA-aaaa-bbbb-cccc" and advisory["fixed_in"] == ["1.2"]
    assert advisory["link"] == "https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc"
    (replacement,) = report["drift"]
    assert (replacement["action"], replacement["version"]) == ("upload", "1.0")
    assert "in place of quarantined 1.1" in replacement["reason"]
    assert "[GHSA-aaaa-bbbb-cccc](https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc)" in markdown
    assert held(workspace) == {("foo-bar", "1.0")}
    target = workspace.root / "site"
    assert pip_install(f"file://{workspace.registry}/simple", target, "foo-bar").returncode == 0
    assert installed_version(target, "foo_bar") == "1.0"

    code, report, _ = drift(workspace)
    assert code == 0 and not report["drifted"]


def test_report_only_changes_nothing(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-q", "foo-bar", ["1.1"], fixed="1.2")
    before = served(workspace)
    code, report, markdown = drift(workspace, "--report-only")
    assert code == 2 and report["mode"] == "report-only" and report["apply"] is None
    assert len(report["quarantined"]) == 1 and "report only, nothing changed" in markdown
    assert served(workspace) == before


def test_a_saved_plan_carries_out_the_policys_actions_not_its_own_words(
    workspace: Workspace,
) -> None:
    """The quarantine log records the policy's reason, whatever an edited plan file says."""
    seed(workspace, "foo-bar==1.1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-q", "foo-bar", ["1.1"], fixed="1.2")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    path = workspace.root / "plan.json"
    document = json.loads(path.read_text())
    (quarantine,) = document["actions"]
    quarantine.update(reason="routine tidy-up", advisories=[], cause="vanished")
    path.write_text(json.dumps(document))

    result = workspace.mirror("apply", "plan.json")

    assert result.exit_code == 0, result.output
    assert held(workspace) == set()
    log = json.loads((workspace.registry / ".mirror" / "quarantine.json").read_text())
    (record,) = log.values()
    assert (record["cause"], record["advisories"]) == ("advisory", ["GHSA-q"])
    assert "GHSA-q" in record["reason"]


def test_withdrawn_advisory_restores_the_version_and_says_so(workspace: Workspace) -> None:
    seed(workspace, "foo-bar==1.1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-q", "foo-bar", ["1.1"], fixed="1.2")
    code, report, _ = drift(workspace)
    assert code == 2 and held(workspace) == set()
    assert report["blocked"][0]["advisories"] == ["GHSA-q"]

    workspace.osv.withdraw("GHSA-q")
    document = plan_json(workspace)
    (upload,) = document["actions"]
    assert upload["cause"] == "restored"
    assert upload["reason"].startswith("restored: quarantined 2026-11-24 (has GHSA-q")
    code, report, _ = drift(workspace)
    assert code == 2 and report["drift"][0]["cause"] == "restored"
    assert held(workspace) == {("foo-bar", "1.1")}
    assert json.loads((workspace.registry / ".mirror" / "quarantine.json").read_text()) == {}


def test_malicious_report_quarantines_despite_ignore_entry_and_exception(
    workspace: Workspace,
) -> None:
    seed(workspace, "foo-bar==1.1\n")
    workspace.config(
        policy="  vulnerabilities:\n    ignore:\n"
        "      - id: MAL-2026-7\n        reason: we trust it\n",
        extra='exceptions:\n  - package: foo-bar\n    version: "1.1"\n    reason: pinned\n',
    )
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("MAL-2026-7", "foo-bar", ["1.1"], summary="Malicious code in foo-bar")

    code, report, _ = drift(workspace)

    assert code == 2 and held(workspace) == set()
    (quarantined,) = report["quarantined"]
    assert quarantined["advisories"][0]["id"] == "MAL-2026-7"
    assert "no ignore entry or exception applies" in quarantined["reason"]
    assert report["blocked"][0]["reason"] == "malicious"


def test_upstream_takedown_and_yank_quarantine(workspace: Workspace) -> None:
    seed(workspace, "foo-bar==1.1\nbaz==2.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.upstream.remove_version("foo-bar", "1.1")
    workspace.upstream.yank("baz", "2.0", "broken build")

    code, report, markdown = drift(workspace)

    assert code == 2 and held(workspace) == set()
    causes = {(q["name"], q["cause"]) for q in report["quarantined"]}
    assert causes == {("foo-bar", "vanished"), ("baz", "yanked")}
    assert "vanished upstream" in markdown and "yanked upstream" in markdown

    workspace.upstream.yank("baz", "2.0", False)  # un-yanked: it comes back, and says why
    (restored,) = plan_json(workspace)["actions"]
    assert restored["name"] == "baz" and restored["cause"] == "restored"
    assert restored["reason"].startswith(
        "restored: quarantined 2026-11-24 (yanked upstream: broken build)"
    )


def test_ignore_entries_with_and_without_expiry(workspace: Workspace) -> None:
    seed(workspace, "foo-bar==1.1\n")
    workspace.osv.add("GHSA-kept", "foo-bar", ["1.1"], aliases=("CVE-2026-1",))
    workspace.osv.add("GHSA-lapsed", "foo-bar", ["1.1"])
    workspace.config(
        policy="  vulnerabilities:\n    ignore:\n"
        "      - id: CVE-2026-1\n        reason: not reachable\n"
        "      - id: GHSA-lapsed\n        reason: was fine\n        expires: 2026-11-01\n"
    )
    document = plan_json(workspace)
    (blocked,) = document["blocked"]
    assert blocked["advisories"] == ["GHSA-lapsed"]
    assert "ignore entry expired 2026-11-01" in blocked["detail"]
    assert any("GHSA-lapsed expired on 2026-11-01" in w for w in document["warnings"])

    workspace.config(
        policy="  vulnerabilities:\n    ignore:\n"
        "      - id: CVE-2026-1\n        reason: not reachable\n"
        "      - id: GHSA-lapsed\n        reason: was fine\n        expires: 2026-12-01\n"
    )
    (upload,) = plan_json(workspace)["actions"]
    assert "GHSA-kept ignored: not reachable" in upload["reason"]
    assert "GHSA-lapsed ignored until 2026-12-01: was fine" in upload["reason"]


def test_security_fix_lane_admits_a_young_fix_and_says_so(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-q", "foo-bar", ["1.0", "1.1"], fixed="1.2")
    workspace.config(policy="  fix_min_age_days: 2\n")

    quarantine, upload = plan_json(workspace)["actions"]

    assert quarantine["version"] == "1.1" and quarantine["quarantine"] is True
    assert upload["version"] == "1.2"
    assert "security fix: fixes GHSA-q in 1.1" in upload["reason"]
    assert (
        "admitted under policy.fix_min_age_days (2) before policy.min_age_days (14)"
        in (upload["reason"])
    )
    # Without the lane the 3-day-old fix waits, and 1.0 has the advisory too: blocked.
    workspace.config()
    document = plan_json(workspace)
    assert [a["version"] for a in document["actions"]] == ["1.1"]
    assert "policy.min_age_days: 14" in document["blocked"][0]["detail"]


def test_unreachable_service_fails_closed_and_quarantines_nothing(workspace: Workspace) -> None:
    seed(workspace)
    workspace.config(policy="  vulnerabilities:\n    services: [osv, pypi]\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.upstream.remove_version("foo-bar", "1.1")  # would be quarantined
    workspace.upstream.failure = (503, "0")
    for path in ("/pypi/foo-bar/1.1/json", "/pypi/foo-bar/1.0/json"):
        workspace.upstream.fail_next[path] = 100

    result = workspace.mirror("drift", "--report-dir", "reports")

    assert result.exit_code == 1
    assert "PyPI JSON API" in result.stderr and "503" in result.stderr
    assert held(workspace) == {("foo-bar", "1.1")}


def test_pypi_and_osv_findings_unite_and_dedupe_by_alias(workspace: Workspace) -> None:
    seed(workspace, "foo-bar==1.1\n")
    workspace.config(policy="  vulnerabilities:\n    services: [osv, pypi]\n")
    workspace.osv.add("GHSA-xxxx-yyyy-zzzz", "foo-bar", ["1.1"], fixed="1.2", aliases=("CVE-9",))
    workspace.upstream.add_vulnerability(
        "PYSEC-2026-5", "foo-bar", ["1.1"], fixed="1.2", aliases=("CVE-9", "GHSA-xxxx-yyyy-zzzz")
    )
    workspace.upstream.add_vulnerability("PYSEC-2026-6", "foo-bar", ["1.1"], withdrawn=True)

    document = plan_json(workspace)

    (blocked,) = document["blocked"]
    assert blocked["advisories"] == ["GHSA-xxxx-yyyy-zzzz"]  # one advisory, not two
    details = document["advisories"]["GHSA-xxxx-yyyy-zzzz"]
    assert set(details["aliases"]) == {"CVE-9", "PYSEC-2026-5"}
    assert [s["service"] for s in document["advisory_sources"]] == ["osv", "pypi"]
    # An ignore entry naming the alias only PyPI reported still matches the united advisory.
    workspace.config(
        policy="  vulnerabilities:\n    services: [osv, pypi]\n    ignore:\n"
        "      - id: PYSEC-2026-5\n        reason: reviewed\n"
    )
    (upload,) = plan_json(workspace)["actions"]
    assert upload["version"] == "1.1"


def test_pypi_service_blocks_on_its_own_and_asks_per_version(workspace: Workspace) -> None:
    seed(workspace, "foo-bar>=1\n")
    workspace.config(policy="  vulnerabilities:\n    services: [pypi]\n")
    workspace.upstream.add_vulnerability("PYSEC-2026-1", "foo-bar", ["1.1"], fixed="1.2")
    (upload,) = plan_json(workspace)["actions"]
    assert upload["version"] == "1.0" and "1.1: has PYSEC-2026-1" in upload["reason"]
    assert workspace.upstream.count("/pypi/foo-bar/1.1/json") >= 1
    assert workspace.upstream.count("/pypi/foo-bar/json") == 0


def test_safety_service_reads_an_offline_database(workspace: Workspace) -> None:
    seed(workspace, "foo-bar>=1\n")
    workspace.config(
        policy="  vulnerabilities:\n    services: [safety]\n"
        f"    safety:\n      database: {SAFETY_DB}\n"
    )
    document = plan_json(workspace)
    (upload,) = document["actions"]
    assert upload["version"] == "1.0" and "1.1: has pyup.io-99999" in upload["reason"]
    (source,) = document["advisory_sources"]
    assert source["service"] == "safety"
    assert source["database"] == "last updated 2026-11-01 00:00:00"
    assert workspace.osv.count() == 0


def test_safety_configured_but_not_installed_is_a_clear_error(
    workspace: Workspace, monkeypatch: Any
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "safety", None)  # import safety -> ImportError
    monkeypatch.setenv("SAFETY_API_KEY", "key")
    seed(workspace)
    workspace.config(  # downloading with a key needs safety's library (a directory does not)
        policy="  vulnerabilities:\n    services: [safety]\n"
        "    safety:\n      api_key_env: SAFETY_API_KEY\n"
    )
    result = workspace.mirror("plan")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: policy.vulnerabilities.services: the safety vulnerability service needs the "
        "safety package: pip install 'pypi-delayed-mirror[safety]'"
    )


def test_registry_edited_by_hand_is_drift_and_is_repaired(workspace: Workspace) -> None:
    seed(workspace, "foo-bar==1.1\nbaz==2.0\n")
    workspace.upstream.add_release("foo-bar", "1.1", days_ago(40), wheel=False, sdist=True)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    (workspace.registry / "files" / "baz" / "baz-2.0-py3-none-any.whl").write_bytes(b"evil")
    (workspace.registry / "files" / "foo-bar" / "foo_bar-1.1-py3-none-any.whl").unlink()

    code, report, markdown = drift(workspace)

    assert code == 2 and report["quarantined"] == []
    causes = {(d["name"], d["category"], d["cause"]) for d in report["drift"]}
    assert causes == {
        ("baz", "registry-edited", "changed-in-registry"),
        ("foo-bar", "registry-edited", "missing-from-registry"),
    }
    assert "Registry changed outside the mirror" in markdown
    target = workspace.root / "site"
    assert pip_install(f"file://{workspace.registry}/simple", target, "baz").returncode == 0


def test_drift_sorts_what_it_did_by_what_happened(workspace: Workspace) -> None:
    upstream = workspace.upstream
    seed(workspace, "foo-bar>=1\napp>=0.9\nrng>=1\nbaz==2.0\n")
    upstream.add_release("app", "0.9", days_ago(90))
    upstream.add_release("app", "1.0", days_ago(60), requires=("lib>=1",))
    upstream.add_release("lib", "1.0", days_ago(60))
    upstream.add_release("rng", "1.0", days_ago(90))
    upstream.add_release("rng", "1.1", days_ago(30))
    workspace.osv.add("GHSA-rng", "rng", ["1.1"])
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert {"app", "lib", "rng"} <= {name for name, _ in held(workspace)}
    workspace.osv.add("GHSA-foo", "foo-bar", ["1.1"], fixed="1.2")
    workspace.osv.add("GHSA-app", "app", ["1.0"])
    workspace.osv.withdraw("GHSA-rng")
    (workspace.registry / "files" / "baz" / "baz-2.0-py3-none-any.whl").write_bytes(b"edited")

    code, report, markdown = drift(workspace)

    assert code == 2 and report["apply"]["errors"] == []
    assert {(q["name"], q["version"]) for q in report["quarantined"]} == {
        ("foo-bar", "1.1"),
        ("app", "1.0"),
    }
    assert {(d["category"], d["name"], d["version"], d["cause"]) for d in report["drift"]} == {
        ("replaced", "foo-bar", "1.0", "replacement"),
        ("replaced", "app", "0.9", "replacement"),
        ("admitted", "rng", "1.1", "new-version"),
        ("removed", "rng", "1.0", "superseded"),
        ("removed", "lib", "1.0", "not-desired"),
        ("registry-edited", "baz", "2.0", "changed-in-registry"),
    }
    edited = markdown.split("#### Registry changed outside the mirror")[1].split("####")[0]
    assert "baz" in edited and "lib" not in edited and "rng" not in edited
    assert "foo-bar\\>=1: in place of quarantined 1.1" in markdown  # text, never markup


def test_every_cause_has_a_drift_category() -> None:
    from reconciler.model import Action, ActionKind, Cause
    from reconciler.report.drift import category

    for cause in Cause:
        for kind in ActionKind:
            category(Action(kind, "x", "1", "why", (), cause=cause))


def test_too_many_quarantines_are_refused_but_reported(workspace: Workspace) -> None:
    seed(workspace, "foo-bar==1.1\nbaz==2.0\n")
    workspace.config(policy="  max_deletions: 1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.upstream.projects.clear()  # an upstream outage that looks like a takedown

    result = workspace.mirror("drift", "--report-dir", "reports")

    assert result.exit_code == 1 and "policy.max_deletions" in result.stderr
    report = json.loads((workspace.root / "reports" / "drift-report.json").read_text())
    assert report["mode"] == "refused" and len(report["quarantined"]) == 2
    assert held(workspace) == {("foo-bar", "1.1"), ("baz", "2.0")}


def test_new_bytes_under_a_mirrored_name_stay_refused_until_an_exception(
    workspace: Workspace,
) -> None:
    seed(workspace, "foo-bar==1.1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    (original,) = [f for f in workspace.upstream.projects["foo-bar"].files if "-1.1-" in f.filename]
    workspace.upstream.add_file(
        "foo-bar", FakeFile(original.filename, original.upload_time, b"tampered bytes")
    )

    code, report, _ = drift(workspace)
    assert code == 2 and report["quarantined"][0]["cause"] == "upstream-changed"
    assert held(workspace) == set()
    # The next night the version is still refused: quarantining it did not make it trusted.
    code, report, _ = drift(workspace)
    assert code == 0 and report["blocked"][0]["reason"] == "upstream-changed"
    assert held(workspace) == set()

    workspace.config(
        extra='exceptions:\n  - package: foo-bar\n    version: "1.1"\n'
        "    reason: rebuilt upstream, reviewed in INC-7\n"
    )
    (upload,) = plan_json(workspace)["actions"]
    assert upload["cause"] == "restored" and "admitted by exception" in upload["reason"]


def test_one_file_name_listed_twice_is_refused_and_quarantines_what_is_held(
    workspace: Workspace,
) -> None:
    seed(workspace, "foo-bar==1.1\nbaz==2.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    (wheel,) = [f for f in workspace.upstream.projects["foo-bar"].files if "-1.1-" in f.filename]
    big = FakeFile(wheel.filename, wheel.upload_time, size=8 << 20)
    workspace.upstream.add_file("foo-bar", big, replace=False)  # 899 bytes and 8 MiB, one name
    workspace.upstream.add_release("dup", "1.0", days_ago(30))
    (small,) = workspace.upstream.projects["dup"].files
    workspace.upstream.add_file("dup", FakeFile(small.filename, days_ago(30), size=8 << 20), False)
    workspace.requirements("foo-bar==1.1\nbaz==2.0\ndup==1.0\n")

    code, report, _ = drift(workspace)

    assert code == 2
    assert [(q["name"], q["cause"]) for q in report["quarantined"]] == [
        ("foo-bar", "upstream-changed")
    ]
    assert {(b["name"], b["reason"]) for b in report["blocked"]} == {
        ("foo-bar", "upstream-changed"),
        ("dup", "ambiguous-file"),
    }
    assert held(workspace) == {("baz", "2.0")}
    assert not (workspace.registry / "files" / "dup").exists()
