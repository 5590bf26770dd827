"""Every target installs from the mirror alone: resolved per target, checked with uv.

A realistic graph on the fake upstream: a numpy-like project whose newest release needs Python
3.12, a dependency only Windows needs, a backport only old Pythons need, a project whose newest
release has no wheel for two of the platforms. After one apply with the default targets, uv
compiles the requirements for each of the 15 default targets against `mirror serve`, binary
only, with no other index (uv needs no interpreter of that version to do so).
"""

from __future__ import annotations

import json
import re
import sys

from reconciler.model import DEFAULT_ENVIRONMENTS
from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import installed_version, pip_install, served, uv
from tests.servers.wheels import TINY_BACKEND

PLATFORM_TAGS = {
    "x86_64-manylinux_2_28": "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "macos": "macosx_11_0_arm64",
    "windows": "win_amd64",
}


def native(
    pythons: tuple[str, ...], platforms: tuple[str, ...] = tuple(PLATFORM_TAGS)
) -> tuple[str, ...]:
    """Wheel tags of CPython builds for these versions and platforms."""
    return tuple(
        f"cp{v.replace('.', '')}-cp{v.replace('.', '')}-{PLATFORM_TAGS[p]}"
        for v in pythons
        for p in platforms
    )


def realistic(workspace: Workspace) -> None:
    upstream = workspace.upstream
    upstream.add_release(
        "app",
        "1.0",
        days_ago(60),
        requires=(
            "numlike>=2",
            'winonly; sys_platform == "win32"',
            'backport; python_version < "3.11"',
            "fast",
        ),
    )
    upstream.add_release(
        "numlike",
        "2.4.6",
        days_ago(90),
        wheel_tags=native(("3.10", "3.11", "3.12", "3.13", "3.14")),
    )
    upstream.add_release(
        "numlike",
        "2.5.4",
        days_ago(30),
        wheel_tags=native(("3.12", "3.13", "3.14")),
        requires_python=">=3.12",
    )
    upstream.add_release("winonly", "1.0", days_ago(90))
    upstream.add_release("backport", "1.0", days_ago(90))
    upstream.add_release(
        "fast", "1.0", days_ago(90), wheel_tags=("cp310-abi3-" + t for t in PLATFORM_TAGS.values())
    )
    upstream.add_release(
        "fast",
        "2.0",
        days_ago(30),
        sdist=True,
        wheel_tags=("cp310-abi3-" + PLATFORM_TAGS["x86_64-manylinux_2_28"],),
    )
    workspace.requirements("app\n")


def pins(output: str) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9-]+)==(\S+)", output, re.MULTILINE))


