"""What a person at a terminal sees: the plan at the terminal's width, progress, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from reconciler.planfile import read_plan
from reconciler.registry import DirectoryRegistry
from reconciler.report import TableFormat
from tests.conftest import NOW_ARG, Workspace, days_ago, wall_days_ago
from tests.e2e.helpers import Repeat, mirror_command, run_on_terminal, wait_for
from tests.servers.base import Gate
from tests.servers.upstream import FakeFile


def seed(workspace: Workspace) -> None:
    upstream = workspace.upstream
    upstream.add_release("foo-bar", "1.0", days_ago(100))
    upstream.add_release("foo-bar", "1.1", days_ago(40))
    upstream.add_release("foo-bar", "1.2", days_ago(3))
    upstream.add_release("extraordinarily-long-project-name", "2.0", days_ago(30))
    upstream.add_release("young", "1.0", days_ago(2))
    upstream.add_release("vuln", "1.0", days_ago(30))
    workspace.osv.add("GHSA-aaaa-bbbb-cccc", "vuln", ["1.0"], fixed="1.1", summary="x " * 60)
    workspace.requirements(
        "foo-bar>=1\nextraordinarily-long-project-name==2.0\nyoung>=1.0,!=1.0.5,<2\nvuln==1.0\n"
    )


def plan_on_terminal(workspace: Workspace, columns: int) -> str:
    command = mirror_command("plan", "--desired-state", str(workspace.desired), "--now", NOW_ARG)
    code, output = run_on_terminal(command, columns)
    assert code == 0, output
    return output


WORDS = (
    "requirement",
    "extraordinarily-long-project-name==2.0",
    "young>=1.0,!=1.0.5,<2",
    "https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc",
    "eligible",
)


def fits(output: str, columns: int) -> None:
    """No line wider than the terminal (but a word longer than a line, kept whole), and no
    word split."""
    too_wide = [line for line in output.splitlines() if len(line) > columns]
    assert [line for line in too_wide if len(line.split()) > 1] == []
    for word in WORDS:
        assert any(word in line for line in output.splitlines()), (columns, word)
    assert "Plan: 2 to upload, 0 to delete, 2 blocked." in " ".join(output.split())


def test_the_plan_fits_the_terminal_and_splits_no_word(workspace: Workspace) -> None:
    """The real command on a 60-column terminal; then the same plan at other widths, rendered
    as the command renders it for a terminal of that width."""
    seed(workspace)
    fits(plan_on_terminal(workspace, 60), 60)
    document = workspace.mirror("plan", "--format", "json").stdout
    (workspace.root / "plan.json").write_text(document)
    plan = read_plan(workspace.root / "plan.json")
    for columns in (40, 80, 99, 100, 104, 120, 140, 250):
        fits(TableFormat(color=False, width=columns).render(plan), columns)


def test_progress_fits_a_60_column_terminal(workspace: Workspace) -> None:
    gate = Gate()  # the download waits until a bar has been drawn
    name = "extraordinarily_long_project_name-2.0-py3-none-any.whl"
    big = FakeFile(name, wall_days_ago(30), size=4 << 20, gate=gate, gate_after=1 << 20)
    workspace.upstream.add_file("extraordinarily-long-project-name", big)
    workspace.upstream.add_release("foo", "1.0", wall_days_ago(30))
    workspace.requirements("extraordinarily-long-project-name==2.0\nfoo==1.0\n")
    command = mirror_command("apply", "--auto-approve", "--desired-state", str(workspace.desired))
    try:
        code, output = run_on_terminal(command, 60, {"━".encode(): gate.open})
    finally:
        gate.open()
    assert code == 0, output
    assert "━" in output and "MB" in output  # a bar was drawn, with its byte counts
    assert [line for line in output.splitlines() if len(line) > 60] == []
    assert "Apply complete: 2 uploaded" in output


@pytest.mark.parametrize("stuck", ["mid-download", "before-headers", "retry-wait"])
def test_ctrl_c_during_an_apply_stops_within_two_seconds_and_says_what_is_left(
    workspace: Workspace, stuck: str
) -> None:
    """However the big download is stuck (mid-body, waiting for the server's headers, waiting
    out a Retry-After of 20 s), Ctrl-C ends the apply at once, cleanly."""
    workspace.upstream.add_release("first", "1.0", days_ago(30))
    gate = Gate()
    big = FakeFile("second-1.0-py3-none-any.whl", days_ago(30), size=64 << 20)
    workspace.upstream.add_file("second", big)
    workspace.requirements("first==1.0\nsecond==1.0\n")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    if stuck == "retry-wait":
        workspace.upstream.failure = (503, "20")
        workspace.upstream.fail_next[f"/files/{big.filename}"] = 100
    else:
        big.gate, big.gate_after = gate, (2 << 20 if stuck == "mid-download" else 0)
    process = subprocess.Popen(
        mirror_command("apply", "plan.json", "--desired-state", str(workspace.desired)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if stuck == "retry-wait":
            wait_for(lambda: workspace.upstream.statuses[503] >= 1)
        else:
            assert gate.arrived.wait(60), "the download never started"
        first = workspace.registry / "simple" / "first" / "index.json"
        wait_for(first.exists)  # the small file is placed; the big one is stuck
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C changes nothing
        out, err = process.communicate(timeout=60)
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
    workspace.upstream.fail_next.clear()
    resumed = workspace.mirror("apply", "plan.json")
    assert resumed.exit_code == 0, resumed.output
    listing = DirectoryRegistry(workspace.registry).list_actual()
    assert {f.filename for f in listing.files} == {"first-1.0-py3-none-any.whl", big.filename}


def test_an_interrupted_drift_reports_what_it_left_undone(workspace: Workspace) -> None:
    workspace.upstream.add_release("first", "1.0", wall_days_ago(30))
    gate = Gate()
    big = FakeFile("second-1.0-py3-none-any.whl", wall_days_ago(30), size=8 << 20, gate=gate)
    workspace.upstream.add_file("second", big)
    workspace.requirements("first==1.0\nsecond==1.0\n")
    command = mirror_command(
        "drift", "--report-dir", "reports", "--desired-state", str(workspace.desired)
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert gate.arrived.wait(60), "the download never started"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        gate.open()
        process.kill()
    assert process.returncode == 130, (out, err)
    report = json.loads((workspace.root / "reports" / "drift-report.json").read_text())
    assert report["mode"] == "interrupted"
    assert "upload second 1.0" in report["apply"]["undone"]
    markdown = (workspace.root / "reports" / "drift-report.md").read_text()
    assert "interrupted, left undone: " in markdown and "applied." not in markdown


def test_ctrl_c_at_the_prompt_exits_130(workspace: Workspace) -> None:
    workspace.upstream.add_release("foo", "1.0", wall_days_ago(30))
    workspace.requirements("foo==1.0\n")
    command = mirror_command("apply", "--desired-state", str(workspace.desired))
    code, output = run_on_terminal(command, answers={b"Apply these changes?": Repeat(b"\x03")})
    assert code == 130 and "interrupted" in output
    assert not (workspace.registry / "files").exists()
