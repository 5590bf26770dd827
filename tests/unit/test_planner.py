"""The planner on plain data: uploads, deletes, quarantines and their reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from reconciler import planner
from reconciler.errors import MassDeleteError
from reconciler.model import (
    ActionKind,
    ActualState,
    Advisory,
    Cause,
    DesiredState,
    Plan,
    RegistryFile,
    SourceLocation,
    UpstreamFile,
    UpstreamProject,
    YankedPolicy,
)
from reconciler.operations import check_deletion_limit
from tests.conftest import (
    FROZEN_NOW,
    days_ago,
    make_config,
    make_desired,
    make_file,
    make_project,
    make_requirement,
)


def held(
    *files: UpstreamFile, sha256: str | None = None, recorded: str | None = None
) -> ActualState:
    """The registry holding these files: its index records `recorded` (default: upstream's
    sha256, what the mirror took) and the bytes hash to `sha256` (default: the same)."""
    return ActualState(
        files=tuple(
            RegistryFile(
                f.filename.split("-")[0].replace("_", "-"),
                f.version,
                f.filename,
                sha256 or recorded or f.sha256 or "",
                recorded_sha256=recorded or f.sha256,
                requires_python=f.requires_python,
                upload_time=f.upload_time,
                size=f.size,
            )
            for f in files
        )
    )


EMPTY = ActualState(())


def run(
    desired: DesiredState,
    projects: Mapping[str, UpstreamProject | None],
    actual: ActualState = EMPTY,
    advisories: Mapping[tuple[str, str], list[Advisory]] | None = None,
) -> Plan:
    return planner.plan(planner.PlanInputs(desired, projects, advisories or {}, actual, FROZEN_NOW))


FOO_10 = make_file("foo", "1.0", days_ago(100))
FOO_11 = make_file("foo", "1.1", days_ago(50))
FOO = make_project("foo", FOO_10, FOO_11)


def test_new_requirement_uploads_its_files() -> None:
    plan = run(make_desired(make_requirement("foo==1.1")), {"foo": FOO})
    (action,) = plan.actions
    assert (action.kind, action.name, action.version) == (ActionKind.UPLOAD, "foo", "1.1")
    assert action.reason == "new requirement foo==1.1"
    assert action.files[0].url == FOO_11.url and action.files[0].before_sha256 is None
    assert plan.desired_digest == "sha256:d"


def test_nothing_to_do_when_registry_matches() -> None:
    plan = run(make_desired(make_requirement("foo==1.1")), {"foo": FOO}, held(FOO_11))
    assert plan.actions == () and not plan.has_changes


def test_upgrade_uploads_new_then_prunes_old() -> None:
    plan = run(make_desired(make_requirement("foo>=1")), {"foo": FOO}, held(FOO_10))
    assert [(a.kind, a.version) for a in plan.actions] == [
        (ActionKind.UPLOAD, "1.1"),
        (ActionKind.DELETE, "1.0"),
    ]
    assert plan.actions[0].reason == "new version for foo>=1 (registry has 1.0)"
    assert plan.actions[1].reason == "superseded: foo>=1 selects another version"
    assert not plan.actions[1].quarantine


def test_a_line_for_no_target_is_not_mirrored_and_the_plan_says_so() -> None:
    listed = replace(make_requirement("foo==1.1"), marker='sys_platform == "cygwin"')
    plan = run(replace(make_desired(), for_no_target=(listed,)), {"foo": FOO}, held(FOO_10))
    assert [(a.kind, a.cause) for a in plan.actions] == [(ActionKind.DELETE, Cause.NOT_DESIRED)]
    assert plan.warnings == (
        "desired-state/requirements.txt:1: foo==1.1 applies to none of policy.environments "
        '(its marker: sys_platform == "cygwin"); not mirrored',
    )


def test_prune_false_keeps_old_versions() -> None:
    desired = make_desired(make_requirement("foo>=1"), config=make_config(prune=False))
    plan = run(desired, {"foo": FOO}, held(FOO_10))
    assert [a.kind for a in plan.actions] == [ActionKind.UPLOAD]


def test_removed_requirement_is_deleted() -> None:
    plan = run(make_desired(), {"foo": FOO}, held(FOO_10))
    (action,) = plan.actions
    assert action.kind is ActionKind.DELETE
    assert action.reason == "no longer desired: not in the requirements"


def test_retention_needs_a_registry_that_keeps_yank_markers() -> None:
    retaining = make_desired(config=make_config(retain_days=30))
    forgetful = replace(held(FOO_10), keeps_yanks=False, keeps_index_metadata=False)
    plan = run(retaining, {"foo": FOO}, forgetful)
    (action,) = plan.actions
    assert action.kind is ActionKind.DELETE and not plan.retained
    assert any("retain_days: this registry keeps no yank markers" in w for w in plan.warnings)
    # GitLab keeps them in the mirror's state but serves none: retained, with a warning.
    gitlab_like = replace(held(FOO_10), keeps_index_metadata=False)
    kept = run(retaining, {"foo": FOO}, gitlab_like)
    assert [a.cause for a in kept.actions] == [Cause.RETAINED]
    assert any("serves no yank markers" in w for w in kept.warnings)


def test_missing_file_and_differing_hash_are_reuploaded() -> None:
    sdist = make_file("foo", "1.1", days_ago(50), kind="sdist")
    project = make_project("foo", FOO_11, sdist)
    plan = run(make_desired(make_requirement("foo==1.1")), {"foo": project}, held(FOO_11))
    assert plan.actions[0].reason == f"file missing from the registry: {sdist.filename}"
    tampered = held(FOO_11, sdist, sha256="0" * 64)
    plan = run(make_desired(make_requirement("foo==1.1")), {"foo": project}, tampered)
    (action,) = plan.actions
    assert action.cause is Cause.CHANGED_IN_REGISTRY
    assert action.reason.startswith("file changed in the registry, restoring upstream's bytes")
    assert {f.before_sha256 for f in action.files} == {"0" * 64}


def test_a_page_edited_in_the_registry_is_restored_from_upstream() -> None:
    registry = held(FOO_11)
    (listed,) = registry.files
    edited = ActualState((replace(listed, requires_python=">=2.7"),))
    plan = run(make_desired(make_requirement("foo==1.1")), {"foo": FOO}, edited)
    (action,) = plan.actions
    assert (action.kind, action.cause) == (ActionKind.UPLOAD, Cause.CHANGED_IN_REGISTRY)
    assert action.reason == (
        "page changed in the registry (Requires-Python, upload time or size), restoring "
        f"upstream's: {FOO_11.filename}"
    )
    (planned,) = action.files
    assert planned.before_sha256 == planned.sha256  # the same bytes: only the page is rewritten
    assert planned.requires_python == FOO_11.requires_python
    later = ActualState((replace(listed, upload_time=days_ago(1)),))
    assert run(make_desired(make_requirement("foo==1.1")), {"foo": FOO}, later).actions


def test_upstream_serving_new_bytes_under_a_mirrored_name_quarantines_and_blocks() -> None:
    # The registry holds (and recorded) what upstream served then; upstream now serves other
    # bytes under the same file name, which PyPI never allows.
    replaced = make_file("foo", "1.1", days_ago(50), sha256="e" * 64)
    project = make_project("foo", FOO_10, replaced)
    plan = run(make_desired(make_requirement("foo>=1.0")), {"foo": project}, held(FOO_11))
    quarantine, upload = plan.actions
    assert quarantine.quarantine and quarantine.cause is Cause.UPSTREAM_CHANGED
    assert "other bytes for foo-1.1-py3-none-any.whl" in quarantine.reason
    # The range falls back to the version nobody tampered with.
    assert (upload.kind, upload.version) == (ActionKind.UPLOAD, "1.0")
    pinned = run(make_desired(make_requirement("foo==1.1")), {"foo": project}, held(FOO_11))
    assert pinned.blocked[0].reason == "upstream-changed"
    assert [a.cause for a in pinned.actions] == [Cause.UPSTREAM_CHANGED]


def test_blocked_requirement_keeps_the_version_it_replaces() -> None:
    young = make_file("foo", "2.0", days_ago(1))
    project = make_project("foo", FOO_10, young)
    plan = run(make_desired(make_requirement("foo==2.0")), {"foo": project}, held(FOO_10))
    assert plan.actions == ()
    assert plan.blocked[0].reason == "immature"
    assert "keeping foo 1.0 in the registry while foo==2.0 is blocked" in plan.warnings


@pytest.mark.parametrize(
    ("projects", "advisories", "reason"),
    [
        ({"foo": make_project("foo", FOO_11)}, {}, "vanished upstream: the version"),
        ({"foo": None}, {}, "vanished upstream: the project is gone"),
        (
            {"foo": make_project("foo", make_file("foo", "1.0", days_ago(100), yanked=True))},
            {},
            "yanked upstream",
        ),
        ({"foo": FOO}, {("foo", "1.0"): [Advisory("GHSA-9")]}, "has GHSA-9"),
    ],
)
def test_mirrored_version_is_quarantined(
    projects: dict[str, UpstreamProject | None],
    advisories: dict[tuple[str, str], list[Advisory]],
    reason: str,
) -> None:
    plan = run(make_desired(make_requirement("foo==1.0")), projects, held(FOO_10), advisories)
    quarantine = plan.actions[0]
    assert quarantine.kind is ActionKind.DELETE and quarantine.quarantine
    assert quarantine.reason.startswith(reason)
    if advisories:
        assert quarantine.advisories == ("GHSA-9",)


def test_range_moves_to_clean_version_when_mirrored_one_gets_an_advisory() -> None:
    plan = run(
        make_desired(make_requirement("foo")),
        {"foo": FOO},
        held(FOO_11),
        {("foo", "1.1"): [Advisory("GHSA-9")]},
    )
    assert [(a.kind, a.version, a.quarantine) for a in plan.actions] == [
        (ActionKind.DELETE, "1.1", True),
        (ActionKind.UPLOAD, "1.0", False),
    ]


def test_mass_delete_guard() -> None:
    files = [make_file(f"p{i}", "1.0", days_ago(100)) for i in range(3)]
    plan = run(
        make_desired(config=make_config(max_deletions=2)),
        {f"p{i}": make_project(f"p{i}", f) for i, f in enumerate(files)},
        held(*files),
    )
    assert plan.count(ActionKind.DELETE) == 3
    with pytest.raises(MassDeleteError, match="max_deletions.*--allow-mass-delete"):
        check_deletion_limit(plan, 2, allow_mass_delete=False)
    check_deletion_limit(plan, 2, allow_mass_delete=True)


def test_versions_to_audit_covers_candidates_and_the_registry() -> None:
    desired = make_desired(make_requirement("foo"))
    pairs = planner.versions_to_audit(
        desired, {"foo": FOO, "bar": None}, held(make_file("bar", "3.0", days_ago(9))), FROZEN_NOW
    )
    assert pairs == [("foo", "1.1"), ("foo", "1.0"), ("bar", "3.0")]


def test_versions_spelled_differently_converge() -> None:
    sdist = make_file("foo", "1.0", days_ago(100), kind="sdist")
    wheel = make_file("foo", "1.0.0", days_ago(100))
    project = make_project("foo", sdist, wheel)
    desired = make_desired(make_requirement("foo==1.0"))
    first = run(desired, {"foo": project})
    assert {f.filename for f in first.actions[0].files} == {sdist.filename, wheel.filename}
    assert run(desired, {"foo": project}, held(sdist, wheel)).actions == ()


def test_yank_upstream_after_mirroring_updates_the_marker() -> None:
    yanked = make_file("foo", "1.0", days_ago(100), yanked=True)
    desired = make_desired(
        make_requirement("foo==1.0"), config=make_config(yanked=YankedPolicy.ALLOW_PINNED)
    )
    (action,) = run(desired, {"foo": make_project("foo", yanked)}, held(FOO_10)).actions
    assert action.kind is ActionKind.UPLOAD
    assert action.reason.startswith("yank marker changed upstream")
    (planned,) = action.files
    assert planned.yanked and planned.before_sha256 == planned.sha256


def test_a_mirrored_version_no_service_could_check_is_kept_with_a_warning() -> None:
    project = make_project("foo", FOO_10, FOO_11)
    plan = planner.plan(
        planner.PlanInputs(
            make_desired(make_requirement("foo==1.1")),
            {"foo": project},
            {},
            held(FOO_11),
            FROZEN_NOW,
            unchecked=frozenset({("foo", "1.1")}),
        )
    )
    assert plan.actions == ()  # nothing quarantined on missing data
    assert plan.blocked[0].reason == "unchecked"
    assert any("foo 1.1 could not be checked for advisories" in w for w in plan.warnings)


def test_security_fix_lane_finds_advisories_of_a_held_version_spelled_with_a_zero() -> None:
    held_file = make_file("foo", "1.0", days_ago(100))
    fix = make_file("foo", "1.1", days_ago(5))
    plan = run(
        make_desired(make_requirement("foo"), config=make_config(fix_min_age_days=3)),
        {"foo": make_project("foo", held_file, fix)},
        held(held_file),
        {("foo", "1.0"): [Advisory("GHSA-h", fixed_in=("1.1",))]},
    )
    quarantine, upload = plan.actions
    assert quarantine.version == "1.0" and upload.version == "1.1"
    assert "security fix: fixes GHSA-h in 1.0" in upload.reason


def test_a_malicious_finding_quarantines_even_when_another_service_had_no_record() -> None:
    project = make_project("foo", FOO_10, FOO_11)
    plan = planner.plan(
        planner.PlanInputs(
            make_desired(make_requirement("foo==1.1")),
            {"foo": project},
            {("foo", "1.1"): [Advisory("MAL-2026-1")]},
            held(FOO_11),
            FROZEN_NOW,
            unchecked=frozenset({("foo", "1.1")}),
        )
    )
    (quarantine,) = plan.actions
    assert quarantine.quarantine and quarantine.advisories == ("MAL-2026-1",)
    assert plan.blocked[0].reason == "malicious"


def test_without_a_recorded_hash_a_difference_is_repaired_not_distrusted() -> None:
    actual = ActualState(
        files=(RegistryFile("foo", "1.1", FOO_11.filename, "0" * 64, recorded_sha256=None),)
    )
    plan = run(
        make_desired(make_requirement("foo==1.1")),
        {"foo": make_project("foo", FOO_11)},
        actual,
    )
    (upload,) = plan.actions
    assert upload.cause is Cause.CHANGED_IN_REGISTRY


def test_a_version_nobody_was_asked_about_is_not_admitted() -> None:
    plan = planner.plan(
        planner.PlanInputs(
            make_desired(make_requirement("foo==1.1")),
            {"foo": make_project("foo", FOO_10, FOO_11)},
            {},
            EMPTY,
            FROZEN_NOW,
            audited=frozenset({("foo", "1.0")}),
        )
    )
    assert plan.actions == () and plan.blocked[0].reason == "unchecked"


def test_an_unreadable_page_blocks_its_project_alone_and_keeps_what_is_held() -> None:
    broken = UpstreamProject("foo", (), unreadable="JSON nested too deeply")
    bar = make_project("bar", make_file("bar", "2.0", days_ago(30)))
    desired = make_desired(make_requirement("foo>=1"), make_requirement("bar"))
    plan = run(desired, {"foo": broken, "bar": bar}, held(FOO_10))
    assert [(a.kind, a.name) for a in plan.actions] == [(ActionKind.UPLOAD, "bar")]
    (blocked,) = plan.blocked
    assert (blocked.name, blocked.reason) == ("foo", "upstream-unreadable")
    assert "could not be read: JSON nested too deeply" in blocked.detail
    assert any("foo 1.0 could not be checked against upstream" in w for w in plan.warnings)


def test_bytes_no_page_lists_are_listed_when_wanted_and_deleted_when_not() -> None:
    def unlisted(*files: UpstreamFile) -> ActualState:
        return ActualState(
            tuple(replace(f, recorded_sha256=None, listed=False) for f in held(*files).files)
        )

    plan = run(make_desired(make_requirement("foo==1.1")), {"foo": FOO}, unlisted(FOO_10, FOO_11))
    by_version = {a.version: a for a in plan.actions}
    assert by_version["1.1"].kind is ActionKind.UPLOAD
    assert by_version["1.1"].reason.startswith("file in the registry but on no page")
    assert by_version["1.1"].files[0].before_sha256 == FOO_11.sha256  # same bytes: re-listed
    assert (by_version["1.0"].kind, by_version["1.0"].cause) == (
        ActionKind.DELETE,
        Cause.SUPERSEDED,
    )


def locked(text: str, sha256: str, set_name: str, line: int, targets: frozenset[str] | None = None):  # type: ignore[no-untyped-def]
    """A locked entry of one set: a pin with the hash of the one file it names."""
    return replace(
        make_requirement(text, (sha256,)),
        set_name=set_name,
        source=SourceLocation(f"desired-state/{set_name}.lock", line),
        locked=True,
        targets=targets,
    )


def test_two_locks_naming_other_files_of_one_version_hold_the_files_of_both() -> None:
    sdist = make_file("foo", "1.0", days_ago(100), kind="sdist")
    project = make_project("foo", FOO_10, sdist)
    lines = (
        locked("foo==1.0", FOO_10.sha256 or "", "wheels", 2),
        locked("foo==1.0", sdist.sha256 or "", "builds", 2),
    )
    plan = run(make_desired(*lines), {"foo": project})
    (upload,) = plan.actions
    assert {f.filename for f in upload.files} == {FOO_10.filename, sdist.filename}
    assert upload.sets == ("wheels", "builds")


def test_a_lock_pinning_two_versions_blocks_the_failing_one_on_its_own_targets() -> None:
    fresh = make_file("foo", "2.0", days_ago(1))
    project = make_project("foo", FOO_10, fresh)
    windows = frozenset(t for t in map(str, make_config().policy.environments) if "windows" in t)
    others = frozenset(map(str, make_config().policy.environments)) - windows
    lines = (
        locked("foo==1.0", FOO_10.sha256 or "", "svc", 9, others),
        locked("foo==2.0", fresh.sha256 or "", "svc", 2, windows),
    )
    plan = run(make_desired(*lines), {"foo": project})
    (blocked,) = plan.blocked
    assert (blocked.requirement, blocked.source) == ("foo==2.0", "desired-state/svc.lock:2")
    assert blocked.detail.endswith("the newest version the policy admits is 1.0")
    assert {c.target for c in plan.coverage if c.blocked} == windows


def test_a_locked_yanked_pin_beside_a_range_on_the_project_is_not_quarantined() -> None:
    yanked = make_file("foo", "1.0", days_ago(100), yanked=True)
    project = make_project("foo", yanked, FOO_11)
    config = make_config(yanked=YankedPolicy.ALLOW_PINNED)
    lines = (locked("foo==1.0", yanked.sha256 or "", "svc", 2), make_requirement("foo"))
    plan = run(make_desired(*lines, config=config), {"foo": project}, held(yanked))
    assert not [a for a in plan.actions if a.kind is ActionKind.DELETE]


def test_a_retention_date_beyond_the_policy_s_is_brought_back_to_it() -> None:
    retaining = make_desired(config=make_config(retain_days=30))
    edited = replace(
        held(FOO_10).files[0],
        yanked=True,
        yanked_reason="no longer needed; removed after 2999-12-31",
    )
    plan = run(retaining, {"foo": FOO}, ActualState((edited,)))
    (action,) = plan.actions
    assert action.cause is Cause.RETAINED
    assert {f.yanked_reason for f in action.files} == {
        "no longer needed; removed after 2026-12-24"  # FROZEN_NOW + 30 days
    }
    upstreams_own = replace(edited, yanked_reason="broken build; removed after 2020-01-01")
    plan = run(retaining, {"foo": FOO}, ActualState((upstreams_own,)))
    assert [a.cause for a in plan.actions] == [Cause.RETAINED]  # not read as a date of ours


def test_a_file_a_lock_names_that_upstream_does_not_serve_is_said() -> None:
    line = replace(
        locked("foo==1.0", FOO_10.sha256 or "", "svc", 4),
        locked_files=(
            (FOO_10.filename, FOO_10.sha256 or ""),
            ("foo-1.0-cp312-win_amd64.whl", "b" * 64),
        ),
    )
    plan = run(make_desired(line), {"foo": FOO})
    assert any(
        "desired-state/svc.lock:4: foo==1.0: foo-1.0-cp312-win_amd64.whl" in w
        for w in plan.warnings
    )
