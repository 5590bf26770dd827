"""Retention: a version that leaves the desired state without a quarantine cause stays,
yanked (PEP 592), for `policy.retain_days`: new resolutions pass it by, exact pins and
lockfiles still install it; then a plan prunes it. A quarantine still deletes at once."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import installed_version, pip_install


def moved_on(workspace: Workspace) -> str:
    """`pkg` held at 1.0; ten days later 2.0 has matured and the range moves on. Returns a
    lock (pip's format, with hashes) made while 1.0 was current."""
    (wheel,) = workspace.upstream.add_release("pkg", "1.0", days_ago(90))
    workspace.upstream.add_release("pkg", "2.0", days_ago(5))
    workspace.config(retain_days=None)  # the product's default
    workspace.requirements("pkg\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.elapsed = timedelta(days=10)
    return f"pkg==1.0 --hash=sha256:{wheel.sha256}\n"


def test_a_superseded_version_stays_yanked_for_pins_and_locks_then_goes(
    workspace: Workspace,
) -> None:
    old_lock = moved_on(workspace)
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    (retain,) = [a for a in document["actions"] if a["cause"] == "retained"]
    assert (retain["name"], retain["version"]) == ("pkg", "1.0")
    assert {f["yanked_reason"] for f in retain["files"]} == {
        "superseded by 2.0; removed after 2027-01-03"  # 10 + 30 days after FROZEN_NOW
    }
    assert document["retained"] == [{"name": "pkg", "version": "1.0", "until": "2027-01-03"}]
    assert not [a for a in document["actions"] if a["action"] == "delete"]
    table = workspace.mirror("plan").stdout
    assert "~ retain pkg 1.0" in table and "1 to retain" in table
    note = workspace.mirror("plan", "--format", "markdown").stdout
    assert "#### Removals (1)" in note and "Kept, yanked" not in note  # pkg 1.0 said once:
    assert "| pkg | 1.0 | 1 |  | retained, yanked, until 2027-01-03: superseded" in note
    # Planned on a merge request, applied on main from the saved plan.
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    applied = workspace.mirror("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    page = json.loads((workspace.registry / "simple" / "pkg" / "index.json").read_text())
    yanked = {f["filename"]: f.get("yanked") for f in page["files"]}
    assert yanked == {
        "pkg-1.0-py3-none-any.whl": "superseded by 2.0; removed after 2027-01-03",
        "pkg-2.0-py3-none-any.whl": False,
    }

    index = f"file://{workspace.registry}/simple"
    newest = workspace.root / "newest"
    assert pip_install(index, newest, "pkg").returncode == 0
    assert installed_version(newest, "pkg") == "2.0"
    # A range passes the yanked version by (PEP 592): only an exact pin takes it.
    assert pip_install(index, workspace.root / "range", "pkg<2").returncode != 0
    pinned = workspace.root / "pinned"
    assert pip_install(index, pinned, "pkg==1.0").returncode == 0
    assert installed_version(pinned, "pkg") == "1.0"
    lock = workspace.root / "old-lock.txt"
    lock.write_text(old_lock)
    locked = pip_install(index, workspace.root / "locked", "--require-hashes", "-r", str(lock))
    assert locked.returncode == 0, locked.stderr

    # Nothing more to do while it is retained; the plan says until when.
    assert "Kept, yanked, until removed: pkg 1.0 (2027-01-03)" in workspace.mirror("plan").stdout
    workspace.elapsed = timedelta(days=41)  # past the date in the registry's own state
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    (prune,) = document["actions"]
    assert (prune["action"], prune["cause"], prune["version"]) == ("delete", "superseded", "1.0")
    assert prune["reason"].endswith("retained until 2027-01-03")


def test_a_quarantine_during_retention_deletes_at_once(workspace: Workspace) -> None:
    moved_on(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-reta-ined-0001", "pkg", ["1.0"], fixed="2.0")
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    (delete,) = document["actions"]
    assert (delete["action"], delete["version"], delete["quarantine"]) == ("delete", "1.0", True)
    assert document["retained"] == []


def test_a_retained_version_wanted_again_is_unyanked(workspace: Workspace) -> None:
    moved_on(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.requirements("pkg==1.0\n")
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    back = next(a for a in document["actions"] if a["version"] == "1.0")
    assert back["action"] == "upload" and not any(f["yanked"] for f in back["files"])
    assert all(f["before_sha256"] == f["sha256"] for f in back["files"])  # no download
