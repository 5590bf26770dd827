"""What a person at a terminal sees: the plan at the terminal's width, progress, Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from reconciler.registry import DirectoryRegistry
from tests.conftest import NOW_ARG, Workspace, days_ago
from tests.e2e.helpers import mirror_command, run_on_terminal, wait_for
from tests.servers.base import Gate
from tests.servers.upstream import FakeFile


def seed(workspace: Workspace) -> None:
    upstream = workspace.upstream
    upstream.add_release("foo-bar", "1.0", days_ago(100))
    upstream.add_release("foo-bar", "1.1", days_ago(40))
    upstream.add_release("foo-bar", "1.2", days_ago(3))
    upstream.add_release("extraordinarily-long-project-name", "2.0", days_ago(30))
    upstream.add_release("young", "1.0", days_ago(2))
    workspace.osv.add("GHSA-aaaa-bbbb-cccc", "foo-bar", ["1.0"], fixed="1.1", summary="x" * 90)
    workspace.requirements("foo-bar>=1\nextraordinarily-long-project-name==2.0\nyoung>=1\n")


def plan_on_terminal(workspace: Workspace, columns: int) -> str:
    command = mirror_command("plan", "--desired-state", str(workspace.desired), "--now", NOW_ARG)
    code, output = run_on_terminal(command, columns)
    assert code == 0, output
    return output


@pytest.mark.parametrize("columns", [60, 80, 100, 140])
def test_the_plan_fits_the_terminal_and_splits_no_word(workspace: Workspace, columns: int) -> None:
    seed(workspace)
    output = plan_on_terminal(workspace, columns)
    assert [line for line in output.splitlines() if len(line) > columns] == []
    words = output.split()
    for word in ("requirement", "extraordinarily-long-project-name==2.0", "eligible", "young>=1"):
        assert any(word in w for w in words), word
    assert "Plan: 2 to upload, 0 to delete, 1 blocked." in output


def test_progress_fits_a_60_column_terminal(workspace: Workspace) -> None:
    gate = Gate()  # the download waits until a bar has been drawn
    name = "extraordinarily_long_project_name-2.0-py3-none-any.whl"
    big = FakeFile(name, days_ago(30), size=4 << 20, gate=gate, gate_after=1 << 20)
    workspace.upstream.add_file("extraordinarily-long-project-name", big)
    workspace.upstream.add_release("foo", "1.0", days_ago(30))
    workspace.requirements("extraordinarily-long-project-name==2.0\nfoo==1.0\n")
    command = mirror_command(
        "apply", "--auto-approve", "--desired-state", str(workspace.desired), "--now", NOW_ARG
    )
    try:
        code, output = run_on_terminal(command, 60, {"━".encode(): gate.open})
    finally:
        gate.open()
    assert code == 0, output
    assert "━" in output and "MB" in output  # a bar was drawn, with its byte counts
    assert [line for line in output.splitlines() if len(line) > 60] == []
    assert "Apply complete: 2 uploaded" in output


def test_ctrl_c_during_an_apply_stops_within_two_seconds_and_says_what_is_left(
    workspace: Workspace,
) -> None:
    workspace.upstream.add_release("first", "1.0", days_ago(30))
    gate = Gate()  # the big download stops after 2 MiB: Ctrl-C lands mid-download
    big = FakeFile(
        "second-1.0-py3-none-any.whl", days_ago(30), size=64 << 20, gate=gate, gate_after=2 << 20
    )
    workspace.upstream.add_file("second", big)
    workspace.requirements("first==1.0\nsecond==1.0\n")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    process = subprocess.Popen(
        mirror_command("apply", "plan.json", "--desired-state", str(workspace.desired)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gate.arrived.wait(60), "the download never started"
        first = workspace.registry / "simple" / "first" / "index.json"
        wait_for(first.exists)  # the small file is placed; the big one is stuck mid-way
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        gate.open()
        process.kill()
    assert process.returncode == 130, (out, err)
    assert took < 2.0, f"took {took:.1f} s to stop"
    assert "Apply interrupted:" in out and "Left undone: upload second 1.0." in out
    listing = DirectoryRegistry(workspace.registry).list_actual()
    assert {f.filename for f in listing.files} == {"first-1.0-py3-none-any.whl"}
    assert not (workspace.registry / "files" / "second").exists()
    assert not list((workspace.registry / ".mirror" / "staging").rglob("*"))

    big.gate = None
    resumed = workspace.mirror("apply", "plan.json")
    assert resumed.exit_code == 0, resumed.output
    listing = DirectoryRegistry(workspace.registry).list_actual()
    assert {f.filename for f in listing.files} == {"first-1.0-py3-none-any.whl", big.filename}
