"""Ordered applies: GitLab's resource_group runs applies one at a time but not in pipeline
order, so the registry records the commit of the desired state each apply carried out, and an
apply of an older commit (an ancestor of it) is refused unless forced."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler import gitrepo
from reconciler.model import ActualState, Plan
from reconciler.operations import History, check_order
from tests.conftest import FROZEN_NOW, Workspace, days_ago

OLD, NEW = "a" * 40, "b" * 40


def git(root: Path, *args: str) -> str:
    identity = ["-c", "user.email=ci@example.invalid", "-c", "user.name=CI"]
    done = subprocess.run(
        ["git", "-C", str(root), *identity, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(workspace: Workspace, requirements: str) -> str:
    workspace.requirements(requirements)
    git(workspace.root, "add", "desired-state")
    git(workspace.root, "commit", "-q", "-m", requirements.strip())
    return git(workspace.root, "rev-parse", "HEAD")


def test_an_older_commit_s_apply_is_refused_after_a_newer_one(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    workspace.upstream.add_release("pkg", "1.0", days_ago(90))
    workspace.upstream.add_release("pkg", "2.0", days_ago(60))
    git(workspace.root, "init", "-q")
    older = commit(workspace, "pkg==1.0\n")
    newer = commit(workspace, "pkg==2.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    state = json.loads((workspace.registry / ".mirror" / "generation.json").read_text())
    assert state["commit"] == newer

    # The older pipeline's apply job runs late, from its own checkout: it plans again, as the
    # pipeline's apply job does, so the plan is fresh; only the order can tell.
    git(workspace.root, "checkout", "-q", older)
    assert workspace.mirror("plan", "--out", "old-plan.json").exit_code == 0
    for args in (("apply", "old-plan.json"), ("apply", "--auto-approve")):
        refused = workspace.mirror(*args)
        assert refused.exit_code == 1
        assert f"the desired state at {older} is older than {newer}" in refused.output
        assert "--allow-older-state" in refused.output
    assert (workspace.registry / "files" / "pkg" / "pkg-2.0-py3-none-any.whl").exists()
    assert not (workspace.registry / "files" / "pkg" / "pkg-1.0-py3-none-any.whl").exists()
    forced = workspace.mirror("apply", "--auto-approve", "--allow-older-state")
    assert forced.exit_code == 0, forced.output
    assert (workspace.registry / "files" / "pkg" / "pkg-1.0-py3-none-any.whl").exists()


def plan_at(commit: str | None) -> Plan:
    return Plan(FROZEN_NOW, FROZEN_NOW, "d", "a", (), (), desired_commit=commit)


@pytest.mark.parametrize(
    ("new", "last", "ancestor", "refused"),
    [
        (NEW, OLD, False, False),  # a newer desired state: on it goes
        (OLD, NEW, True, True),  # an ancestor of the last applied: refused
        (OLD, NEW, None, True),  # this clone cannot place it: refused, failing closed
        (NEW, NEW, True, False),  # the same commit (a retry, a resume)
        (None, NEW, True, False),  # outside git: nothing to compare
        (NEW, None, True, False),  # never recorded
    ],
)
def test_order_is_checked_against_the_commit_last_applied(
    new: str | None, last: str | None, ancestor: bool | None, refused: bool
) -> None:
    history = History(lambda older, newer: ancestor)
    actual = ActualState((), applied_commit=last)
    if refused:
        with pytest.raises(Exception, match="--allow-older-state"):
            check_order(plan_at(new), actual, history)
        check_order(plan_at(new), actual, History(history.is_ancestor, allow_older=True))
    else:
        check_order(plan_at(new), actual, history)


def test_a_history_made_shallow_cannot_say_a_commit_is_not_an_ancestor(tmp_path: Path) -> None:
    """A full clone that a `git fetch --depth=1` made shallow still holds the older commits,
    but its history stops at the new boundary: "not an ancestor" is then unknown (None), and
    check_order fails closed, never open."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    commits = []
    for number in range(3):
        (origin / "f").write_text(str(number))
        git(origin, "add", "f")
        git(origin, "commit", "-q", "-m", str(number))
        commits.append(git(origin, "rev-parse", "HEAD"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", f"file://{origin}", str(clone))
    assert gitrepo.is_ancestor(clone, commits[0], commits[2]) is True
    (origin / "f").write_text("3")
    git(origin, "commit", "-q", "-am", "3")
    git(clone, "fetch", "-q", "--depth=1", "origin", "main")
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    newest = git(clone, "rev-parse", "FETCH_HEAD")  # the boundary: its parents are cut off
    assert gitrepo.is_ancestor(clone, commits[2], newest) is None  # git itself says "no"
    assert gitrepo.is_ancestor(clone, commits[1], commits[2]) is True


def test_a_shallow_clone_places_a_forward_apply(tmp_path: Path) -> None:
    """A default-depth clone (GIT_DEPTH 20) holds both commits of a forward apply: git's "not
    an ancestor" is believed once the walk the other way finds the last applied commit."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    for number in range(5):
        git(origin, "commit", "-q", "--allow-empty", "-m", str(number))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth=3", f"file://{origin}", str(clone))
    last, new = git(clone, "rev-parse", "HEAD~1"), git(clone, "rev-parse", "HEAD")
    assert gitrepo.is_ancestor(clone, new, last) is False  # forward: allowed
    assert gitrepo.is_ancestor(clone, last, new) is True  # backward: refused
