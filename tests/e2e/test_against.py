"""`mirror plan --against REF`: a merge request's plan shows the merge's own changes; what its
target branch's desired state plans anyway (versions maturing, yanks) is one line."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import Workspace, days_ago
from tests.e2e.test_order import commit, git


@pytest.fixture
def branches(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """main wants foo-bar (1.1 matured since the last apply: main uploads it anyway); the
    merge request adds baz. Returns (main's commit, the merge request's)."""
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    workspace.upstream.add_release("foo-bar", "1.0", days_ago(100))
    workspace.upstream.add_release("baz", "2.0", days_ago(30))
    git(workspace.root, "init", "-q")
    main = commit(workspace, "foo-bar>=1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.upstream.add_release("foo-bar", "1.1", days_ago(15))
    return main, commit(workspace, "foo-bar>=1\nbaz==2.0\n")


def test_a_merge_request_plan_shows_its_own_changes_and_names_the_rest_once(
    workspace: Workspace, branches: tuple[str, str]
) -> None:
    main, _ = branches
    planned = workspace.mirror("plan", "--against", main, "--format", "markdown", "--out", "p.json")
    assert planned.exit_code == 0, planned.output
    note = planned.stdout
    assert [note.count(v) for v in ("foo-bar 1.0", "foo-bar 1.1", "| baz | 2.0 |")] == [1, 1, 1]
    assert (
        "**Plan: 1 to upload, 0 to delete, 0 blocked. Besides, 2 changes the target branch "
        "plans anyway.**" in note
    )
    assert "| baz | 2.0 |" in note
    sizes = re.search(r"Downloads ([\d.]+ \w+) \(([\d.]+ \w+) for this merge's own changes\)", note)
    assert sizes is not None and sizes[1] != sizes[2]
    anyway = "plans these anyway: upload foo-bar 1.1; delete foo-bar 1.0"
    assert f"The target branch ({main[:12]}) {anyway}" in note
    document = json.loads((workspace.root / "p.json").read_text())
    both = ["delete-foo-bar-1.0", "upload-foo-bar-1.1"]
    assert document["baseline"] == {"ref": main, "planned": both}
    assert {a["id"] for a in document["actions"]} == {*both, "upload-baz-2.0"}
    shown = workspace.mirror("show", "p.json", "--format", "markdown")
    assert shown.stdout == note  # the comment job renders the saved plan the same
    table = workspace.mirror("plan", "--against", main).stdout
    assert "+ upload baz 2.0" in table and "+ upload foo-bar" not in table
    assert anyway in table
    # The apply on main plans without --against: every change, the merge's and the rest.
    assert "to upload" in workspace.mirror("plan").stdout
    assert "+ upload foo-bar 1.1" in workspace.mirror("plan").stdout


def test_a_target_without_a_desired_state_makes_every_change_the_merge_s(
    workspace: Workspace, branches: tuple[str, str]
) -> None:
    git(workspace.root, "checkout", "-q", "--orphan", "empty")
    git(workspace.root, "rm", "-q", "-r", "--cached", ".")
    git(workspace.root, "commit", "-q", "--allow-empty", "-m", "empty")
    empty = git(workspace.root, "rev-parse", "HEAD")
    git(workspace.root, "checkout", "-q", "-f", branches[1])
    planned = workspace.mirror("plan", "--against", empty)
    assert planned.exit_code == 0, planned.output
    assert "Plan: 2 to upload" in planned.stdout and "anyway" not in planned.stdout


def test_a_target_whose_desired_state_cannot_be_read_leaves_the_plan_uncompared(
    workspace: Workspace, branches: tuple[str, str]
) -> None:
    main, head = branches
    git(workspace.root, "checkout", "-q", main)
    (workspace.desired / "config.yaml").write_text("policy: [not, a, mapping]\n")
    broken = commit(workspace, "foo-bar>=1\n")
    git(workspace.root, "checkout", "-q", head)
    planned = workspace.mirror("plan", "--against", broken)
    assert planned.exit_code == 0, planned.output
    assert (
        f"--against {broken} ({broken[:12]}): the target's desired state could not be planned ("
        in planned.stdout
    )
    assert "this plan is not compared with it" in planned.stdout
    assert "+ upload foo-bar 1.1" in planned.stdout and "+ upload baz 2.0" in planned.stdout


def test_a_target_that_cannot_be_planned_leaves_the_plan_uncompared(
    workspace: Workspace, branches: tuple[str, str]
) -> None:
    """A project only the target wants is unreachable: the merge request (which may drop it)
    still gets its plan, and says it is not compared."""
    main, head = branches
    git(workspace.root, "checkout", "-q", main)
    workspace.upstream.add_release("never", "1.0", days_ago(90))
    wants_never = commit(workspace, "foo-bar>=1\nnever\n")
    git(workspace.root, "checkout", "-q", head)
    workspace.upstream.failure = (500, "0")
    workspace.upstream.fail_next["/simple/never/"] = 1000
    planned = workspace.mirror("plan", "--against", wants_never)
    assert planned.exit_code == 0, planned.output
    assert "the target's desired state could not be planned (" in planned.stdout
    assert "+ upload baz 2.0" in planned.stdout and "+ upload foo-bar 1.1" in planned.stdout


def test_a_version_the_merge_adds_files_to_is_the_merge_s_change(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge adds a Windows target: the same version's upload gains a wheel; that upload
    is the merge's own, not something the target plans anyway."""
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    tags = ("cp312-cp312-manylinux_2_28_x86_64", "cp312-cp312-win_amd64")
    workspace.upstream.add_release("foo-bar", "1.1", days_ago(20), wheel_tags=tags)
    linux = '    - {python: "3.12", platform: x86_64-manylinux_2_28}\n'
    workspace.config(policy=f"  environments:\n{linux}")
    git(workspace.root, "init", "-q")
    main = commit(workspace, "foo-bar>=1\n")
    workspace.config(
        policy=f'  environments:\n{linux}    - {{python: "3.12", platform: windows}}\n'
    )
    commit(workspace, "foo-bar>=1\n")
    planned = workspace.mirror("plan", "--against", main)
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.startswith("Plan: 1 to upload, 0 to delete, 0 blocked.\n")
    assert "+ upload foo-bar 1.1 (2 files)" in planned.stdout and "anyway" not in planned.stdout


@pytest.mark.parametrize("ref", ["no-such-branch", "0" * 40, "--help"])
def test_a_ref_this_clone_does_not_hold_is_a_clear_error(
    workspace: Workspace, branches: tuple[str, str], ref: str
) -> None:
    refused = workspace.mirror("plan", "--against", ref)
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        f"error: --against {ref}: not a commit of the git repository holding "
        f"{workspace.desired} (a shallow clone may lack it: fetch it, or clone with "
        "GIT_DEPTH: 0)"
    )