def test_every_default_target_compiles_from_the_mirror_alone(workspace: Workspace) -> None:
    realistic(workspace)
    applied = workspace.mirror("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    requirements = workspace.root / "requirements.in"
    requirements.write_text("app\n")
    with served(workspace.desired) as url:
        for target in DEFAULT_ENVIRONMENTS:
            python, platform = target.python, target.platform.name
            result = uv(
                "pip", "compile", str(requirements), "--index-url", url,
                "--python-version", python, "--python-platform", platform,
                "--only-binary", ":all:", "--no-header", "--no-annotate",
                cache=workspace.root / "uv-cache",
            )  # fmt: skip
            assert result.returncode == 0, f"{target}: {result.stderr}"
            found = pins(result.stdout)
            assert found["numlike"] == ("2.4.6" if python in ("3.10", "3.11") else "2.5.4"), target
            assert found["fast"] == ("2.0" if platform == "x86_64-manylinux_2_28" else "1.0"), (
                target
            )
            assert ("winonly" in found) is (platform == "windows"), target
            assert ("backport" in found) is (python == "3.10"), target


def test_lines_split_by_markers_are_each_mirrored_for_their_targets(workspace: Workspace) -> None:
    realistic(workspace)
    workspace.requirements(
        'numlike==2.4.6 ; python_version < "3.12"\nnumlike==2.5.4 ; python_version >= "3.12"\n'
    )
    planned = workspace.mirror("plan", "--format", "json")
    assert planned.exit_code == 0, planned.output
    uploads = {(a["name"], a["version"]) for a in json.loads(planned.stdout)["actions"]}
    assert uploads == {("numlike", "2.4.6"), ("numlike", "2.5.4")}
    clash = 'numlike==2.4.6 ; python_version < "3.12"\nnumlike==2.5.4 ; python_version > "3.10"\n'
    workspace.requirements(clash)
    refused = workspace.mirror("plan")
    assert refused.exit_code == 1
    assert "requirements.txt:2: conflicting requirements for numlike" in refused.stderr
    assert "both serve 3.11 x86_64-manylinux_2_28" in refused.stderr


def test_the_plan_says_which_targets_it_judged_and_what_each_version_is_for(
    workspace: Workspace,
) -> None:
    realistic(workspace)
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    assert [c["target"] for c in document["coverage"]] == [str(t) for t in DEFAULT_ENVIRONMENTS]
    assert all(c["requirements"] == 1 and c["blocked"] == [] for c in document["coverage"])
    targets = {(a["name"], a["version"]): a["targets"] for a in document["actions"]}
    assert targets[("numlike", "2.4.6")] == [
        f"{v} {p}" for v in ("3.10", "3.11") for p in ("x86_64-manylinux_2_28", "macos", "windows")
    ]
    assert targets[("winonly", "1.0")] == [f"{v} windows" for v in PYTHONS]
    uploaded = [f for a in document["actions"] for f in a["files"]]
    assert document["download_bytes"] == sum(f["size"] for f in uploaded) > 0
    assert document["held_bytes"] == document["download_bytes"]
    table = workspace.mirror("plan").stdout
    pythons = "CPython 3.10, 3.11, 3.12, 3.13, 3.14"
    assert f"Targets: 15 ({pythons} on x86_64-manylinux_2_28, macos, windows); " in table
    assert "every requirement installs on each." in table
    assert f"Downloads {document['download_bytes'] / 1000:.1f} kB" in table


def test_a_requirement_no_release_of_which_fits_some_targets_is_blocked_there_only(
    workspace: Workspace,
) -> None:
    realistic(workspace)
    workspace.requirements("numlike==2.5.4\n")
    planned = workspace.mirror("plan", "--format", "json")
    document = json.loads(planned.stdout)
    old = [f"3.1{v} {p}" for v in (0, 1) for p in ("x86_64-manylinux_2_28", "macos", "windows")]
    assert {c["target"]: c["blocked"] for c in document["coverage"] if c["blocked"]} == {
        target: ["numlike"] for target in old
    }
    assert document["blocked"] == []  # the other targets install it: held for them
    (warning,) = [w for w in document["warnings"] if "numlike==2.5.4 is blocked on" in w]
    assert warning.startswith(f"numlike==2.5.4 is blocked on {', '.join(old)}: ")
    table = workspace.mirror("plan").stdout
    assert f"numlike blocked on {', '.join(old)}." in table


PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")


def test_an_sdist_is_built_with_a_backend_from_the_mirror_alone(workspace: Workspace) -> None:
    """A target with no wheel of a release builds its sdist: pip fetches the build backend
    from the same index (PEP 518), so the mirror holds that too, judged by the same policy."""
    upstream = workspace.upstream
    upstream.add_release("tinybuild", "1.0", days_ago(90), source=TINY_BACKEND)
    pyproject = '[build-system]\nrequires = ["tinybuild>=1"]\nbuild-backend = "tinybuild"\n'
    upstream.add_release(
        "needsbuild", "1.0", days_ago(90), wheel=False, sdist=True, pyproject=pyproject
    )
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    workspace.config(policy=f'  environments:\n    - {{python: "{here}", platform: linux}}\n')
    workspace.requirements("needsbuild\n")

    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    reasons = {a["name"]: a["reason"] for a in document["actions"]}
    assert reasons["tinybuild"] == "new build requirement of needsbuild 1.0 (to build it)"
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0

    target = workspace.root / "site"
    result = pip_install(f"file://{workspace.registry}/simple", target, "needsbuild")
    assert result.returncode == 0, result.stderr
    assert installed_version(target, "needsbuild") == "1.0"


def test_an_sdist_that_cannot_be_built_from_the_mirror_blocks_what_needs_it(
    workspace: Workspace,
) -> None:
    pyproject = '[build-system]\nrequires = ["nowhere-backend"]\nbuild-backend = "nowhere"\n'
    workspace.upstream.add_release(
        "needsbuild", "1.0", days_ago(90), wheel=False, sdist=True, pyproject=pyproject
    )
    workspace.upstream.add_release("app", "1.0", days_ago(90), requires=("needsbuild",))
    workspace.config(policy='  environments:\n    - {python: "3.12", platform: linux}\n')
    workspace.requirements("app\n")
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    (blocked,) = document["blocked"]
    assert blocked["name"] == "app" and blocked["reason"] == "dependency-unsatisfiable"
    assert blocked["detail"].startswith(
        "needsbuild 1.0 cannot be built on 3.12 linux (no wheel of it fits there): "
        "nowhere-backend: project not found on the upstream index"
    )


def test_a_project_listed_for_one_target_is_audited_as_the_others_dependency(
    workspace: Workspace,
) -> None:
    upstream = workspace.upstream
    upstream.add_release("app", "1.0", days_ago(90), requires=("foo",))
    upstream.add_release("foo", "1.0", days_ago(90))
    upstream.add_release("foo", "2.0", days_ago(60))
    workspace.config(
        policy='  environments:\n    - {python: "3.12", platform: linux}\n'
        '    - {python: "3.12", platform: windows}\n'
    )
    workspace.requirements('app\nfoo<2; sys_platform == "win32"\n')
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    held = {(a["name"], a["version"]): a["targets"] for a in document["actions"]}
    assert held[("foo", "2.0")] == ["3.12 linux"] and held[("foo", "1.0")] == ["3.12 windows"]
    assert not any("no record" in w for w in document["warnings"])
