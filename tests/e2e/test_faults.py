"""What clients are served is what the mirror says it holds, whatever stops an apply half way.

Every step the directory registry takes on disk (write a temporary file, rename, remove) is
made to fail in turn, as a kill (nothing after it runs) and as a full disk (ENOSPC on a write),
during an upload, a prune and a quarantine. After each, recovery is either a new plan or the
same saved plan applied again: the next plan says something is to be done whenever the registry
is not as it should be, one clean apply brings it there, and then pages agree with each other
and with the files, no pruned or quarantined byte is on disk, the quarantine log has what was
quarantined, and a further plan has nothing to do.
"""

from __future__ import annotations

import errno
import html
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler import operations, wiring
from reconciler.applier import ApplyResult
from reconciler.cancel import Cancellation
from reconciler.desired import load_desired_state
from reconciler.model import DesiredState, Plan
from reconciler.progress import NullProgress
from reconciler.registry import DirectoryRegistry
from reconciler.registry.fileops import FileOps
from reconciler.registry.survey import survey
from tests.conftest import FROZEN_NOW, Workspace, days_ago, fast_retries, frozen_clock
from tests.servers.upstream import FakeFile


class Killed(BaseException):  # noqa: N818 - stands for SIGKILL: no handler catches it
    """The process died at this step."""


class Faulty(FileOps):
    """Counts the registry's steps on disk, and fails step `at` as `kind` ("kill", "full")."""

    def __init__(self, at: int = 0, kind: str = "kill") -> None:
        self.at, self.kind, self.steps = at, kind, 0
        self.writes: list[int] = []  # which steps write (where a disk can be full)

    def _step(self, writes: bool) -> None:
        self.steps += 1
        if writes:
            self.writes.append(self.steps)
        if self.steps == self.at:
            if self.kind == "kill":
                raise Killed
            if writes:
                raise OSError(errno.ENOSPC, "No space left on device")

    def write_temporary(self, directory: Path, name: str, data: bytes) -> Path:
        self._step(writes=True)
        return super().write_temporary(directory, name, data)

    def rename(self, source: Path, target: Path) -> None:
        self._step(writes=False)
        super().rename(source, target)

    def remove(self, path: Path) -> None:
        self._step(writes=False)
        super().remove(path)

    def remove_tree(self, path: Path) -> None:
        self._step(writes=False)
        super().remove_tree(path)


_LOADED: dict[bytes, DesiredState] = {}


def _desired_state(directory: Path) -> DesiredState:
    """The desired state, parsed once per content (the loops below apply it a hundred times)."""
    content = b"\0".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())
    key = str(directory).encode() + b"\0" + content
    if key not in _LOADED:
        _LOADED[key] = load_desired_state(directory)
    return _LOADED[key]


class Mirror:
    """The commands, in this process, with the registry's steps on disk through `fs`."""

    def __init__(self, workspace: Workspace, fs: FileOps) -> None:
        runtime = wiring.Runtime(clock=frozen_clock, retries=fast_retries())
        self.desired = _desired_state(workspace.desired)
        self.registry = DirectoryRegistry(workspace.registry, frozen_clock, fs)
        self.upstream = wiring.make_upstream(self.desired, workspace.root / "cache", runtime)
        self.services = wiring.make_services(self.desired, workspace.root / "cache", runtime)

    def plan(self) -> Plan:
        """`mirror plan --out`."""
        actual = self.registry.list_actual()
        return operations.make_plan(
            self.desired, actual, self.upstream, self.services, FROZEN_NOW, frozen_clock
        )

    def plan_and_apply(self, apply: bool = True) -> Plan:
        """`mirror apply --auto-approve` (or only its plan)."""
        plan, _ = operations.plan_and_apply(
            self.desired,
            self.registry,
            self.upstream,
            self.services,
            FROZEN_NOW,
            approve=lambda _plan: apply,
            progress=NullProgress(),
            allow_mass_delete=True,
            clock=frozen_clock,
            cancel=Cancellation(),
        )
        return plan

    def apply_saved(self, plan: Plan) -> ApplyResult:
        """`mirror apply plan.json`."""
        return operations.apply_saved(
            plan,
            self.desired,
            self.registry,
            self.upstream,
            self.services,
            NullProgress(),
            frozen_clock,
            Cancellation(),
        )


