"""The mirror on GitLab's PyPI registry, end to end against a fake GitLab on 127.0.0.1.

The fake follows shared/reference/gitlab-api.md: Basic-only job token on PyPI and Terraform
routes, JOB-TOKEN on the Packages API, pagination headers, 400 on a duplicate file name,
asynchronous deletes, 302 forwarding for unknown names, the Terraform lock's 200/409 rules, and
notes the job token cannot write.
"""

from __future__ import annotations

import email.utils
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock

from reconciler.errors import UserError
from reconciler.gitlab import IDEMPOTENT, Credential, GitLabClient, GitLabError, RateBudget
from reconciler.http import RetryPolicy, make_session
from reconciler.model import Action, ActionKind, Plan, PlannedFile, QuarantineRecord
from reconciler.notes import APPLIED_MARKER, MARKER, note_body
from reconciler.registry import RegistryError
from reconciler.registry.gitlab import GitLabRegistry
from tests.conftest import FROZEN_NOW, Workspace, days_ago, fast_retries, wall_days_ago
from tests.e2e.helpers import clean_env, installed_version, mirror_command, pip_install
from tests.servers.base import Gate
from tests.servers.gitlab import FakeGitLab, Throttle


@pytest.fixture
def gitlab(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        monkeypatch.setenv("CI_API_V4_URL", server.api_url)
        monkeypatch.setenv("CI_PROJECT_ID", server.project_id)
        monkeypatch.setenv("CI_JOB_TOKEN", server.job_token)
        workspace.config(extra="")
        config = workspace.desired / "config.yaml"
        config.write_text(config.read_text().replace("type: directory", "type: gitlab"))
        yield server  # type: ignore[misc]


def seed(workspace: Workspace, requirements: str = "foo-bar>=1\nbaz==2.0\n") -> None:
    upstream = workspace.upstream
    upstream.add_release("Foo_Bar", "1.0", days_ago(100), sdist=True)
    upstream.add_release("Foo_Bar", "1.1", days_ago(40), sdist=True)
    upstream.add_release("Foo_Bar", "1.2", days_ago(3))
    upstream.add_release("baz", "2.0", days_ago(30), requires_python=">=3.8")
    workspace.requirements(requirements)


def held(gitlab: FakeGitLab) -> set[tuple[str, str, str]]:
    return {
        (p["name"], p["version"], f["file_name"])
        for p in gitlab.packages
        if p["status"] == "default"
        for f in p["files"]
        if f["status"] == "default"
    }


def steal_lock(gitlab: FakeGitLab, lock_id: str) -> None:
    """Someone believes the running apply dead: force-unlock (no ID), then another apply
    takes the lock under `lock_id`."""
    lock_url = f"{gitlab.api_url}/projects/42/terraform/state/pypi-mirror/lock"
    auth = ("gitlab-ci-token", gitlab.job_token)
    assert requests.delete(lock_url, auth=auth, timeout=5).status_code == 200
    other = {"ID": lock_id, "Operation": "mirror apply", "Who": "bob", "Info": "",
             "Version": "0", "Created": "2026-11-24T12:00:00Z", "Path": "pypi-mirror"}  # fmt: skip
    assert requests.post(lock_url, json=other, auth=auth, timeout=5).status_code == 200


def simple_url_with_token(gitlab: FakeGitLab) -> str:
    return gitlab.simple_url.replace("://", f"://gitlab-ci-token:{gitlab.job_token}@", 1)


def without_retries() -> requests.Session:
    """A session that reports the first failure, for tests that want it at once."""
    return make_session(None, 4, RetryPolicy(retries=0), IDEMPOTENT)


def registry(gitlab: FakeGitLab, retries: bool = True) -> GitLabRegistry:
    session = None if retries else without_retries()
    return GitLabRegistry(
        GitLabClient(gitlab.api_url, gitlab.project_id, session=session, retries=fast_retries()),
        Credential(gitlab.job_token),
    )


def test_plan_apply_drift_on_gitlab_then_pip_installs(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace)
    planned = workspace.mirror("plan", "--out", "plan.json")
    assert planned.exit_code == 0, planned.output
    assert "upload times and yank markers are not carried" in planned.stdout
    applied = workspace.mirror("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert held(gitlab) == {
        ("foo-bar", "1.1", "foo_bar-1.1-py3-none-any.whl"),
        ("foo-bar", "1.1", "foo_bar-1.1.tar.gz"),
        ("baz", "2.0", "baz-2.0-py3-none-any.whl"),
    }
    for package in gitlab.packages:  # the digest sent is the bytes' own
        assert all(f["file_sha256"] == f["actual_sha256"] for f in package["files"])

    target = workspace.root / "site"
    result = pip_install(simple_url_with_token(gitlab), target, "Foo.Bar", "baz")
    assert result.returncode == 0, result.stderr
    assert installed_version(target, "foo_bar") == "1.1"

    again = workspace.mirror("plan", "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes" in again.stdout, again.output

    workspace.osv.add("GHSA-gl", "foo-bar", ["1.1"], fixed="1.2")
    drift = workspace.mirror("drift", "--report-dir", "reports")
    assert drift.exit_code == 2, drift.output
    assert ("foo-bar", "1.0", "foo_bar-1.0-py3-none-any.whl") in held(gitlab)
    assert not any(v == "1.1" for _, v, _ in held(gitlab))
    report = json.loads((workspace.root / "reports" / "drift-report.json").read_text())
    assert report["quarantined"][0]["advisories"][0]["id"] == "GHSA-gl"
    # The quarantine log lives in the mirror's Terraform state, beside the lock.
    state = json.loads(gitlab.states["pypi-mirror"])
    assert "foo-bar 1.1" in state["mirror"]["quarantine"]
    assert workspace.mirror("drift", "--report-dir", "reports").exit_code == 0


def test_listing_follows_every_page_and_never_the_totals(gitlab: FakeGitLab) -> None:
    gitlab.totals_limit = 100  # GitLab omits totals past a limit; the client must not need them
    for i in range(250):
        gitlab.add_package(f"pkg-{i}", "1.0", {f"pkg_{i}-1.0-py3-none-any.whl": b"x"})
    gitlab.add_package("pkg-0-extra", "1.0", {"pkg_0_extra-1.0-py3-none-any.whl": b"y"})
    actual = registry(gitlab).list_actual()
    assert len(actual.files) == 251
    assert {f.name for f in actual.files if f.name.startswith("pkg-0")} == {"pkg-0", "pkg-0-extra"}
    listing = [p for _, p in gitlab.request_log if p.startswith("/api/v4/projects/42/packages?")]
    # Without a total to check the listing against, it is listed the other way round too
    # (packages tied in creation time could hide): three pages each way, nothing added.
    assert len(listing) == 6 and all("per_page=100" in p for p in listing)
    assert sum("sort=desc" in p for p in listing) == 3


def test_a_failed_listing_is_an_error_not_an_empty_registry(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace)
    gitlab.add_package("foo-bar", "1.1", {"foo_bar-1.1-py3-none-any.whl": b"x"})
    gitlab.inject("GET", r"/package_files$", "500")  # the second page of facts fails
    with pytest.raises(RegistryError, match="GitLab answered 500 for the files of package"):
        registry(gitlab, retries=False).list_actual()

    gitlab.job_role = "guest"
    result = workspace.mirror("plan")
    assert result.exit_code == 1
    assert "(403): the token's user needs at least the Developer role" in result.stderr


def test_a_retried_upload_after_a_500_that_landed_counts_once(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace, "baz==2.0\n")
    gitlab.inject("POST", r"/packages/pypi$", "500-after")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    (package,) = gitlab.packages
    assert [f["file_name"] for f in package["files"]] == ["baz-2.0-py3-none-any.whl"]
    assert gitlab.faults_served == ["500-after"]


def test_injected_faults_converge(workspace: Workspace, gitlab: FakeGitLab) -> None:
    seed(workspace)
    gitlab.inject("GET", r"/packages$", "429", retry_after="0")
    gitlab.inject("GET", r"/package_files$", "500")
    gitlab.inject("POST", r"/packages/pypi$", "reset")
    gitlab.inject("POST", r"/packages/pypi$", "reset-after")
    gitlab.inject("POST", r"/packages/pypi$", "429", retry_after="0")
    gitlab.inject("POST", r"/terraform/state/pypi-mirror/lock$", "500-after")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert len(held(gitlab)) == 3
    assert sum(len(p["files"]) for p in gitlab.packages) == 3  # nothing uploaded twice
    again = workspace.mirror("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_deletes_need_maintainer_and_say_so(workspace: Workspace, gitlab: FakeGitLab) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    gitlab.job_role = "developer"
    workspace.requirements("baz==2.0\n")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert (
        "taking the registry lock (403): the token's user needs at least the Maintainer role"
        in (result.stderr)
    )


def test_a_protected_package_is_named_as_the_cause(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace, "baz==2.0\n")
    gitlab.protection_rules = [("baz*", "owner", "owner")]  # the job runs as a Maintainer
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert (
        "the upload of baz-2.0-py3-none-any.whl (403: 403 Forbidden - Package protected.): a "
        "package protection rule (Settings > Packages and registries > Protected packages) "
        "covers this package"
    ) in result.stderr
    assert "role" not in result.stderr
    assert gitlab.packages == []

    gitlab.protection_rules = [("baz", "maintainer", "owner")]
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.requirements("")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "(403: 403 Forbidden - Package is deletion protected.)" in result.stderr


def apply_held_at_its_upload(
    workspace: Workspace, gitlab: FakeGitLab
) -> tuple[subprocess.Popen[bytes], Gate, list[str], dict[str, str]]:
    """An apply of `held==1.0` in a process of its own, held in its upload (lock taken) until
    the gate opens; with its command and environment, for a second one."""
    workspace.upstream.add_release("held", "1.0", wall_days_ago(30))
    workspace.requirements("held==1.0\n")
    env = clean_env(
        CI_API_V4_URL=gitlab.api_url,
        CI_PROJECT_ID=gitlab.project_id,
        CI_JOB_TOKEN=gitlab.job_token,
        MIRROR_CACHE_DIR=str(workspace.root / "cache"),
    )
    command = mirror_command("apply", "--auto-approve", "--desired-state", str(workspace.desired))
    gitlab.upload_gate = gate = Gate()
    running = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return running, gate, command, env


def test_two_concurrent_applies_never_both_write(workspace: Workspace, gitlab: FakeGitLab) -> None:
    first, gate, command, env = apply_held_at_its_upload(workspace, gitlab)
    try:
        assert gate.arrived.wait(60), "the first apply never reached its upload"
        assert "pypi-mirror" in gitlab.locks
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    finally:
        gate.open()
    first_out, first_err = first.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert "is locked by pipeline-user" in second.stderr
    assert "mirror force-unlock" in second.stderr
    assert [len(p["files"]) for p in gitlab.packages] == [1]
    assert "pypi-mirror" not in gitlab.locks


def test_an_apply_whose_lock_was_force_unlocked_says_so_when_gitlab_refuses_its_write(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    running, gate, _, _ = apply_held_at_its_upload(workspace, gitlab)
    try:
        assert gate.arrived.wait(60), "the apply never reached its upload"
        steal_lock(gitlab, "other-apply")
    finally:
        gate.open()
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 1
    assert "force-unlocked while it ran, and pipeline-user holds it (lock ID other-apply)" in (
        stderr.decode()
    )
    assert "Traceback" not in stderr.decode()
    assert gitlab.locks["pypi-mirror"]["ID"] == "other-apply"  # left to its holder


def test_an_apply_whose_lock_is_taken_mid_run_writes_nothing_more(
    workspace: Workspace, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.osv.add("GHSA-a", "foo-bar", ["1.1"], fixed="1.2")
    workspace.osv.add("GHSA-b", "baz", ["2.0"], fixed="2.1")
    record_quarantine = GitLabRegistry.record_quarantine
    taken_at: list[int] = []

    def taken_first(self: GitLabRegistry, record: QuarantineRecord) -> None:
        if not taken_at:  # as the first one writes
            steal_lock(gitlab, "other")
            taken_at.append(len(gitlab.request_log))
        record_quarantine(self, record)

    monkeypatch.setattr(GitLabRegistry, "record_quarantine", taken_first)
    drift = workspace.mirror("drift", "--report-dir", "reports")
    assert drift.exit_code == 1 and "was force-unlocked while it ran" in drift.output
    after = gitlab.request_log[taken_at[0] :]
    assert not [(m, p) for m, p in after if m in ("DELETE", "POST") and "/terraform/" not in p]
    assert gitlab.locks["pypi-mirror"]["ID"] == "other"


def test_a_lock_check_that_cannot_give_its_own_lock_back_names_it() -> None:
    client = GitLabClient("https://gitlab.example/api/v4", "42", retries=fast_retries())
    gitlab_registry = GitLabRegistry(client, Credential("t"))
    state = f"{client.project_url}/terraform/state/pypi-mirror"
    with requests_mock.Mocker() as mocked:
        mocked.post(f"{state}/lock", [{"status_code": 200, "json": {}}] * 2)  # ours, the probe's
        mocked.delete(f"{state}/lock", status_code=503, text="busy")
        mocked.post(state, status_code=500, json={"message": "500 Internal Server Error"})
        with pytest.raises(RegistryError) as raised, gitlab_registry.lock("apply"):
            gitlab_registry.begin_apply("plan-1", None)  # its state write: refused
    assert "could not be given back: run `mirror force-unlock" in str(raised.value)


def test_force_unlock_releases_a_stuck_lock(workspace: Workspace, gitlab: FakeGitLab) -> None:
    seed(workspace, "baz==2.0\n")
    stuck = {
        "ID": "dead-apply-1",
        "Operation": "mirror apply",
        "Info": "a job that died",
        "Who": "x",
        "Version": "0",
        "Created": "2026-11-23T10:00:00Z",
        "Path": "pypi-mirror",
    }
    taken = requests.post(
        f"{gitlab.api_url}/projects/42/terraform/state/pypi-mirror/lock",
        json=stuck,
        auth=("gitlab-ci-token", gitlab.job_token),
        timeout=5,
    )
    assert taken.status_code == 200
    blocked = workspace.mirror("apply", "--auto-approve")
    assert blocked.exit_code == 1 and "lock ID dead-apply-1" in blocked.stderr
    wrong = workspace.mirror("force-unlock", "not-it")
    assert wrong.exit_code == 1 and "does not match" in wrong.stderr
    released = workspace.mirror("force-unlock", "dead-apply-1")
    assert released.exit_code == 0, released.output
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert "pypi-mirror" not in gitlab.locks


def test_the_note_is_created_once_then_updated_and_others_are_left_alone(
    workspace: Workspace, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    gitlab.add_note(7, 5, f"alice quotes the bot: {MARKER}")
    gitlab.add_note(7, 77, "a system note by the bot", system=True)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")
    monkeypatch.setenv("MIRROR_NOTE_TOKEN", gitlab.note_token)
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0

    created = workspace.mirror("comment", "plan.json")
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("Created the plan note")
    seed(workspace, "baz==2.0\n")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    updated = workspace.mirror("comment", "plan.json")
    assert updated.exit_code == 0 and updated.stdout.startswith("Updated the plan note")

    ours = [n for n in gitlab.notes if n["author"]["id"] == 77 and not n["system"]]
    assert len(ours) == 1 and MARKER in ours[0]["body"] and "baz" in ours[0]["body"]
    assert "foo-bar" not in ours[0]["body"].split("Blocked")[0]
    alice = next(n for n in gitlab.notes if n["author"]["id"] == 5)
    assert alice["body"] == f"alice quotes the bot: {MARKER}"
    assert not any(
        kind == "basic-job-token" for _, path, kind in gitlab.auth_log if "notes" in path
    )


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("MIRROR_NOTE_TOKEN", "MIRROR_NOTE_TOKEN is not set"),
        ("CI_MERGE_REQUEST_IID", "CI_MERGE_REQUEST_IID is not set"),
    ],
)
def test_comment_without_token_or_merge_request_is_a_clear_error(
    workspace: Workspace,
    gitlab: FakeGitLab,
    monkeypatch: pytest.MonkeyPatch,
    unset: str,
    message: str,
) -> None:
    seed(workspace)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")
    monkeypatch.setenv("MIRROR_NOTE_TOKEN", gitlab.note_token)
    monkeypatch.delenv(unset)
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    result = workspace.mirror("comment", "plan.json")
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_job_token_cannot_write_notes_and_the_error_says_so(
    workspace: Workspace, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")
    monkeypatch.setenv("MIRROR_NOTE_TOKEN", gitlab.job_token)
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    result = workspace.mirror("comment", "plan.json")
    assert result.exit_code == 1 and "401" in result.stderr
    assert gitlab.job_token not in result.stderr


def test_a_long_plan_is_folded_and_cut_to_fit_the_note_limit() -> None:
    actions = tuple(
        _upload(f"package-{i}", "1.0", "a reason that takes some room " * 3) for i in range(400)
    )
    plan = Plan(FROZEN_NOW, FROZEN_NOW, "d", "a", actions, ())
    body = note_body(plan, limit=20_000)
    assert len(body) <= 20_000 and body.startswith(MARKER)
    assert "<details><summary>Requirements (400)</summary>" in body
    assert "more not shown here; the full plan is the job's plan.json artifact" in body
    small = note_body(Plan(FROZEN_NOW, FROZEN_NOW, "d", "a", actions[:3], ()))
    assert "<details>" not in small and "more not shown" not in small


def test_no_token_reaches_any_output_file_or_note(
    workspace: Workspace, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")
    monkeypatch.setenv("MIRROR_NOTE_TOKEN", gitlab.note_token)
    outputs: list[str] = []
    for args in (
        ("plan", "--out", "plan.json", "--debug"),
        ("show", "plan.json", "--format", "markdown"),
        ("comment", "plan.json"),
        ("apply", "plan.json"),
        ("drift", "--report-dir", "reports"),
        ("force-unlock", "nothing-held"),
    ):
        result = workspace.mirror(*args)
        outputs += [result.stdout, result.stderr]
    written = [p.read_text() for p in workspace.root.rglob("*") if p.is_file() and _text(p)]
    notes = [n["body"] for n in gitlab.notes]
    state = [s.decode() for s in gitlab.states.values()]
    for secret in (gitlab.job_token, gitlab.note_token):
        for text in (*outputs, *written, *notes, *state):
            assert secret not in text


def _text(path: Path) -> bool:
    return path.suffix in {".json", ".md", ".txt", ".yaml", ".xml", ""} and "cache" not in str(path)


def _upload(name: str, version: str, reason: str) -> Action:
    return Action(
        ActionKind.UPLOAD,
        name,
        version,
        reason,
        (PlannedFile(f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "0" * 64),),
    )


def test_an_upload_and_a_prune_in_one_version_keep_the_new_file(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace)
    files = {f.filename: f.sha256 for f in workspace.upstream.projects["foo-bar"].files}
    workspace.requirements(f"foo-bar==1.1 --hash=sha256:{files['foo_bar-1.1.tar.gz']}\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert held(gitlab) == {("foo-bar", "1.1", "foo_bar-1.1.tar.gz")}
    wheel = "foo_bar-1.1-py3-none-any.whl"
    workspace.requirements(f"foo-bar==1.1 --hash=sha256:{files[wheel]}\n")
    result = workspace.mirror("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert held(gitlab) == {("foo-bar", "1.1", wheel)}  # the prune did not take the new wheel
    assert workspace.mirror("plan", "--detailed-exitcode").exit_code == 0


def test_a_delete_reaches_every_spelling_of_a_project(gitlab: FakeGitLab) -> None:
    gitlab.add_package(
        "Foo-Bar", "1.0", {"foo_bar-1.0.tar.gz": b"s", "foo_bar-1.0-py3-none-any.whl": b"w"}
    )
    gitlab.add_package("foo-bar", "1.0", {"foo_bar-1.0.tar.gz": b"s"})
    target = registry(gitlab)
    target.list_actual()
    target.delete("foo-bar", "1.0", ["foo_bar-1.0.tar.gz"])
    assert held(gitlab) == {("Foo-Bar", "1.0", "foo_bar-1.0-py3-none-any.whl")}


def test_a_file_is_never_replaced_in_place(gitlab: FakeGitLab, tmp_path: Path) -> None:
    gitlab.add_package("foo", "1.0", {"foo-1.0.tar.gz": b"old bytes"})
    target = registry(gitlab)
    target.list_actual()
    local = tmp_path / "foo-1.0.tar.gz"
    local.write_bytes(b"new bytes")
    with pytest.raises(GitLabError, match="cannot replace a file in place"):
        target.upload("foo", "1.0", PlannedFile("foo-1.0.tar.gz", "e" * 64), local)
    assert held(gitlab) == {("foo", "1.0", "foo-1.0.tar.gz")}  # the old file was not lost


def test_a_lock_that_cannot_be_released_is_reported(gitlab: FakeGitLab) -> None:
    target = registry(gitlab, retries=False)
    gitlab.inject("DELETE", r"/terraform/state/pypi-mirror/lock$", "500")
    with pytest.raises(GitLabError, match=r"releasing the registry lock \(lock ID "):
        with target.lock("me"):
            pass


def test_errors_stay_on_one_line_and_never_echo_a_credential() -> None:
    with pytest.raises(UserError) as caught:
        GitLabClient("https://:glpat-secret@gitlab.example/api/v4", "42")
    assert "glpat-secret" not in str(caught.value)
    with requests_mock.Mocker() as mock:
        mock.get(
            "https://gitlab.example/api/v4/projects/42/packages",
            status_code=502,
            text="<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n",
        )
        client = GitLabClient(
            "https://gitlab.example/api/v4",
            "42",
            session=without_retries(),
        )
        with pytest.raises(GitLabError) as failed:
            list(client.paginate(f"{client.project_url}/packages", {}, {}, "the listing"))
    assert "\n" not in str(failed.value) and "502 Bad Gateway" in str(failed.value)


def test_retention_on_gitlab_keeps_the_date_in_the_mirror_state(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    config = workspace.desired / "config.yaml"
    config.write_text(config.read_text().replace("retain_days: 0", "retain_days: 30"))
    workspace.upstream.add_release("pkg", "1.0", days_ago(90))
    workspace.upstream.add_release("pkg", "2.0", days_ago(5))
    workspace.requirements("pkg\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    workspace.elapsed = timedelta(days=10)  # 2.0 matures; the range moves on
    planned = workspace.mirror("plan", "--out", "plan.json")
    assert "~ retain pkg 1.0" in planned.stdout and "serves no yank markers" in planned.stdout
    assert workspace.mirror("apply", "plan.json").exit_code == 0
    state = json.loads(gitlab.states["pypi-mirror"])
    assert state["mirror"]["yanks"]["pkg"] == {
        "pkg-1.0-py3-none-any.whl": "superseded by 2.0; removed after 2027-01-03"
    }
    assert ("pkg", "1.0", "pkg-1.0-py3-none-any.whl") in held(gitlab)
    pinned = pip_install(simple_url_with_token(gitlab), workspace.root / "site", "pkg==1.0")
    assert pinned.returncode == 0, pinned.stderr
    assert "No changes" in workspace.mirror("plan").stdout  # the state says until when

    workspace.elapsed = timedelta(days=41)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert not any(v == "1.0" for _, v, _ in held(gitlab))
    assert json.loads(gitlab.states["pypi-mirror"])["mirror"]["yanks"]["pkg"] == {}


def test_a_merge_request_from_a_fork_says_so_instead_of_planning_the_fork_s_registry(
    workspace: Workspace, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    monkeypatch.setenv("CI_MERGE_REQUEST_PROJECT_ID", "4242")  # the parent; CI_PROJECT_ID: fork
    result = workspace.mirror("plan", "--out", "plan.json")
    assert result.exit_code == 1
    assert "this merge request comes from a fork" in result.output
    assert f"project {gitlab.project_id}" in result.output and "project 4242" in result.output
    assert not (workspace.root / "plan.json").exists()
    monkeypatch.setenv("CI_MERGE_REQUEST_PROJECT_ID", gitlab.project_id)  # run in the parent
    assert workspace.mirror("plan").exit_code == 0


def test_the_applied_plan_is_posted_to_the_merged_request_with_what_differs(
    workspace: Workspace, gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(workspace)
    monkeypatch.setenv("MIRROR_NOTE_TOKEN", gitlab.note_token)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    assert workspace.mirror("comment", "plan.json").exit_code == 0  # the plan reviewers saw

    # Merged; before main's apply job runs, an advisory appears for foo-bar 1.1.
    monkeypatch.delenv("CI_MERGE_REQUEST_IID")
    monkeypatch.setenv("CI_COMMIT_SHA", "c" * 40)
    gitlab.merged_by_commit["c" * 40] = 7
    workspace.osv.add("GHSA-late", "foo-bar", ["1.1"], fixed="1.2")
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    assert workspace.mirror("apply", "plan.json").exit_code == 0
    posted = workspace.mirror("comment", "plan.json", "--applied")
    assert posted.exit_code == 0, posted.output
    assert posted.stdout.startswith("Created the applied-plan note on !7")
    (note,) = [n for n in gitlab.notes if APPLIED_MARKER in n["body"]]
    assert "**Applied on the default branch at cccccccccccc.**" in note["body"]
    assert "- in the reviewed plan, not applied: upload foo-bar 1.1" in note["body"]
    assert "- applied, not in the reviewed plan: upload foo-bar 1.0" in note["body"]
    assert sum(MARKER in n["body"] for n in gitlab.notes) == 1  # the reviewed note stays

    gitlab.merged_by_commit.clear()  # a commit pushed to main, no merge request
    quiet = workspace.mirror("comment", "plan.json", "--applied")
    assert quiet.exit_code == 0 and "No merge request brought this commit in" in quiet.stdout


def test_a_file_over_the_instance_s_size_limit_is_named_with_the_limit(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace, "baz==2.0\n")
    gitlab.max_file_size = 10  # bytes: every wheel is over it
    applied = workspace.mirror("apply", "--auto-approve")
    assert applied.exit_code == 1
    assert "baz-2.0-py3-none-any.whl: larger than this GitLab takes for a PyPI file" in (
        applied.output
    )
    assert not held(gitlab)


def test_packages_a_tied_listing_repeats_or_skips_are_each_held_once(gitlab: FakeGitLab) -> None:
    names = ("a", "b", "c", "d", "e")
    for name in names:
        gitlab.add_package(name, "1.0", {f"{name}-1.0-py3-none-any.whl": b"wheel " + name.encode()})
    for package in gitlab.packages:
        package["created_at"] = "2026-11-24T12:00:00.000Z"  # a bulk import: one instant
    gitlab.unstable_ties, gitlab.max_per_page = True, 2
    start = len(gitlab.request_log)
    files = [f.filename for f in registry(gitlab).list_actual().files]
    # Ascending, the pages give a, b | c, b | e: b twice, d never; the listing the other way
    # round finds d, and the two together are the x-total GitLab counts.
    assert sorted(files) == [f"{name}-1.0-py3-none-any.whl" for name in names]
    listings = [p for _, p in gitlab.request_log[start:] if "/packages?" in p]
    assert sum("page=1&" in p or p.endswith("page=1") for p in listings) == 2


def test_a_listing_still_short_of_its_count_is_an_error_not_a_smaller_registry() -> None:
    client = GitLabClient("https://gitlab.example/api/v4", "42", retries=fast_retries())
    registry_ = GitLabRegistry(client, Credential("t"))
    with requests_mock.Mocker() as mocked:
        mocked.get(f"{client.project_url}/terraform/state/pypi-mirror", status_code=204)
        mocked.get(
            f"{client.project_url}/packages",
            json=[{"id": 1, "name": "a", "version": "1.0", "status": "default"}],
            headers={"x-total": "2", "x-next-page": ""},
        )
        with pytest.raises(RegistryError, match="skipped packages: 1 of the 2 it counts"):
            registry_.list_actual()


def mirrored_then_broken(
    workspace: Workspace, gitlab: FakeGitLab, name: str, version: str
) -> dict[str, Any]:
    """baz 2.0 and foo-bar 1.1 mirrored, then one of them in status `error` (GitLab failed to
    process it: listed, never served)."""
    seed(workspace, "baz==2.0\nfoo-bar==1.1\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    broken = gitlab.package_named(name, version)
    assert broken is not None
    broken["status"] = "error"
    return broken


def test_a_package_in_error_status_is_not_held_and_the_apply_replaces_it(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    broken = mirrored_then_broken(workspace, gitlab, "baz", "2.0")
    planned = workspace.mirror("plan", "--out", "plan.json")
    assert planned.exit_code == 0, planned.output
    assert "the registry lists baz 2.0 (GitLab status 'error') but does not serve it" in (
        planned.stdout
    )
    assert "+ upload baz 2.0 (1 file)" in planned.stdout  # uploaded again
    applied = workspace.mirror("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert broken["status"] == "pending_destruction"  # replaced, not joined
    assert ("baz", "2.0", "baz-2.0-py3-none-any.whl") in held(gitlab)  # a new, served package
    result = pip_install(simple_url_with_token(gitlab), workspace.root / "site", "baz")
    assert result.returncode == 0, result.stderr
    assert "No changes" in workspace.mirror("plan").stdout


def test_a_package_in_error_status_the_plan_does_not_upload_is_left_and_named(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    broken = mirrored_then_broken(workspace, gitlab, "foo-bar", "1.1")
    workspace.requirements("baz==2.0\n")  # foo-bar no longer wanted: nothing uploads it again
    applied = workspace.mirror("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "the registry lists foo-bar 1.1 (GitLab status 'error') but does not serve it" in (
        applied.stdout
    )
    assert broken["status"] == "error"  # the only copy is not destroyed by the mirror


def test_a_plan_reads_the_recorded_files_and_the_drift_still_finds_a_hand_edit(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    # The packages that apply made are listed by the next one, which records them.
    assert workspace.mirror("drift", "--report-dir", "reports").exit_code == 0
    start = len(gitlab.request_log)
    planned = workspace.mirror("plan", "--out", "plan.json")
    assert planned.exit_code == 0 and "No changes" in planned.stdout
    assert "the files of 2 packages are as the last apply or drift recorded them" in (
        planned.stdout
    )
    asked = [path for _, path in gitlab.request_log[start:]]
    assert not any("package_files" in path for path in asked)  # the listing's pages only
    assert workspace.mirror("apply", "plan.json").exit_code == 0

    # A file deleted by hand inside a recorded package: plans do not list it again...
    package = next(p for p in gitlab.packages if p["version"] == "1.1" and p["files"])
    package["files"] = [f for f in package["files"] if not f["file_name"].endswith(".tar.gz")]
    assert "No changes" in workspace.mirror("plan").stdout
    # ...the nightly drift lists every file, puts it back, and records what it saw.
    drift = workspace.mirror("drift", "--report-dir", "reports")
    assert drift.exit_code == 2, drift.output
    assert ("foo-bar", "1.1", "foo_bar-1.1.tar.gz") in held(gitlab)
    assert "No changes" in workspace.mirror("plan").stdout


def test_a_plan_made_from_an_outdated_record_is_refused_and_the_record_mended(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace)
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    assert workspace.mirror("drift", "--report-dir", "reports").exit_code == 0  # records
    package = next(p for p in gitlab.packages if p["version"] == "1.1" and p["files"])
    package["files"] = [f for f in package["files"] if not f["file_name"].endswith(".tar.gz")]

    # The apply job: plan (from the record: it misses the hand edit), then apply it.
    assert workspace.mirror("plan", "--out", "plan.json").exit_code == 0
    stale = workspace.mirror("apply", "plan.json")
    assert stale.exit_code == 1 and "stale" in stale.output
    # That apply listed every file under the lock and recorded them: the next job mends it.
    assert "upload foo-bar 1.1" in workspace.mirror("plan", "--out", "plan.json").stdout
    assert workspace.mirror("apply", "plan.json").exit_code == 0
    assert ("foo-bar", "1.1", "foo_bar-1.1.tar.gz") in held(gitlab)


def limits(remaining: int, observed: int, ends_in: int, name: str = "api") -> dict[str, str]:
    """A response's RateLimit headers: its window ends `ends_in` s after it was sent."""
    sent = 1_700_000_000
    return {
        "Date": email.utils.formatdate(sent, usegmt=True),  # GitLab's clock, not ours
        "RateLimit-Name": name,
        "RateLimit-Observed": str(observed),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(sent + ends_in),
    }


def budget_on_a_clock(in_flight: int = 4) -> tuple[RateBudget, list[float]]:
    """A budget whose clock moves by what it sleeps; the sleeps recorded."""
    waits: list[float] = []
    now = [500.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    return RateBudget(sleep, clock=lambda: now[0], in_flight=in_flight), waits


def test_the_budget_waits_for_the_next_window_once_a_window_is_down_to_its_reserve() -> None:
    budget, waits = budget_on_a_clock()
    # 200 per window, 21 left, 30 s to go: a tenth (20) is kept in reserve.
    budget.observe(limits(21, 179, 30))
    budget.take()  # 21 > 20: goes at once
    assert waits == []
    budget.take()  # 20 left: the rest of the window is the user's own
    assert waits == [30.0]
    budget.take()  # a new window: goes until a response says where it stands
    assert waits == [30.0]
    budget.observe(limits(3, 197, 30))  # a late answer from the window over: not believed
    budget.take()
    assert waits == [30.0]
    budget.observe({"RateLimit-Remaining": "x"})  # no usable headers: no pacing
    budget.observe(limits(0, 200, 10**400))  # an absurd end: not believed, no crash
    budget.observe(limits(0, 200, 86_400))  # a day away: not believed
    budget.take()
    assert waits == [30.0]


def test_a_roomy_window_of_one_throttle_never_hides_a_spent_one_of_another() -> None:
    budget, waits = budget_on_a_clock()
    budget.observe(limits(5000, 100, 3000, name="throttle_authenticated_api"))  # an hour's
    budget.observe(limits(3, 997, 40, name="throttle_authenticated_packages_api"))  # spent
    budget.take()
    assert waits == [40.0]


def test_a_spent_hour_long_window_is_waited_out_in_steps() -> None:
    budget, waits = budget_on_a_clock()
    budget.observe(limits(700, 6500, 150))  # 7200 an hour, down to its tenth, 150 s to go
    budget.take()
    assert waits == [60.0, 60.0, 30.0]  # in steps of at most a minute, to the window's end


def test_a_drift_over_more_requests_than_a_window_allows_is_paced_without_a_429(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace, "baz==2.0\n")
    assert workspace.mirror("apply", "--auto-approve").exit_code == 0
    for index in range(60):  # more packages than one window's requests
        gitlab.add_package(f"extra-{index}", "1.0", {f"extra_{index}-1.0.tar.gz": b"x"})
    config = workspace.desired / "config.yaml"
    config.write_text(config.read_text().replace("policy:\n", "policy:\n  max_deletions: 100\n"))
    gitlab.throttle = Throttle(limit=60, period=1)  # real time, so the waits are slept
    workspace.sleeps = True
    drift = workspace.mirror("drift", "--report-dir", "reports")
    assert drift.exit_code == 2, drift.output  # the extras are not wanted: it prunes them
    assert gitlab.throttle.counts and max(gitlab.throttle.counts.values()) <= 60
    assert gitlab.throttled == 0


def test_sustained_rate_limiting_is_paced_through_not_failed_after_five_retries(
    workspace: Workspace, gitlab: FakeGitLab
) -> None:
    seed(workspace, "baz==2.0\n")
    # Eight 429s in a row on a read and on an upload: more than the five retries a broken
    # request gets, as when a whole run meets GitLab's per-minute limit.
    gitlab.inject("GET", r"/packages$", "429", times=8, retry_after="30")
    gitlab.inject("POST", r"/packages/pypi$", "429", times=8, retry_after="30")
    applied = workspace.mirror("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert held(gitlab) == {("baz", "2.0", "baz-2.0-py3-none-any.whl")}
    assert workspace.waits.count(30.0) == 16  # each wait was the one GitLab asked for
    # A limit longer than a run may wait out (30 minutes per request) still ends, clearly.
    gitlab.inject("GET", r"/packages$", "429", times=100, retry_after="60")
    failed = workspace.mirror("plan")
    assert failed.exit_code == 1 and "429" in failed.output
    # So does one of a second at a time, past the 60 waits a request may pace (urllib3
    # retries by recursion: without that bound, a RecursionError).
    gitlab.faults.clear()
    gitlab.inject("GET", r"/packages$", "429", times=1000, retry_after="1")
    failed = workspace.mirror("plan")
    assert failed.exit_code == 1 and "429" in failed.output, failed.output
    assert "internal error" not in failed.output
