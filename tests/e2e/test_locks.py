"""Lockfiles as requirement sets: a `uv.lock` and a `pylock.toml` written by real uv against
the fake upstream are judged entry by entry, never resolved again, and held file by file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import pip_install, uv

PROJECT = """\
[project]
name = "team-svc"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["shared==1.0", "winonly; sys_platform == 'win32'"]
"""


def locked_service(workspace: Workspace) -> Path:
    """A service project locked by uv against the fake upstream: uv.lock and pylock.toml."""
    upstream = workspace.upstream
    upstream.add_release("shared", "1.0", days_ago(90), requires=("helper<2",), sdist=True)
    upstream.add_release("shared", "2.0", days_ago(60))
    upstream.add_release("helper", "1.5", days_ago(90), wheel_tags=("py3-none-any", "py2-none-any"))
    upstream.add_release("helper", "2.1", days_ago(60))
    upstream.add_release("winonly", "1.0", days_ago(90))
    service = workspace.desired / "svc"
    service.mkdir(parents=True)
    (service / "pyproject.toml").write_text(PROJECT)
    cache = workspace.root / "uv-cache"
    index = ("--default-index", upstream.index_url)
    locked = uv("lock", "--project", str(service), *index, cache=cache)
    assert locked.returncode == 0, locked.stderr
    exported = uv(
        "export", "--project", str(service), "--format", "pylock.toml", "-o",
        str(service / "pylock.toml"), "--frozen", cache=cache,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    return service


def lock_files(lock: str) -> set[str]:
    """The file names a lockfile names (from its URLs)."""
    return {url.rsplit("/", 1)[-1] for url in re.findall(r'url = "([^"]+)"', lock)}


def test_a_uv_lock_and_a_pylock_are_held_exactly_file_by_file(workspace: Workspace) -> None:
    service = locked_service(workspace)
    workspace.config(extra="sets:\n  svc: svc/uv.lock\n  data: svc/pylock.toml\n")
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    held = {f["filename"] for a in document["actions"] for f in a["files"]}
    # The lock's own project (team-svc) is not mirrored; every file it locks is, but for the
    # wheel no target installs (files.wheels: targets narrows a lock as it does a range).
    locked = lock_files((service / "uv.lock").read_text())
    assert locked == lock_files((service / "pylock.toml").read_text())
    assert held == locked - {"helper-1.5-py2-none-any.whl"}
    assert not any(a["name"] == "team-svc" for a in document["actions"])
    winonly = next(a for a in document["actions"] if a["name"] == "winonly")
    assert all(target.endswith("windows") for target in winonly["targets"])
    assert winonly["sets"] == ["svc", "data"]
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0

    # The lock installs from the mirror alone, hashes checked.
    pinned = uv(
        "export", "--project", str(service), "--frozen", "--format", "requirements.txt",
        "--no-emit-project", cache=workspace.root / "uv-cache",
    )  # fmt: skip
    requirements = workspace.root / "locked.txt"
    requirements.write_text(pinned.stdout)
    result = pip_install(
        f"file://{workspace.registry}/simple", workspace.root / "site", "--require-hashes",
        "-r", str(requirements),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_locked_file_whose_hash_upstream_does_not_serve_is_refused(workspace: Workspace) -> None:
    service = locked_service(workspace)
    lock = service / "pylock.toml"
    text = lock.read_text()
    real = re.search(r'helper-1\.5-py3-none-any\.whl".*?sha256 = "([0-9a-f]{64})"', text)
    assert real is not None
    lock.write_text(text.replace(real[1], "0" * 64))
    workspace.config(extra="sets:\n  data: svc/pylock.toml\n")
    result = workspace.mirror("plan")
    assert result.exit_code == 1
    assert "svc/pylock.toml" in result.output and "helper-1.5-py3-none-any.whl" in result.output
    assert "tampered or stale lock" in result.output
    assert not (workspace.root / "registry").exists() or not any(workspace.registry.iterdir())


def test_a_locked_version_with_an_advisory_is_blocked_naming_the_lock_and_a_way_out(
    workspace: Workspace,
) -> None:
    locked_service(workspace)
    workspace.osv.add("GHSA-lock-ed00-0001", "helper", ["1.5"], fixed="2.1")
    workspace.config(extra="sets:\n  svc: svc/uv.lock\n")
    document = json.loads(workspace.mirror("plan", "--format", "json").stdout)
    (blocked,) = document["blocked"]
    assert blocked["name"] == "helper" and blocked["set"] == "svc"
    assert blocked["source"].startswith("desired-state/svc/uv.lock:")
    assert "GHSA-lock-ed00-0001" in blocked["detail"]
    assert blocked["detail"].endswith("the newest version the policy admits is 2.1")
    table = workspace.mirror("plan").stdout
    assert "x blocked helper==1.5 (desired-state/svc/uv.lock:" in table
