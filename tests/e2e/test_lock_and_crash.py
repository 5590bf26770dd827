"""Real processes: lock contention, force-unlock, and an apply killed half way then resumed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler.registry import DirectoryRegistry
from tests.conftest import Workspace, days_ago, wall_days_ago
from tests.e2e.helpers import (
    installed_version,
    manager_command,
    mirror_command,
    pip_install,
    run_on_terminal,
    wait_for,
)
from tests.servers.base import Gate
from tests.servers.upstream import FakeFile

HOLD_LOCK = """
import sys, time
from reconciler.registry import DirectoryRegistry
with DirectoryRegistry(__import__("pathlib").Path(sys.argv[1])).lock("alice@ci (job 42)") as info:
    print(info.id, flush=True)
    time.sleep(60)
"""


def test_second_apply_fails_at_once_naming_the_holder(workspace: Workspace) -> None:
    workspace.upstream.add_release("foo", "1.0", days_ago(30))
    workspace.requirements("foo==1.0\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workspace.registry)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        lock_id = holder.stdout.readline().strip()
        started = time.monotonic()
        result = workspace.mirror("apply", "--auto-approve")
        assert time.monotonic() - started < 10
        assert result.exit_code == 1
        assert "locked by alice@ci (job 42)" in result.stderr
        assert f"mirror force-unlock {lock_id}" in result.stderr
        assert not (workspace.registry / "files").exists()

        wrong = workspace.mirror("force-unlock", "not-the-id")
        assert wrong.exit_code == 1 and "does not match" in wrong.stderr
        unlocked = workspace.mirror("force-unlock", lock_id)
        assert unlocked.exit_code == 0, unlocked.output
        assert f"Removed lock {lock_id} held by alice@ci (job 42)" in unlocked.stdout

        result = workspace.mirror("apply", "--auto-approve")
        assert result.exit_code == 0, result.output
    finally:
        holder.kill()
        holder.wait()


def test_apply_killed_midway_is_finished_by_the_next_apply(workspace: Workspace) -> None:
    workspace.upstream.add_release("first", "1.0", days_ago(30))
    # The download stops after 2 of its 16 MiB until the test opens the gate: caught mid-way.
    gate = Gate()
    slow = workspace.upstream.add_file(
        "second",
        FakeFile(
            "second-1.0-py3-none-any.whl",
            days_ago(30),
            size=16 * 1024 * 1024,
            gate=gate,
            gate_after=2 * 1024 * 1024,
        ),
    )
    workspace.upstream.add_release("third", "1.0", days_ago(30))
    workspace.requirements("first==1.0\nsecond==1.0\nthird==1.0\n")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0

    process = subprocess.Popen(
        mirror_command(
            "apply",
            str(workspace.root / "plan.json"),
            "--desired-state",
            str(workspace.desired),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = workspace.registry / ".mirror" / "staging"

    def partial_download() -> bool:
        parts = list(staging.rglob(slow.filename))
        return bool(parts) and parts[0].stat().st_size > 1024 * 1024

    def small_files_placed() -> bool:  # the root JSON page is the last one a placement writes
        root = workspace.registry / "simple" / "index.json"
        return root.exists() and all(f'"{n}"' in root.read_text() for n in ("first", "third"))

    assert gate.arrived.wait(60), "the download never started"
    wait_for(partial_download)
    wait_for(small_files_placed)  # downloads run concurrently: the small ones are in
    process.send_signal(signal.SIGKILL)
    process.wait()
    gate.open()

    listing = DirectoryRegistry(workspace.registry).list_actual()
    placed = {f.filename for f in listing.files}
    assert placed == {"first-1.0-py3-none-any.whl", "third-1.0-py3-none-any.whl"}
    assert not (workspace.registry / "files" / "second").exists()
    assert "second" not in (workspace.registry / "simple" / "index.html").read_text()

    slow.gate = None
    resumed = workspace.mirror("apply", "plan.json")
    assert resumed.exit_code == 0, resumed.output
    assert "Apply complete: 1 uploaded, 0 deleted, 2 already done" in resumed.stdout
    listing = DirectoryRegistry(workspace.registry).list_actual()
    assert {f.filename for f in listing.files} == {
        "first-1.0-py3-none-any.whl",
        slow.filename,
        "third-1.0-py3-none-any.whl",
    }
    assert not list(staging.rglob("*")), "staging is cleared"
    assert workspace.mirror("plan", "--detailed-exitcode").exit_code == 0

    target = workspace.root / "site"
    result = pip_install(f"file://{workspace.registry}/simple", target, "first", "third")
    assert result.returncode == 0, result.stderr
    assert installed_version(target, "third") == "1.0"


def test_registry_files_are_world_readable_for_web_servers(workspace: Workspace) -> None:
    workspace.upstream.add_release("foo", "1.0", days_ago(30))
    workspace.requirements("foo==1.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    for path in (
        workspace.registry / "simple" / "foo" / "index.html",
        next((workspace.registry / "files" / "foo").iterdir()),
    ):
        assert Path(path).stat().st_mode & 0o004


def _run_on_a_terminal(workspace: Workspace, answer: bytes, *command: str) -> tuple[int, str]:
    """Run a command (`mirror apply`) on a pseudo-terminal and answer its prompt."""
    arguments = command or ("mirror", "apply")
    program = mirror_command if arguments[0] == "mirror" else manager_command
    return run_on_terminal(
        program(*arguments[1:], "--desired-state", str(workspace.desired)),
        answers={b"Apply these changes?": answer},
    )


def test_apply_asks_on_a_terminal_and_a_no_is_not_a_success(workspace: Workspace) -> None:
    workspace.upstream.add_release("foo", "1.0", wall_days_ago(30))
    workspace.requirements("foo==1.0\n")
    code, output = _run_on_a_terminal(workspace, b"n\n")
    assert "new requirement foo==1.0" in output and "Apply cancelled; nothing changed." in output
    assert code == 1  # as Terraform: a cancelled apply did not do what was asked
    assert not (workspace.registry / "files").exists()
    code, output = _run_on_a_terminal(workspace, b"y\n")
    assert code == 0 and "Apply complete: 1 uploaded" in output
    assert (workspace.registry / "files" / "foo").is_dir()


def test_the_older_interface_asks_on_a_terminal_too(workspace: Workspace) -> None:
    workspace.upstream.add_release("foo", "1.0", wall_days_ago(30))
    workspace.requirements("foo==1.0\n")
    code, output = _run_on_a_terminal(workspace, b"n\n", "mirror-manager", "sync")
    assert code == 1 and "new requirement foo==1.0" in output and "Cancelled" in output
    assert not (workspace.registry / "files").exists()
    code, output = _run_on_a_terminal(workspace, b"y\n", "mirror-manager", "sync")
    assert code == 0 and "Apply complete: 1 uploaded" in output
