"""The whole loop on the directory registry: plan, apply, then a real `pip install`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import manager_app, mirror_app
from reconciler.desired import load_desired_state
from reconciler.model import Config
from reconciler.registry import DirectoryRegistry
from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import installed_version, pip_install, static_server


def seed(workspace: Workspace) -> None:
    upstream = workspace.upstream
    upstream.add_release("Foo_Bar", "1.0", days_ago(100), sdist=True)
    upstream.add_release("Foo_Bar", "1.1", days_ago(40))
    upstream.add_release("Foo_Bar", "1.2", days_ago(3))
    upstream.add_release("baz", "2.0", days_ago(30), requires_python=">=3.8")
    workspace.requirements("foo-bar>=1\nbaz==2.0\n")


def registry_listing(workspace: Workspace) -> set[tuple[str, str, str]]:
    return {
        (f.name, f.version, f.filename)
        for f in DirectoryRegistry(workspace.registry).list_actual().files
    }


def test_plan_apply_then_pip_installs_from_file_and_http(workspace: Workspace) -> None:
    seed(workspace)
    planned = workspace.mirror("plan", "--out", "plan.json")
    assert planned.exit_code == 0, planned.output
    assert "+ upload foo-bar 1.1" in planned.stdout
    assert "Waiting to mature (policy.min_age_days: 14): foo-bar 1.2 (Dec 5)" in planned.stdout
    assert not workspace.registry.exists(), "plan must not touch the registry"

    applied = workspace.mirror("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 2 uploaded" in applied.stdout
    assert registry_listing(workspace) == {
        ("foo-bar", "1.1", "foo_bar-1.1-py3-none-any.whl"),
        ("baz", "2.0", "baz-2.0-py3-none-any.whl"),
    }
    page = (workspace.registry / "simple" / "baz" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8"' in page and "#sha256=" in page
    pep691 = json.loads((workspace.registry / "simple" / "baz" / "index.json").read_text())
    assert pep691["files"][0]["upload-time"] == days_ago(30).strftime("%Y-%m-%dT%H:%M:%SZ")

    target = workspace.root / "site-file"
    result = pip_install(f"file://{workspace.registry}/simple", target, "foo-bar", "baz")
    assert result.returncode == 0, result.stderr
    assert installed_version(target, "foo_bar") == "1.1"

    with static_server(workspace.registry) as url:
        target = workspace.root / "site-http"
        result = pip_install(f"{url}/simple/", target, "Foo.Bar==1.1")
        assert result.returncode == 0, result.stderr
    assert installed_version(target, "foo_bar") == "1.1"

    again = workspace.mirror("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.stdout


def test_detailed_exitcode_and_formats(workspace: Workspace) -> None:
    seed(workspace)
    result = workspace.mirror("plan", "--detailed-exitcode", "--format", "json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["summary"] == {"upload": 2, "delete": 0, "blocked": 0}
    assert document["advisory_sources"][0]["service"] == "osv"
    markdown = workspace.mirror("plan", "--format", "markdown", "--out", "plan.json")
    assert "#### Requirements (2)" in markdown.stdout
    shown = workspace.mirror("show", "plan.json", "--format", "markdown")
    assert shown.exit_code == 0 and shown.stdout == markdown.stdout


def test_second_plan_revalidates_with_etags(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("plan").exit_code == 0
    workspace.upstream.reset_counts()
    assert workspace.mirror("plan").exit_code == 0
    assert workspace.upstream.statuses[304] == 2
    assert workspace.upstream.statuses[200] == 0


def test_stale_plan_is_refused_when_desired_state_changed(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    workspace.requirements("foo-bar>=1\n")
    result = workspace.mirror("apply", "plan.json")
    assert result.exit_code == 1
    assert f"stale: it was not made from {workspace.desired} as it is now" in result.stderr
    assert registry_listing(workspace) == set()


def test_stale_plan_is_refused_when_registry_changed(workspace: Workspace) -> None:
    seed(workspace)
    workspace.upstream.add_release("qux", "1.0", days_ago(30))
    assert workspace.mirror("plan", "--out", "first.json").exit_code == 0
    workspace.requirements("qux==1.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.requirements("foo-bar>=1\nbaz==2.0\n")
    before = registry_listing(workspace)
    result = workspace.mirror("apply", "first.json")
    assert result.exit_code == 1
    assert "stale: another apply changed the registry" in result.stderr
    assert registry_listing(workspace) == before


def test_stale_plan_is_refused_when_registry_was_edited_by_hand(workspace: Workspace) -> None:
    seed(workspace)
    workspace.requirements("baz==2.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.requirements("foo-bar>=1\nbaz==2.0\n")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    (workspace.registry / "files" / "baz" / "baz-2.0-py3-none-any.whl").write_bytes(b"tampered")
    result = workspace.mirror("apply", "plan.json")
    assert result.exit_code == 1
    assert "stale: the registry changed" in result.stderr


def test_replaying_an_applied_plan_cannot_bring_back_a_quarantined_version(
    workspace: Workspace,
) -> None:
    seed(workspace)
    workspace.requirements("baz==2.0\n")
    assert workspace.mirror("plan", "--out", "old.json").exit_code == 0
    assert workspace.mirror("apply", "old.json").exit_code == 0
    workspace.osv.add("GHSA-late", "baz", ["2.0"])
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert registry_listing(workspace) == set()
    replay = workspace.mirror("apply", "old.json")
    assert replay.exit_code == 1 and "stale" in replay.stderr
    assert registry_listing(workspace) == set()


def test_removed_requirement_is_pruned_and_range_upgrades(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.requirements("foo-bar>=1\n")
    workspace.upstream.add_release("Foo_Bar", "1.2", days_ago(20))  # 1.2 has matured
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert registry_listing(workspace) == {("foo-bar", "1.2", "foo_bar-1.2-py3-none-any.whl")}
    assert not (workspace.registry / "simple" / "baz").exists()
    assert "baz" not in (workspace.registry / "simple" / "index.html").read_text()


def test_a_future_now_can_be_planned_but_not_applied(workspace: Workspace) -> None:
    seed(workspace)
    preview = workspace.mirror("plan", "--out", "future.json", now="2099-01-01T00:00:00Z")
    assert preview.exit_code == 0 and "1.2" in preview.stdout
    for attempt in (
        workspace.mirror("apply", "future.json"),
        workspace.mirror("apply", "--auto-approve", now="2099-01-01T00:00:00Z"),
    ):
        assert attempt.exit_code == 1
        assert "a plan for a future --now can be shown but not applied" in attempt.stderr
    assert registry_listing(workspace) == set()


def test_mass_delete_needs_the_flag(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.config(policy="  max_deletions: 1\n")
    workspace.requirements("")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "policy.max_deletions" in result.stderr and "--allow-mass-delete" in result.stderr
    assert len(registry_listing(workspace)) == 2
    result = workspace.mirror("apply", "--auto-approve", "--allow-mass-delete")
    assert result.exit_code == 0 and registry_listing(workspace) == set()


def test_apply_without_plan_asks_on_a_terminal_only(workspace: Workspace) -> None:
    seed(workspace)
    result = workspace.mirror("apply")
    assert result.exit_code == 1
    assert "--auto-approve" in result.stderr
    assert registry_listing(workspace) == set()


def test_hash_mismatch_is_never_placed_and_the_rest_goes_on(workspace: Workspace) -> None:
    seed(workspace)
    (bad,) = workspace.upstream.add_release("evil", "1.0", days_ago(30), corrupt=True)
    workspace.requirements("foo-bar>=1\nevil==1.0\nbaz==2.0\n")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"{bad.filename}: sha256 mismatch" in result.stderr
    assert registry_listing(workspace) == {
        ("foo-bar", "1.1", "foo_bar-1.1-py3-none-any.whl"),
        ("baz", "2.0", "baz-2.0-py3-none-any.whl"),
    }
    assert not list(workspace.registry.rglob(bad.filename))
    assert "evil" not in (workspace.registry / "simple" / "index.html").read_text()


def test_html_only_upstream_blocks_for_missing_upload_time(workspace: Workspace) -> None:
    seed(workspace)
    workspace.upstream.serve_json = False
    result = workspace.mirror("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {b["reason"] for b in document["blocked"]} == {"no-upload-time"}
    assert document["actions"] == []


def test_upstream_503_is_retried(workspace: Workspace) -> None:
    seed(workspace)
    workspace.upstream.fail_next["/simple/baz/"] = 2
    result = workspace.mirror("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    assert workspace.upstream.statuses[503] == 2


def test_unreachable_vulnerability_service_stops_the_plan(workspace: Workspace) -> None:
    seed(workspace)
    workspace.osv.unavailable = True
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "OSV answered 503" in result.stderr
    assert registry_listing(workspace) == set()


def test_advisory_blocks_then_quarantines(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-q", "foo-bar", ["1.1"], fixed="1.2")
    result = workspace.mirror("plan", "--format", "json")
    document = json.loads(result.stdout)
    quarantine, upload = document["actions"]
    assert quarantine["quarantine"] is True and quarantine["advisories"] == ["GHSA-q"]
    assert (upload["action"], upload["version"]) == ("upload", "1.0")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert ("foo-bar", "1.0", "foo_bar-1.0-py3-none-any.whl") in registry_listing(workspace)


def test_user_error_is_one_line_and_changes_nothing(workspace: Workspace) -> None:
    seed(workspace)
    workspace.requirements("foo-bar>=1\n--extra-index-url https://evil.example/simple\n")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: desired-state/requirements.txt:2: --extra-index-url is refused: the mirror only "
        "reads the upstream index from config.yaml"
    ]
    assert not workspace.registry.exists()
    assert workspace.upstream.count() == 0


def test_bad_now_and_missing_plan_are_user_errors(workspace: Workspace) -> None:
    assert "--now: not an ISO-8601 instant" in workspace.mirror("plan", now="tomorrow").stderr
    result = workspace.mirror("apply", "missing.json")
    assert result.exit_code == 1 and "missing.json: plan file not found" in result.stderr


def test_manager_sync_and_audit(workspace: Workspace) -> None:
    seed(workspace)
    dry = workspace.manager("sync", "--dry-run")
    assert dry.exit_code == 0 and "upload" in dry.stdout
    assert "Dry run: nothing changed." in dry.stdout
    assert registry_listing(workspace) == set()
    assert workspace.manager("sync").exit_code == 0
    assert len(registry_listing(workspace)) == 2
    workspace.requirements("baz==2.0\n")
    assert workspace.manager("sync").exit_code == 0
    assert len(registry_listing(workspace)) == 2, "sync never deletes"
    audit_dry = workspace.manager("audit", "--dry-run")
    assert "no longer needed" in audit_dry.stdout
    assert workspace.manager("audit").exit_code == 0
    assert registry_listing(workspace) == {("baz", "2.0", "baz-2.0-py3-none-any.whl")}


def test_version_and_short_help_on_every_command() -> None:
    from reconciler import __version__

    runner = CliRunner()
    assert runner.invoke(mirror_app, ["--version"], prog_name="mirror").stdout == (
        f"mirror {__version__}\n"
    )
    for command in ("plan", "apply", "show", "comment", "drift", "serve", "init", "force-unlock"):
        shown = runner.invoke(mirror_app, [command, "-h"], prog_name="mirror")
        assert shown.exit_code == 0 and f"Usage: mirror {command}" in shown.stdout, command
    assert runner.invoke(manager_app, ["audit", "-h"]).exit_code == 0
    assert runner.invoke(manager_app, ["-h"]).exit_code == 0


def test_init_writes_a_starting_desired_state_that_means_the_defaults(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-state"
    result = CliRunner().invoke(mirror_app, ["init", "--desired-state", str(fresh)])
    assert result.exit_code == 0, result.output
    assert load_desired_state(fresh).config == Config()
    assert load_desired_state(fresh).requirements == ()
    again = CliRunner().invoke(mirror_app, ["init", "--desired-state", str(fresh)])
    assert again.exit_code == 1 and "config.yaml: already exists" in again.stderr
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "requirements.txt").symlink_to(tmp_path / "nowhere")  # dangling
    refused = CliRunner().invoke(mirror_app, ["init", "--desired-state", str(linked)])
    assert refused.exit_code == 1 and "requirements.txt: already exists" in refused.stderr
    assert not (linked / "config.yaml").exists() and not (tmp_path / "nowhere").exists()
    afile = tmp_path / "a-file"
    afile.write_text("")
    refused = CliRunner().invoke(mirror_app, ["init", "--desired-state", str(afile)])
    assert refused.exit_code == 1 and "a-file: not a directory" in refused.stderr


def test_a_missing_config_says_what_that_means(workspace: Workspace) -> None:
    (workspace.desired / "config.yaml").unlink()
    result = workspace.mirror("plan", "--registry", "directory", "--format", "json")
    assert result.exit_code == 0
    assert (
        "config.yaml not found: every policy default applies, packages come from "
        "https://pypi.org/simple and go to the directory registry 'registry'; `mirror init` "
        "writes a commented config.yaml"
    ) in result.stderr


def test_registry_path_in_config_is_relative_to_the_repository(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert (workspace.root / "registry" / "simple" / "index.html").exists()


def test_429_honours_retry_after(workspace: Workspace) -> None:
    seed(workspace)
    workspace.upstream.failure = (429, "1")
    workspace.upstream.fail_next["/simple/baz/"] = 1
    result = workspace.mirror("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    assert workspace.upstream.statuses[429] == 1
    assert workspace.waits == [1.0]  # the server's Retry-After, not the backoff


def test_allow_pinned_mirrors_a_yanked_pin_with_its_marker(workspace: Workspace) -> None:
    seed(workspace)
    workspace.upstream.yank("baz", "2.0", "broken build")
    workspace.config(policy="  yanked: allow-pinned\n")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    page = (workspace.registry / "simple" / "baz" / "index.html").read_text()
    assert 'data-yanked="broken build"' in page
    pep691 = json.loads((workspace.registry / "simple" / "baz" / "index.json").read_text())
    assert pep691["files"][0]["yanked"] == "broken build"
    workspace.config()
    plan = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    (quarantine,) = [a for a in plan["actions"] if a["name"] == "baz"]
    assert quarantine["quarantine"] and quarantine["reason"] == "yanked upstream: broken build"


def _tamper(workspace: Workspace, change: Callable[[dict[str, Any]], None]) -> None:
    path = workspace.root / "plan.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _other_url(document: dict[str, Any]) -> None:
    upload = next(a for a in document["actions"] if a["name"] == "baz")
    upload["files"][0]["url"] = upload["files"][0]["url"].replace("/files/", "/evil/files/")


def _evil_upload(document: dict[str, Any]) -> None:
    upload = next(a for a in document["actions"] if a["name"] == "baz")
    evil = json.loads(json.dumps(upload).replace("baz", "evil"))
    document["actions"].append(evil)


def _young_version(document: dict[str, Any]) -> None:
    upload = next(a for a in document["actions"] if a["name"] == "foo-bar")
    young = json.loads(json.dumps(upload).replace("1.1", "1.2"))
    (wheel,) = [f for f in young["files"] if f["filename"].endswith(".whl")]
    wheel["sha256"] = SHA_OF["foo_bar-1.2-py3-none-any.whl"]
    young["files"] = [wheel]
    document["actions"] = [a for a in document["actions"] if a is not upload] + [young]


def _no_files(document: dict[str, Any]) -> None:
    next(a for a in document["actions"] if a["name"] == "baz")["files"] = []


def _any_python(document: dict[str, Any]) -> None:
    upload = next(a for a in document["actions"] if a["name"] == "baz")
    upload["files"][0]["requires_python"] = None


SHA_OF: dict[str, str] = {}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_other_url, "upload baz 2.0: it is not what the policy does now"),
        (_evil_upload, "upload evil 2.0: it is not what the policy does now"),
        (_young_version, "upload foo-bar 1.2: it is not what the policy does now"),
        (_no_files, "upload baz 2.0: it names no files"),
        (_any_python, "upload baz 2.0: it is not what the policy does now"),
    ],
)
def test_an_edited_plan_is_refused_whole_before_any_write(
    workspace: Workspace, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    seed(workspace)
    SHA_OF.update(
        (f.filename, f.sha256) for p in workspace.upstream.projects.values() for f in p.files
    )
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    _tamper(workspace, change)
    result = workspace.mirror("apply", "plan.json")
    assert result.exit_code == 1
    assert f"the plan is refused: {named}" in result.stderr
    assert registry_listing(workspace) == set()
    assert not (workspace.registry / "simple").exists()


def test_a_page_edited_by_hand_is_restored_from_upstream(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    page = workspace.registry / "simple" / "baz" / "index.json"
    document = json.loads(page.read_text())
    document["files"][0]["requires-python"] = ">=3.99"  # no client would install it
    page.write_text(json.dumps(document))

    result = workspace.mirror("apply", "--auto-approve")

    assert result.exit_code == 0, result.output
    assert "page changed in the registry" in result.stdout
    assert json.loads(page.read_text())["files"][0]["requires-python"] == ">=3.8"
    html_page = (page.parent / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8"' in html_page
    assert not workspace.mirror("plan", "--format", "json", "--detailed-exitcode").exit_code