def served(root: Path) -> set[tuple[str, str]]:
    """(project, file) of every distribution under `files/`: what a web server hands out."""
    return {
        (path.parent.name, path.name)
        for path in (root / "files").glob("*/*")
        if not path.name.endswith(".metadata")
    }


def check_consistent(root: Path) -> None:
    """Both pages of every project list exactly the files on disk, the root pages name exactly
    the projects, and the survey finds nothing to repair."""
    assert survey(root).repairs() == []
    names = set()
    for directory in (root / "simple").iterdir():
        if not directory.is_dir():
            continue
        names.add(directory.name)
        listed_json = {
            f["filename"] for f in json.loads((directory / "index.json").read_text())["files"]
        }
        listed_html = set(
            map(html.unescape, re.findall(r">([^<>]+)</a>", (directory / "index.html").read_text()))
        )
        on_disk = {n for p, n in served(root) if p == directory.name}
        assert listed_json == listed_html == on_disk, directory.name
    root_json = json.loads((root / "simple" / "index.json").read_text())
    assert {p["name"] for p in root_json["projects"]} == names


def upload(workspace: Workspace) -> None:
    workspace.requirements("foo==1.0\nbar==2.0\n")


def prune(workspace: Workspace) -> None:
    workspace.requirements("foo==1.0\n")


def quarantine(workspace: Workspace) -> None:
    workspace.osv.add("GHSA-bar", "bar", ["2.0"], fixed="2.1")
    workspace.requirements("foo==1.0\nbar>=1.9\n")


SCENARIOS: dict[str, tuple[str, Callable[[Workspace], None], set[tuple[str, str]]]] = {
    "upload": (
        "",
        upload,
        {
            ("foo", "foo-1.0-py3-none-any.whl"),
            ("foo", "foo-1.0.tar.gz"),
            ("bar", "bar-2.0-py3-none-any.whl"),
            ("bar", "bar-2.0.tar.gz"),
        },
    ),
    "prune": (
        "foo==1.0\nbar==2.0\n",
        prune,
        {("foo", "foo-1.0-py3-none-any.whl"), ("foo", "foo-1.0.tar.gz")},
    ),
    "quarantine": (
        "foo==1.0\nbar>=1.9\n",
        quarantine,
        {
            ("foo", "foo-1.0-py3-none-any.whl"),
            ("foo", "foo-1.0.tar.gz"),
            ("bar", "bar-1.9-py3-none-any.whl"),
        },
    ),
}


def quarantined(root: Path) -> set[str]:
    """The quarantine log's entries."""
    path = root / ".mirror" / "quarantine.json"
    return set(json.loads(path.read_text())) if path.exists() else set()


