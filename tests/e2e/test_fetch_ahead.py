"""Fetching ahead of the resolver: a guess costs a page nobody reads, never the plan."""

from __future__ import annotations

from tests.conftest import Workspace, days_ago


def test_a_page_only_a_refused_release_names_cannot_stop_the_plan(workspace: Workspace) -> None:
    # The look-ahead judges advisories aside, so it reads the metadata of app 2.0 (malicious)
    # and asks for the page it names; the resolver never takes app 2.0.
    upstream = workspace.upstream
    upstream.add_release("app", "1.0", days_ago(60))
    upstream.add_release("app", "2.0", days_ago(30), requires=("payload",))
    upstream.add_release("payload", "1.0", days_ago(30))
    workspace.osv.add("MAL-2026-1", "app", ["2.0"])
    upstream.fail_next["/simple/payload/"] = 100  # that page fails every time
    workspace.config(policy="  dependencies: closure\n")
    workspace.requirements("app\n")
    result = workspace.mirror("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"version": "1.0"' in result.stdout and "payload" not in result.stdout
