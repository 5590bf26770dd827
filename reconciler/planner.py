"""The planner: desired state and upstream facts against the registry's contents, as actions.

Pure: every input is data (upstream pages, advisories, the registry listing, `now`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from packaging.version import InvalidVersion, Version

from reconciler import policy
from reconciler.model import (
    Action,
    ActionKind,
    ActualState,
    AdvisorySource,
    Blocked,
    DesiredState,
    Plan,
    PlannedFile,
    RegistryFile,
    Requirement,
    UpstreamFile,
    UpstreamProject,
    version_key,
    version_sort_key,
)
from reconciler.planfile import actual_digest


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is computed from."""

    desired: DesiredState
    projects: Mapping[str, UpstreamProject | None]
    advisories: policy.Advisories
    actual: ActualState
    now: datetime
    advisory_sources: tuple[AdvisorySource, ...] = ()
    created_at: datetime | None = None  # wall-clock time of planning; `now` may be `--now`


def projects_to_fetch(desired: DesiredState, actual: ActualState) -> set[str]:
    """Every project a plan needs upstream facts for: desired ones and mirrored ones."""
    return {r.name for r in desired.requirements} | {f.name for f in actual.files}


def versions_to_audit(
    desired: DesiredState,
    projects: Mapping[str, UpstreamProject | None],
    actual: ActualState,
    now: datetime,
) -> list[tuple[str, str]]:
    """(name, version) pairs to check for advisories: candidates and everything mirrored."""
    context = policy.PolicyContext(desired.config, now)
    pairs = [
        (requirement.name, str(version))
        for requirement in desired.requirements
        for version in policy.versions_to_audit(
            requirement, projects.get(requirement.name), context
        )
    ]
    pairs.extend((f.name, f.version) for f in actual.files)
    return list(dict.fromkeys(pairs))


def plan(inputs: PlanInputs) -> Plan:
    """Compute the actions that bring the registry to the desired state, and what is blocked."""
    desired = inputs.desired
    context = policy.PolicyContext(desired.config, inputs.now)
    requirements = {r.name: r for r in desired.requirements}
    decisions = {
        name: policy.decide(requirement, inputs.projects.get(name), context, inputs.advisories)
        for name, requirement in requirements.items()
    }
    admitted = {
        (d.requirement.name, version_key(str(d.version))): d
        for d in decisions.values()
        if isinstance(d, policy.Admitted)
    }
    blocked_names = {name for name, d in decisions.items() if isinstance(d, Blocked)}
    mirrored = inputs.actual.by_version()
    warnings = policy.expired_entries(desired.config, inputs.now)

    quarantines: list[Action] = []
    prunes: list[Action] = []
    for (name, key), files in sorted(mirrored.items()):
        version = _registry_spelling(files)
        project = inputs.projects.get(name)
        cause = _quarantine_cause(name, version, project, requirements.get(name), context, inputs)
        if cause is not None:
            reason, advisory_ids = cause
            quarantines.append(_delete(name, version, reason, files.values(), True, advisory_ids))
            continue
        decision = admitted.get((name, key))
        if decision is not None:
            wanted = {f.filename for f in decision.files}
            upstream_names = {f.filename for f in project.files} if project else set()
            vanished = [f for n, f in files.items() if n not in upstream_names]
            if vanished:
                quarantines.append(
                    _delete(name, version, "file vanished upstream", vanished, quarantine=True)
                )
            extra = [f for n, f in files.items() if n not in wanted and n in upstream_names]
            if extra and desired.config.policy.prune:
                prunes.append(_delete(name, version, "file no longer admitted by policy", extra))
            continue
        if name in blocked_names:
            warnings.append(
                f"keeping {name} {version} in the registry while {requirements[name].text} "
                "is blocked"
            )
            continue
        if desired.config.policy.prune:
            reason = (
                f"no longer desired: {requirements[name].text} selects another version"
                if name in requirements
                else "no longer desired: not in the requirements"
            )
            prunes.append(_delete(name, version, reason, files.values()))

    uploads = [
        action
        for decision in sorted(admitted.values(), key=lambda d: d.requirement.name)
        if (action := _upload(decision, mirrored)) is not None
    ]
    actions = (*quarantines, *uploads, *prunes)
    return Plan(
        created_at=inputs.created_at or inputs.now,
        evaluated_at=inputs.now,
        desired_digest=desired.digest,
        actual_digest=actual_digest(inputs.actual),
        actions=actions,
        blocked=tuple(
            sorted((d for d in decisions.values() if isinstance(d, Blocked)), key=lambda b: b.name)
        ),
        warnings=tuple(warnings),
        advisory_sources=inputs.advisory_sources,
        registry_generation=inputs.actual.generation,
    )