@pytest.mark.parametrize("resume", [False, True], ids=["plan-again", "resume-saved-plan"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_an_apply_stopped_at_any_step_is_repaired_by_the_next(
    workspace: Workspace, scenario: str, resume: bool
) -> None:
    """Recovery is a new plan applied, or the same saved plan applied again (README: a killed
    apply is finished by running it again)."""
    before, change, expected = SCENARIOS[scenario]
    upstream = workspace.upstream
    upstream.add_release("foo", "1.0", days_ago(60), sdist=True)
    upstream.add_release("bar", "1.9", days_ago(90))
    upstream.add_release("bar", "2.0", days_ago(60), sdist=True)
    if before:
        workspace.requirements(before)
        Mirror(workspace, FileOps()).plan_and_apply()
    pristine = workspace.root / "pristine"
    shutil.copytree(
        workspace.registry, pristine
    ) if workspace.registry.exists() else pristine.mkdir()
    change(workspace)
    counting = Faulty()
    Mirror(workspace, counting).plan_and_apply()
    assert served(workspace.registry) == expected
    check_consistent(workspace.registry)
    assert counting.steps > 5
    log = quarantined(workspace.registry)
    assert ("bar 2" in log) is (scenario == "quarantine")

    faults = [(at, "kill") for at in range(1, counting.steps + 1)]
    faults += [(at, "full") for at in counting.writes]
    for at, kind in faults:
        shutil.rmtree(workspace.registry)
        shutil.copytree(pristine, workspace.registry)
        saved = Mirror(workspace, FileOps()).plan() if resume else None
        faulty = Mirror(workspace, Faulty(at, kind))
        try:
            faulty.apply_saved(saved) if saved else faulty.plan_and_apply()
        except (Killed, OSError):
            pass
        where = f"{scenario}: {kind} at step {at}"
        if saved:
            result = Mirror(workspace, FileOps()).apply_saved(saved)
            assert not result.errors, f"{where}: {result.errors}"
        else:
            wrong = served(workspace.registry) != expected or survey(workspace.registry).repairs()
            recovery = Mirror(workspace, FileOps()).plan_and_apply()
            assert recovery.has_changes or not wrong, f"{where}: the plan does not see it"
        assert served(workspace.registry) == expected, where
        check_consistent(workspace.registry)
        assert quarantined(workspace.registry) == log, where
        assert not Mirror(workspace, FileOps()).plan_and_apply(apply=False).has_changes, where


def quarantine_log(root: Path) -> dict[str, Any]:
    path = root / ".mirror" / "quarantine.json"
    document: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return document


@pytest.mark.parametrize("changed", [".whl", ".tar.gz"])
@pytest.mark.parametrize("resume", [False, True], ids=["plan-again", "resume-saved-plan"])
def test_an_upstream_changed_quarantine_stopped_at_any_step_keeps_refusing_the_new_bytes(
    workspace: Workspace, changed: str, resume: bool
) -> None:
    """A quarantine cut short and done again removes fewer files: the record must still hold
    the bytes first taken of every file, so the new bytes are never uploaded."""
    workspace.upstream.add_release("foo", "1.0", days_ago(60), sdist=True)
    workspace.requirements("foo==1.0\n")
    Mirror(workspace, FileOps()).plan_and_apply()
    files = workspace.upstream.projects["foo"].files
    (original,) = [f for f in files if f.filename.endswith(changed)]
    workspace.upstream.add_file("foo", FakeFile(original.filename, original.upload_time, b"new"))
    pristine = workspace.root / "pristine"
    shutil.copytree(workspace.registry, pristine)
    counting = Faulty()
    Mirror(workspace, counting).plan_and_apply()
    (record,) = quarantine_log(workspace.registry).values()
    assert record["cause"] == "upstream-changed" and len(record["files"]) == 2

    for at in range(1, counting.steps + 1):
        shutil.rmtree(workspace.registry)
        shutil.copytree(pristine, workspace.registry)
        saved = Mirror(workspace, FileOps()).plan() if resume else None
        faulty = Mirror(workspace, Faulty(at))
        try:
            faulty.apply_saved(saved) if saved else faulty.plan_and_apply()
        except Killed:
            pass
        if saved:
            Mirror(workspace, FileOps()).apply_saved(saved)
        Mirror(workspace, FileOps()).plan_and_apply()
        (kept,) = quarantine_log(workspace.registry).values()
        assert sorted(kept["files"]) == sorted(record["files"]), f"kill at step {at}"
        assert not Mirror(workspace, FileOps()).plan().actions, f"kill at step {at}"
        assert served(workspace.registry) == set(), f"kill at step {at}"


def test_a_saved_plan_naming_part_of_a_quarantine_carries_out_all_of_it(
    workspace: Workspace,
) -> None:
    """An edited plan that drops the unchanged file from an upstream-changed quarantine:
    deleting less would leave the version half served and unrecorded, then restored with
    the new bytes."""
    workspace.upstream.add_release("foo", "1.0", days_ago(60), sdist=True)
    workspace.requirements("foo==1.0\n")
    Mirror(workspace, FileOps()).plan_and_apply()
    files = workspace.upstream.projects["foo"].files
    (wheel,) = [f for f in files if f.filename.endswith(".whl")]
    workspace.upstream.add_file("foo", FakeFile(wheel.filename, wheel.upload_time, b"new"))
    plan = Mirror(workspace, FileOps()).plan()
    (quarantine,) = plan.actions
    edited = replace(
        plan,
        actions=(
            replace(
                quarantine, files=tuple(f for f in quarantine.files if f.filename == wheel.filename)
            ),
        ),
    )
    result = Mirror(workspace, FileOps()).apply_saved(edited)
    assert result.deleted == 2 and served(workspace.registry) == set()
    assert not Mirror(workspace, FileOps()).plan_and_apply().actions  # the new bytes stay out
