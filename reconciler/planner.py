"""The planner: desired state and upstream facts against the registry's contents, as actions.

Pure: every input is data (upstream pages, advisories, the registry listing, `now`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from reconciler import closure, policy
from reconciler.metadata import CoreMetadata
from reconciler.model import (
    Action,
    ActionKind,
    ActualState,
    Advisory,
    AdvisorySource,
    Blocked,
    Cause,
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
    """Everything a plan is computed from.

    `unchecked` holds the (name, version) pairs some vulnerability service had no record of.
    """

    desired: DesiredState
    projects: Mapping[str, UpstreamProject | None]
    advisories: policy.Advisories
    actual: ActualState
    now: datetime
    advisory_sources: tuple[AdvisorySource, ...] = ()
    created_at: datetime | None = None  # wall-clock time of planning; `now` may be `--now`
    unchecked: frozenset[policy.PackageKey] = frozenset()
    audited: frozenset[policy.PackageKey] | None = None  # the pairs the services were asked
    metadata: Mapping[str, CoreMetadata] = field(default_factory=dict)  # by file sha256
    unreadable: frozenset[str] = frozenset()  # files whose metadata could not be read


def projects_to_fetch(desired: DesiredState, actual: ActualState) -> set[str]:
    """Every project a plan needs upstream facts for: desired ones and mirrored ones."""
    return {r.name for r in desired.requirements} | {f.name for f in actual.files}


def versions_to_audit(
    desired: DesiredState,
    projects: Mapping[str, UpstreamProject | None],
    actual: ActualState,
    now: datetime,
) -> list[policy.PackageKey]:
    """(name, version) pairs to check for advisories, in one batch: every candidate a
    requirement could select, and everything the registry holds (the audit)."""
    context = policy.PolicyContext(desired.config, now)
    listed = {r.name: r for r in desired.requirements}
    # With the closure, every project fetched may be a dependency: its candidates too.
    names = projects.keys() if desired.config.policy.dependencies == "closure" else listed.keys()
    pairs = [
        (name, str(version))
        for name in sorted(names)
        for version in policy.versions_to_audit(
            listed.get(name) or closure.dependency_requirement(name), projects.get(name), context
        )
    ]
    pairs.extend((f.name, f.version) for f in actual.files)
    return list(dict.fromkeys(pairs))


def plan(inputs: PlanInputs) -> Plan:
    """Compute the actions that bring the registry to the desired state, and what is blocked."""
    desired = inputs.desired
    context = policy.PolicyContext(
        desired.config, inputs.now, inputs.advisories, inputs.unchecked, inputs.audited
    )
    requirements = {r.name: r for r in desired.requirements}
    mirrored = inputs.actual.by_version()
    # Held versions as the registry spells them: that is how the services were asked about them.
    held: dict[str, list[Version]] = {}
    for (name, _), files in mirrored.items():
        if (parsed := _parse(_registry_spelling(files))) is not None:
            held.setdefault(name, []).append(parsed)
    distrusted = _upstream_changed(mirrored, inputs.actual, inputs.projects, context)
    warnings = policy.expired_entries(desired.config, inputs.now)
    required_by: Mapping[str, tuple[str, ...]] = {}
    kept: frozenset[tuple[str, Version]] = frozenset()
    decisions: dict[str, policy.Admitted | Blocked]
    if desired.config.policy.dependencies == "closure":
        resolved = closure.resolve(
            desired.requirements,
            inputs.projects,
            inputs.metadata,
            inputs.unreadable,
            context,
            held,
            distrusted,
            desired.config.policy.environments,
        )
        decisions = {**resolved.admitted, **resolved.blocked}
        required_by, kept = resolved.required_by, resolved.kept
        warnings.extend(resolved.warnings)
    else:
        decisions = {
            name: policy.decide(
                requirement,
                inputs.projects.get(name),
                context,
                held=held.get(name, ()),
                distrusted={v: why for (n, v), why in distrusted.items() if n == name},
            )
            for name, requirement in requirements.items()
        }
    admitted = {
        (d.requirement.name, version_key(str(d.version))): d
        for d in decisions.values()
        if isinstance(d, policy.Admitted)
    }
    blocked_names = {name for name, d in decisions.items() if isinstance(d, Blocked)}
    if not inputs.actual.keeps_index_metadata:
        warnings.append(
            "this registry serves PEP 503 HTML only: upstream upload times and yank markers are "
            "not carried, so client-side cooldowns (uv --exclude-newer) cannot work against it"
        )

    quarantines: list[Action] = []
    prunes: list[Action] = []
    for (name, key), files in sorted(mirrored.items()):
        version = _registry_spelling(files)
        project = inputs.projects.get(name)
        if (name, version) in inputs.unchecked:
            warnings.append(
                f"{name} {version} could not be checked for advisories this time: "
                "a vulnerability service has no record of it; kept until one does"
            )
        cause = _quarantine_cause(name, version, project, requirements.get(name), context)
        parsed = _parse(key)
        if cause is None and parsed is not None and (name, parsed) in distrusted:
            cause = (Cause.UPSTREAM_CHANGED, distrusted[(name, parsed)], ())
        if cause is not None:
            kind, reason, advisory_ids = cause
            quarantines.append(
                _delete(name, version, kind, reason, files.values(), True, advisory_ids)
            )
            continue
        decision = admitted.get((name, key))
        if decision is not None:
            wanted = {f.filename for f in decision.files}
            upstream_files = {f.filename: f for f in project.files} if project else {}
            vanished = [f for n, f in files.items() if n not in upstream_files]
            if vanished:
                quarantines.append(
                    _delete(name, version, Cause.VANISHED, "file vanished upstream", vanished, True)
                )
            extra = [f for n, f in files.items() if n not in wanted and n in upstream_files]
            yanked = [f for f in extra if upstream_files[f.filename].yanked]
            if yanked:
                quarantines.append(
                    _delete(name, version, Cause.YANKED, "file yanked upstream", yanked, True)
                )
            extra = [f for f in extra if f not in yanked]
            if extra and desired.config.policy.prune:
                prunes.append(
                    _delete(
                        name,
                        version,
                        Cause.NOT_ADMITTED,
                        "file no longer admitted by policy",
                        extra,
                    )
                )
            continue
        if name in blocked_names:
            warnings.append(
                f"keeping {name} {version} in the registry while {requirements[name].text} "
                "is blocked"
            )
            continue
        if parsed is not None and (name, parsed) in kept:
            continue  # a dependency of a version kept while its requirement is blocked
        if desired.config.policy.prune:
            if name in requirements:
                reason = f"no longer desired: {requirements[name].text} selects another version"
            elif desired.config.policy.dependencies == "closure":
                reason = "no longer needed: not a requirement nor a dependency of one"
            else:
                reason = "no longer desired: not in the requirements"
            prunes.append(_delete(name, version, Cause.NOT_DESIRED, reason, files.values()))

    leaving = {(a.name, version_key(a.version)) for a in quarantines if _whole_version(a, mirrored)}
    uploads = [
        action
        for decision in sorted(admitted.values(), key=lambda d: d.requirement.name)
        if (action := _upload(decision, mirrored, inputs.actual, leaving, required_by)) is not None
    ]
    actions = (*quarantines, *uploads, *prunes)
    blocked = tuple(
        sorted((d for d in decisions.values() if isinstance(d, Blocked)), key=lambda b: b.name)
    )
    return Plan(
        created_at=inputs.created_at or inputs.now,
        evaluated_at=inputs.now,
        desired_digest=desired.digest,
        actual_digest=actual_digest(inputs.actual),
        actions=actions,
        blocked=blocked,
        warnings=tuple(warnings),
        advisory_sources=inputs.advisory_sources,
        registry_generation=inputs.actual.generation,
        advisories=_named_advisories(inputs.advisories, actions, blocked),
    )


def _registry_spelling(files: Mapping[str, RegistryFile]) -> str:
    """A mirrored version as the registry spells it (files of one `version_key` group)."""
    return next(iter(files.values())).version


def _parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def _upstream_changed(
    mirrored: Mapping[tuple[str, str], Mapping[str, RegistryFile]],
    actual: ActualState,
    projects: Mapping[str, UpstreamProject | None],
    context: policy.PolicyContext,
) -> dict[tuple[str, Version], str]:
    """Versions whose upstream file now has other bytes than the mirror took, and why.

    PyPI never lets a file name be reused, so new bytes under an old name mean a tampered or
    rebuilt upstream: the version is quarantined and refused, never silently replaced, and it
    stays refused after the quarantine (the log keeps the bytes taken) until an exception for
    the version says a person reviewed the new bytes.
    """
    taken: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (name, _), files in mirrored.items():
        for registry_file in files.values():
            # Only the recorded hash says what was taken; without one, a difference may as
            # well be a hand edit of the registry (repaired by re-uploading instead).
            if registry_file.recorded_sha256:
                taken.setdefault((name, registry_file.version), []).append(
                    (registry_file.filename, registry_file.recorded_sha256)
                )
    for record in actual.quarantined:
        if record.cause is Cause.UPSTREAM_CHANGED:
            taken.setdefault((record.name, record.version), []).extend(record.files)
    changed: dict[tuple[str, Version], str] = {}
    for (name, spelling), hashes in taken.items():
        project, version = projects.get(name), _parse(spelling)
        if project is None or version is None or context.exception_for(name, version):
            continue
        upstream = {f.filename: f.sha256 for f in project.files}
        for filename, took in hashes:
            now = upstream.get(filename)
            if now and now != took:
                changed[(name, version)] = (
                    f"upstream now serves other bytes for {filename} than were mirrored "
                    f"(sha256 {took[:12]}… then, {now[:12]}… now); after review, an exception "
                    "for this version admits the new bytes"
                )
    return changed


def _quarantine_cause(
    name: str,
    version: str,
    project: UpstreamProject | None,
    requirement: Requirement | None,
    context: policy.PolicyContext,
) -> tuple[Cause, str, tuple[str, ...]] | None:
    parsed = _parse(version)
    if parsed is None:
        return None
    cause = policy.quarantine_cause(name, parsed, project, requirement, context, version)
    if cause is None:
        return None
    kind, reason, advisories = cause
    return kind, reason, tuple(a.id for a in advisories)


def _whole_version(action: Action, mirrored: Mapping[tuple[str, str], Mapping[str, Any]]) -> bool:
    """Whether a delete removes every file the registry holds of its version."""
    held = mirrored.get((action.name, version_key(action.version)), {})
    return {f.filename for f in action.files} >= set(held)


def _upload(
    decision: policy.Admitted,
    mirrored: Mapping[tuple[str, str], dict[str, RegistryFile]],
    actual: ActualState,
    leaving: set[tuple[str, str]],
    required_by: Mapping[str, tuple[str, ...]],
) -> Action | None:
    """The upload action for an admitted version, or None when the registry has it all.

    `leaving` names the versions this plan quarantines, so a replacement says what it replaces.
    """
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
        if actual.keeps_index_metadata
        and f.filename in present
        and present[f.filename].sha256 == f.sha256
        and (present[f.filename].yanked, present[f.filename].yanked_reason)
        != (f.yanked, f.yanked_reason)
    ]
    if not missing and not differing and not restamped:
        return None
    quarantined = actual.quarantine_record(name, version)
    if not present and quarantined is not None:
        cause = Cause.RESTORED
        reason = (
            f"restored: quarantined {quarantined.at:%Y-%m-%d} ({quarantined.reason}); "
            "that no longer applies"
        )
    elif not present:
        others = sorted(
            {_registry_spelling(files) for (n, _), files in mirrored.items() if n == name},
            key=version_sort_key,
        )
        replaced = [v for v in others if (name, version_key(v)) in leaving]
        cause = Cause.NEW_VERSION if others else Cause.NEW_REQUIREMENT
        if replaced:
            reason = (
                f"new version for {decision.requirement.text} in place of quarantined "
                f"{', '.join(replaced)}"
            )
        elif others:
            reason = (
                f"new version for {decision.requirement.text} (registry has {', '.join(others)})"
            )
        elif decision.requirement.source == closure.DEPENDENCY:
            reason = f"new dependency of {', '.join(required_by.get(name, ())) or 'a requirement'}"
        else:
            reason = f"new requirement {decision.requirement.text}"
    elif hand_edited := [
        f for f in differing if present[f.filename].sha256 != present[f.filename].recorded_sha256
    ]:
        cause = Cause.CHANGED_IN_REGISTRY
        reason = "file changed in the registry, restoring upstream's bytes: " + ", ".join(
            f.filename for f in hand_edited
        )
    elif differing:
        cause = Cause.UPSTREAM_CHANGED
        reason = "upstream serves other bytes than were mirrored, replacing them: " + ", ".join(
            f.filename for f in differing
        )
    elif missing:
        cause = Cause.MISSING_FROM_REGISTRY
        reason = "file missing from the registry: " + ", ".join(f.filename for f in missing)
    else:
        cause = Cause.YANK_CHANGED
        reason = "yank marker changed upstream: " + ", ".join(f.filename for f in restamped)
    if decision.notes:
        reason += "; " + "; ".join(decision.notes)
    files = tuple(
        _planned_upload(f, present[f.filename].sha256 if f.filename in present else None)
        for f in sorted([*missing, *differing, *restamped], key=lambda f: f.filename)
    )
    return Action(
        ActionKind.UPLOAD,
        name,
        version,
        reason,
        files,
        cause=cause,
        required_by=required_by.get(name, ()),
    )


def _named_advisories(
    findings: policy.Advisories, actions: Iterable[Action], blocked: Iterable[Blocked]
) -> tuple[Advisory, ...]:
    """The details of every advisory an action or a blocked entry names, for the reports."""
    wanted = {i for a in actions for i in a.advisories} | {i for b in blocked for i in b.advisories}
    known: dict[str, Advisory] = {}
    for advisories in findings.values():
        for advisory in advisories:
            if advisory.id in wanted:
                known.setdefault(advisory.id, advisory)
    return tuple(known[i] for i in sorted(known))


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
    cause: Cause,
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
        cause=cause,
    )
