"""An organisation's catalog: several requirement sets, each resolved as its own environment.

Two teams pin different versions of one project; each set is resolved on its own (per target)
and the registry holds the union, so both teams install from the mirror alone.
"""

from __future__ import annotations

import json

from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import installed_version, pip_install

SETS = "sets:\n  web: teams/web.txt\n  data: teams/data/requirements.in\n"


def two_teams(workspace: Workspace, web: str, data: str) -> None:
    workspace.config(extra=SETS)
    (workspace.desired / "teams" / "data").mkdir(parents=True)
    (workspace.desired / "teams" / "web.txt").write_text(web)
    (workspace.desired / "teams" / "data" / "requirements.in").write_text(data)


def test_two_sets_pinning_different_versions_of_one_project_both_install(
    workspace: Workspace,
) -> None:
    upstream = workspace.upstream
    upstream.add_release("shared", "1.0", days_ago(90), requires=("helper<2",))
    upstream.add_release("shared", "2.0", days_ago(60), requires=("helper>=2",))
    upstream.add_release("helper", "1.5", days_ago(90))
    upstream.add_release("helper", "2.1", days_ago(60))
    two_teams(workspace, "shared==1.0\n", "# the data team\nshared>=2\n")

    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    uploads = {(a["name"], a["version"]): a["sets"] for a in document["actions"]}
    assert uploads == {
        ("shared", "1.0"): ["web"],
        ("helper", "1.5"): ["web"],
        ("shared", "2.0"): ["data"],
        ("helper", "2.1"): ["data"],
    }
    assert [(x["name"], x["source"], x["requirements"]) for x in document["sets"]] == [
        ("web", "teams/web.txt", 1),
        ("data", "teams/data/requirements.in", 1),
    ]
    table = workspace.mirror("plan").stdout
    assert "new requirement" in table and "(for web)" in table and "(for data)" in table
    sets = "Sets: web (teams/web.txt, 1 requirement), data (teams/data/requirements.in, 1 "
    assert sets in table
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0

    index = f"file://{workspace.registry}/simple"
    for pin, helper in (("shared==1.0", "1.5"), ("shared==2.0", "2.1")):
        target = workspace.root / f"site-{pin}"
        result = pip_install(index, target, pin)
        assert result.returncode == 0, result.stderr
        assert installed_version(target, "helper") == helper


def test_a_blocked_line_names_its_set_file_and_line(workspace: Workspace) -> None:
    workspace.upstream.add_release("fresh", "1.0", days_ago(2))
    workspace.upstream.add_release("ok", "1.0", days_ago(90))
    two_teams(workspace, "ok\n", "ok\n\nfresh\n")

    result = workspace.mirror("plan", "--format", "json")
    (blocked,) = json.loads(result.stdout)["blocked"]
    where = "desired-state/teams/data/requirements.in:3"
    assert (blocked["set"], blocked["source"]) == ("data", where)
    table = workspace.mirror("plan").stdout
    assert f"x blocked data: fresh ({where})" in table


def test_pins_conflict_within_a_set_never_across_sets(workspace: Workspace) -> None:
    workspace.upstream.add_release("shared", "1.0", days_ago(90))
    two_teams(workspace, "shared==1.0\nshared==2.0\n", "shared==1.0\n")
    result = workspace.mirror("plan")
    assert result.exit_code == 1
    assert "teams/web.txt" in result.output and "conflict" in result.output.lower()
