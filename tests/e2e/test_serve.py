"""`mirror serve` end to end: content negotiation over HTTP, then pip and uv installing from it,
with uv's `--exclude-newer` choosing by the upstream upload times the mirror kept (PEP 700)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import requests

from reconciler.serve import JSON_TYPE
from tests.conftest import Workspace, days_ago
from tests.e2e.helpers import (
    clean_env,
    installed_version,
    mirror_command,
    pip_install,
    served,
    uv_install,
)

PIP_ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


def mirror_two_versions(workspace: Workspace) -> None:
    """foo-bar 1.0 (100 days old) and 1.1 (40 days old), both held by the registry."""
    workspace.upstream.add_release("foo-bar", "1.0", days_ago(100))
    workspace.upstream.add_release("foo-bar", "1.1", days_ago(40))
    workspace.requirements("foo-bar==1.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.config(policy="  prune: false\n")
    workspace.requirements("foo-bar==1.1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0


def test_serve_negotiates_pages_and_hides_its_state(workspace: Workspace) -> None:
    mirror_two_versions(workspace)
    with served(workspace.desired) as url:
        page = requests.get(f"{url}foo-bar/", headers={"Accept": PIP_ACCEPT}, timeout=5)
        assert page.headers["Content-Type"] == JSON_TYPE and page.headers["Vary"] == "Accept"
        files = page.json()["files"]
        assert {f["upload-time"] for f in files} == {
            days_ago(100).strftime("%Y-%m-%dT%H:%M:%SZ"),
            days_ago(40).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        html = requests.get(f"{url}foo-bar/", timeout=5)
        assert html.headers["Content-Type"] == "text/html" and "#sha256=" in html.text
        assert (
            requests.get(
                f"{url}foo-bar/", headers={"Accept": "application/json"}, timeout=5
            ).status_code
            == 406
        )
        moved = requests.get(f"{url}Foo_Bar/", allow_redirects=False, timeout=5)
        assert (moved.status_code, moved.headers["Location"]) == (301, "/simple/foo-bar/")
        root = url.removesuffix("simple/")
        for hostile in ("simple/foo%0d%0aX-Evil:%201", "files/a/b%00", "simple/%E2%98%83/",
                        "files/%2e%2e/.mirror/quarantine.json"):  # fmt: skip
            answer = requests.get(f"{root}{hostile}", allow_redirects=False, timeout=5)
            assert answer.status_code == 404 and "X-Evil" not in answer.headers
        # PEP 658/714: the core metadata beside each wheel, with its digest on both pages.
        wheel_entry = next(f for f in files if f["filename"].endswith("1.0-py3-none-any.whl"))
        digest = wheel_entry["core-metadata"]["sha256"]
        metadata = requests.get(
            f"{root}files/foo-bar/{wheel_entry['filename']}.metadata", timeout=5
        )
        assert hashlib.sha256(metadata.content).hexdigest() == digest
        assert metadata.content.startswith(b"Metadata-Version:")
        assert f'data-core-metadata="sha256={digest}"' in html.text
        assert requests.get(f"{root}.mirror/lock.json", timeout=5).status_code == 404
        assert requests.get(f"{root}.mirror/quarantine.json", timeout=5).status_code == 404
        wheel = requests.get(f"{root}files/foo-bar/foo_bar-1.0-py3-none-any.whl", timeout=5)
        assert wheel.status_code == 200 and wheel.content[:2] == b"PK"


def test_pip_and_uv_install_from_serve_and_uv_exclude_newer_uses_upload_times(
    workspace: Workspace,
) -> None:
    mirror_two_versions(workspace)
    with served(workspace.desired) as url:
        newest = workspace.root / "uv-newest"
        result = uv_install(url, newest, "foo-bar")
        assert result.returncode == 0, result.stderr
        assert installed_version(newest, "foo_bar") == "1.1"

        cutoff = days_ago(60).strftime("%Y-%m-%dT%H:%M:%SZ")  # after 1.0, before 1.1
        older = workspace.root / "uv-older"
        result = uv_install(url, older, "--exclude-newer", cutoff, "foo-bar")
        assert result.returncode == 0, result.stderr
        assert installed_version(older, "foo_bar") == "1.0"

        target = workspace.root / "pip"
        result = pip_install(url, target, "foo-bar")
        assert result.returncode == 0, result.stderr
        assert installed_version(target, "foo_bar") == "1.1"


def test_serve_takes_a_directory_and_warns_when_it_holds_no_registry(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    process = subprocess.Popen(
        mirror_command("serve", str(missing), "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
        assert f"Serving {missing} at http://127.0.0.1:" in listening
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert (
        f"warning: {missing} holds no registry yet (no simple/index.html): every page answers "
        "404 until `mirror apply` writes one"
    ) in err
