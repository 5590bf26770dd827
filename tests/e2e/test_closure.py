"""The dependency closure end to end: a realistic graph upstream, the mirror resolves it under
policy, and a fresh environment installs every top-level requirement from the mirror alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import installed_version, pip_install, served, uv_install

REQUIREMENTS = "web>=1\ncli\nclient[socks]\nfresh-app\n"


def graph(workspace: Workspace) -> None:
    """Shared dependencies, conflicting ranges (web 2.0 wants core>=2, cli wants core<2), an
    environment marker, an extra, a dependency only a young version satisfies, an advisory."""
    up = workspace.upstream
    old = days_ago(200)
    up.add_release("web", "1.0", old, requires=("core>=1,<2", 'colorama; sys_platform == "win32"'))
    up.add_release(
        "web",
        "2.0",
        days_ago(100),
        requires=("core>=2", 'uvloop; sys_platform == "emscripten"'),
    )
    up.add_release("cli", "1.0", old, requires=("core<2",))
    for version in ("1.8", "1.9", "2.0"):
        up.add_release("core", version, old)
    workspace.osv.add("GHSA-core-19", "core", ["1.9"], fixed="2.0")
    up.add_release("colorama", "0.4.6", old)
    up.add_release("uvloop", "0.19.0", old)
    up.add_release(
        "client",
        "1.0",
        old,
        requires=('pysocks>=1.7; extra == "socks"', 'fastjson; extra == "speed"'),
    )
    up.add_release("pysocks", "1.7.1", old)
    up.add_release("fastjson", "1.0", old)
    up.add_release("fresh-app", "1.0", old, requires=("young>=2",))
    up.add_release("young", "1.0", old)
    up.add_release("young", "2.0", days_ago(3))
    workspace.config(policy="  dependencies: closure\n")
    workspace.requirements(REQUIREMENTS)


def plan_json(workspace: Workspace) -> dict[str, Any]:
    result = workspace.mirror("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_the_closure_is_resolved_under_policy_and_explained(workspace: Workspace) -> None:
    graph(workspace)
    document = plan_json(workspace)
    uploads = {a["name"]: a for a in document["actions"] if a["action"] == "upload"}
    assert {name: a["version"] for name, a in uploads.items()} == {
        "web": "1.0",  # 2.0 needs core>=2, which cli's core<2 rules out
        "cli": "1.0",
        "core": "1.8",  # 1.9 has an advisory
        "colorama": "0.4.6",  # needed on Windows, one of the target environments
        "client": "1.0",
        "pysocks": "1.7.1",  # the extra asked for; fastjson's extra was not
    }
    assert uploads["core"]["required_by"] == ["cli 1.0", "web 1.0"]
    assert uploads["core"]["reason"].startswith("new dependency of cli 1.0, web 1.0")
    assert "1.9: has GHSA-core-19" in uploads["core"]["reason"]
    (blocked,) = document["blocked"]
    assert blocked["name"] == "fresh-app" and blocked["reason"] == "immature"
    assert blocked["detail"].startswith("fresh-app 1.0 → young>=2: 2.0: 3 days old")
    assert blocked["eligible_at"] is not None


def test_after_apply_each_requirement_installs_from_the_mirror_alone(
    workspace: Workspace,
) -> None:
    graph(workspace)
    applied = workspace.mirror("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    index = f"file://{workspace.registry}/simple"
    for requirement, module, version in (
        ("web", "web", "1.0"),
        ("cli", "cli", "1.0"),
        ("client[socks]", "pysocks", "1.7.1"),
    ):
        target = workspace.root / f"site-{module}"
        result = pip_install(index, target, requirement)
        assert result.returncode == 0, result.stderr
        assert installed_version(target, module) == version
    assert installed_version(workspace.root / "site-web", "core") == "1.8"
    with served(workspace.desired) as url:
        target = workspace.root / "uv-web"
        result = uv_install(url, target, "web", "cli", "client[socks]")
        assert result.returncode == 0, result.stderr
        assert installed_version(target, "core") == "1.8"


def test_dependencies_no_longer_needed_are_pruned(workspace: Workspace) -> None:
    graph(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.requirements("web>=1\ncli\n")
    deletes = {a["name"]: a["reason"] for a in plan_json(workspace)["actions"]}
    gone = "no longer needed: not a requirement nor a dependency of one"
    assert deletes == {"client": gone, "pysocks": gone}


def test_a_metadata_outage_stops_the_plan_instead_of_admitting_without_dependencies(
    workspace: Workspace,
) -> None:
    workspace.upstream.add_release("app", "1.0", days_ago(30), requires=("lib>=1",))
    workspace.upstream.add_release("lib", "1.0", days_ago(30))
    workspace.requirements("app==1.0\n")
    workspace.upstream.fail_next["/files/app-1.0-py3-none-any.whl.metadata"] = 100
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "app-1.0-py3-none-any.whl.metadata answered 503" in result.stderr
    assert not (workspace.registry / "files").exists()


def long_walk(workspace: Workspace) -> None:
    """app's newest 55 releases need young>=2, which is 3 days old: only app 0.1 can be had.
    held-pkg 1.0, mirrored before, has just gained an advisory."""
    up = workspace.upstream
    up.add_release("app", "0.1", days_ago(400))
    for minor in range(1, 56):
        up.add_release("app", f"1.{minor}", days_ago(300 - minor), requires=("young>=2",))
    up.add_release("young", "2.0", days_ago(3))
    up.add_release("ok", "1.0", days_ago(30))
    up.add_release("held-pkg", "1.0", days_ago(30))
    workspace.requirements("held-pkg==1.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-held", "held-pkg", ["1.0"])
    workspace.requirements("app\nok==1.0\nheld-pkg==1.0\n")


def drift_report(workspace: Workspace) -> dict[str, Any]:
    result = workspace.mirror("drift", "--report-dir", "reports")
    assert result.exit_code == 2, result.output
    report: dict[str, Any] = json.loads(
        (workspace.root / "reports" / "drift-report.json").read_text()
    )
    return report


def test_a_long_backtracking_walk_settles_in_a_few_fetch_rounds(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler import operations

    # Metadata is asked for several versions at a time: 55 versions fit in 10 rounds.
    monkeypatch.setattr(operations, "MAX_FETCH_ROUNDS", 10)
    long_walk(workspace)
    report = drift_report(workspace)
    assert [(q["name"], q["version"]) for q in report["quarantined"]] == [("held-pkg", "1.0")]
    uploads = {(d["name"], d["version"]) for d in report["drift"] if d["action"] == "upload"}
    assert uploads == {("app", "0.1"), ("ok", "1.0")}
    assert report["warnings"] == []


def test_a_closure_out_of_budget_blocks_its_requirement_alone(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler import operations

    monkeypatch.setattr(operations, "MAX_FETCH_ROUNDS", 2)
    long_walk(workspace)
    report = drift_report(workspace)
    # The quarantine of what the registry holds does not wait on resolving anything.
    assert [(q["name"], q["version"]) for q in report["quarantined"]] == [("held-pkg", "1.0")]
    uploads = {(d["name"], d["version"]) for d in report["drift"] if d["action"] == "upload"}
    assert uploads == {("ok", "1.0")}
    (blocked,) = [b for b in report["blocked"] if b["name"] == "app"]
    assert blocked["reason"] == "unresolved"
    assert "not read within the plan's fetch budget" in blocked["detail"]
    assert any("did not settle within the plan's fetch budget" in w for w in report["warnings"])