def _registry_spelling(files: Mapping[str, RegistryFile]) -> str:
    """A mirrored version as the registry spells it (files of one `version_key` group)."""
    return next(iter(files.values())).version


def _quarantine_cause(
    name: str,
    version: str,
    project: UpstreamProject | None,
    requirement: Requirement | None,
    context: policy.PolicyContext,
    inputs: PlanInputs,
) -> tuple[str, tuple[str, ...]] | None:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    cause = policy.quarantine_cause(
        name, parsed, project, requirement, context, inputs.advisories.get((name, version), ())
    )
    if cause is None:
        return None
    reason, advisories = cause
    return reason, tuple(a.id for a in advisories)


def _upload(
    decision: policy.Admitted, mirrored: Mapping[tuple[str, str], dict[str, RegistryFile]]
) -> Action | None:
    """The upload action for an admitted version, or None when the registry has it all."""
    name, version = decision.requirement.name, str(decision.version)
    present = mirrored.get((name, version_key(version)), {})
    missing = [f for f in decision.files if f.filename not in present]
    differing = [
        f
        for f in decision.files
        if f.filename in present and present[f.filename].sha256 != f.sha256
    ]
    # PEP 592: a yank (or un-yank) upstream after mirroring must reach the mirror's pages.
    restamped = [
        f
        for f in decision.files
        if f.filename in present
        and present[f.filename].sha256 == f.sha256
        and (present[f.filename].yanked, present[f.filename].yanked_reason)
        != (f.yanked, f.yanked_reason)
    ]
    if not missing and not differing and not restamped:
        return None
    if not present:
        others = sorted(
            {_registry_spelling(files) for (n, _), files in mirrored.items() if n == name},
            key=version_sort_key,
        )
        reason = (
            f"new version for {decision.requirement.text} (registry has {', '.join(others)})"
            if others
            else f"new requirement {decision.requirement.text}"
        )
    elif differing:
        reason = "file hash differs from upstream: " + ", ".join(f.filename for f in differing)
    elif missing:
        reason = "file missing from the registry: " + ", ".join(f.filename for f in missing)
    else:
        reason = "yank marker changed upstream: " + ", ".join(f.filename for f in restamped)
    if decision.notes:
        reason += "; " + "; ".join(decision.notes)
    files = tuple(
        _planned_upload(f, present[f.filename].sha256 if f.filename in present else None)
        for f in sorted([*missing, *differing, *restamped], key=lambda f: f.filename)
    )
    return Action(ActionKind.UPLOAD, name, version, reason, files)


def _planned_upload(upstream_file: UpstreamFile, before: str | None) -> PlannedFile:
    assert upstream_file.sha256 is not None  # policy admits only files with a sha256
    return PlannedFile(
        filename=upstream_file.filename,
        sha256=upstream_file.sha256,
        before_sha256=before,
        url=upstream_file.url,
        size=upstream_file.size,
        upload_time=upstream_file.upload_time,
        requires_python=upstream_file.requires_python,
        yanked=upstream_file.yanked,
        yanked_reason=upstream_file.yanked_reason,
    )


def _delete(
    name: str,
    version: str,
    reason: str,
    files: Iterable[RegistryFile],
    quarantine: bool = False,
    advisories: tuple[str, ...] = (),
) -> Action:
    """Delete files of one version; each keeps the sha256 it has now, for staleness checks."""
    return Action(
        ActionKind.DELETE,
        name,
        version,
        f"quarantine: {reason}" if quarantine else reason,
        tuple(
            PlannedFile(f.filename, f.sha256, before_sha256=f.sha256)
            for f in sorted(files, key=lambda f: f.filename)
        ),
        quarantine=quarantine,
        advisories=advisories,
    )
