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

from reconciler.model import DEFAULT_ENVIRONMENTS
from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import served, uv

PLATFORM_TAGS = {
    "linux": "manylinux_2_17_x86_64.manylinux2014_x86_64",
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
        wheel_tags=("cp310-abi3-" + PLATFORM_TAGS["linux"],),
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
            assert found["fast"] == ("2.0" if platform == "linux" else "1.0"), target
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
    assert "both serve 3.11 linux" in refused.stderr
