"""The planner: desired state and upstream facts against the registry's contents, as actions.

Pure: every input is data (upstream pages, advisories, the registry listing, `now`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from packaging.version import Version

from reconciler import closure, policy
from reconciler.errors import UserError
from reconciler.metadata import CoreMetadata
from reconciler.model import (
    Action,
    ActionKind,
    ActualState,
    Advisory,
    AdvisorySource,
    Baseline,
    Blocked,
    Cause,
    Coverage,
    DependencyMode,
    DesiredState,
    Plan,
    PlannedFile,
    RegistryFile,
    Requirement,
    Retained,
    SetSummary,
    UpstreamFile,
    UpstreamProject,
    download_size,
    parse_version,
    version_key,
    version_sort_key,
)
from reconciler.planfile import actual_digest
from reconciler.targets import TargetEnvironment


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
    # sdist sha256 -> its build requirements (PEP 518), or why they could not be read
    build: Mapping[str, tuple[str, ...] | str] = field(default_factory=dict)
    exhausted: bool = False  # the fetch budget is spent: what is missing is unavailable
    memo: closure.Memo | None = None  # what earlier rounds of this plan resolved
    prejudged: policy.Prejudgements | None = None  # policy.PolicyContext.prejudged, plan-wide


def projects_to_fetch(desired: DesiredState, actual: ActualState) -> set[str]:
    """Every project a plan needs upstream facts for: desired ones and mirrored ones."""
    return {r.name for r in desired.requirements} | {f.name for f in actual.files}


def versions_to_audit(
    desired: DesiredState,
    projects: Mapping[str, UpstreamProject | None],
    actual: ActualState,
    now: datetime,
    prejudged: policy.Prejudgements | None = None,
) -> list[policy.PackageKey]:
    """(name, version) pairs to check for advisories, in one batch: every candidate a
    requirement could select, and everything the registry holds (the audit)."""
    context = policy.PolicyContext(desired.config, now, prejudged=prejudged)
    listed: dict[str, list[Requirement]] = {}
    for requirement in desired.requirements:  # lines split by markers: several per project
        listed.setdefault(requirement.name, []).append(requirement)
    # With the closure, every project fetched may be a dependency: its candidates too.
    closure_mode = desired.config.policy.dependencies is DependencyMode.CLOSURE
    names = projects.keys() if closure_mode else listed.keys()
    pairs = [
        (name, str(version))
        for name in sorted(names)
        # A listed project may be a dependency (or build requirement) elsewhere, under any
        # version: audit those candidates too, or they would look unchecked. So is a locked
        # one: a failing entry names the newest version the policy admits.
        for requirement in [
            *listed.get(name, []),
            *(
                [closure.dependency_requirement(name)]
                if closure_mode or any(r.locked for r in listed.get(name, []))
                else []
            ),
        ]
        for version in policy.versions_to_audit(requirement, projects.get(name), context)
    ]
    pairs.extend((f.name, f.version) for f in actual.files)
    return list(dict.fromkeys(pairs))


class Foresight:
    """What the dependency closure will most likely ask for next, guessed from what came in:
    fetched ahead of the resolver, each round of which is a resolution and a wait on the
    network. A guess that misses costs a file or a page nobody reads."""

    def __init__(
        self, desired: DesiredState, now: datetime, prejudged: policy.Prejudgements | None = None
    ) -> None:
        self.closure = desired.config.policy.dependencies is DependencyMode.CLOSURE
        self.context = policy.PolicyContext(desired.config, now, prejudged=prejudged)
        self.listed = {r.name: r for r in desired.requirements}
        self.targets = desired.config.policy.environments

    def metadata_file(self, name: str, project: UpstreamProject | None) -> UpstreamFile | None:
        """The file whose core metadata stands for the release the project's requirement (a
        listed one, else any version) takes by policy, advisories aside: the newest."""
        if not self.closure or project is None or project.unreadable is not None:
            return None
        requirement = self.listed.get(name) or closure.dependency_requirement(name)
        releases = project.releases()
        for version in policy.candidates(requirement, project):
            verdict = policy.judge_version(
                requirement, version, releases[version], self.context, check_advisories=False
            )
            if verdict.problem is None:
                return closure.metadata_file(verdict)
        return None

    def dependencies(self, metadata: CoreMetadata) -> set[str]:
        """The projects a release depends on for some target of the policy."""
        return closure.likely_dependencies(metadata, self.targets)


def plan(inputs: PlanInputs) -> Plan:
    """Compute the actions that bring the registry to the desired state, and what is blocked."""
    desired, actual = inputs.desired, inputs.actual
    context = policy.PolicyContext(
        desired.config,
        inputs.now,
        inputs.advisories,
        inputs.unchecked,
        inputs.audited,
        wall_clock=inputs.created_at,
        prejudged=inputs.prejudged,
    )
    lock_warnings = _checked_locks(desired.requirements, inputs.projects)
    mirrored = actual.by_version()
    distrusted = _upstream_changed(mirrored, actual, inputs.projects, context)
    decisions = _decide(inputs, context, _held_versions(mirrored), distrusted)
    review = _Review(inputs, context, decisions, distrusted)
    deletes = [
        action
        for (name, _), files in sorted(mirrored.items())
        for action in review.mirrored_version(name, files)
    ]
    quarantines = [a for a in deletes if a.quarantine]
    leaving = {(a.name, version_key(a.version)) for a in quarantines if _whole_version(a, mirrored)}
    uploads = [
        action
        for decision in sorted(decisions.admitted.values(), key=lambda d: d.requirement.name)
        if (action := _upload(decision, mirrored, actual, leaving, decisions)) is not None
    ]
    actions = (*quarantines, *uploads, *(a for a in deletes if not a.quarantine))
    blocked = tuple(decisions.blocked[line] for line in sorted(decisions.blocked))
    return Plan(
        created_at=inputs.created_at or inputs.now,
        evaluated_at=inputs.now,
        desired_digest=desired.digest,
        actual_digest=actual_digest(actual),
        actions=actions,
        blocked=blocked,
        warnings=(*_plan_warnings(inputs, context, decisions), *lock_warnings, *review.warnings),
        advisory_sources=inputs.advisory_sources,
        registry_generation=actual.generation,
        advisories=_named_advisories(inputs.advisories, actions, blocked),
        repairs=actual.repairs,
        coverage=decisions.coverage,
        download_bytes=download_size(uploads),
        held_bytes=_held_after(actual, actions),
        waiting=tuple(
            sorted(
                dict.fromkeys(w for d in decisions.admitted.values() for w in d.waiting),
                key=lambda w: (w.eligible_at, w.name),
            )
        ),
        sets=tuple(
            SetSummary(
                source.name,
                source.path,
                len(lines := desired.of_set(source.name)),
                bool(lines) and all(r.locked for r in lines),
            )
            for source in desired.config.sets
        ),
        retained=tuple(review.retained),
        desired_commit=desired.commit,
        min_age_days=desired.config.policy.min_age_days,
    )


def _checked_locks(
    listed: Iterable[Requirement], projects: Mapping[str, UpstreamProject | None]
) -> list[str]:
    """A lock naming a file whose sha256 upstream's differs from is refused outright: a
    tampered or stale lock, never something to mirror (PyPI never reuses a file name). The
    files a lock names that upstream does not serve at all are said (not mirrored)."""
    missing = []
    for requirement in listed:
        project = projects.get(requirement.name)
        if not requirement.locked_files or project is None or project.unreadable is not None:
            continue  # nothing locked; or blocked as not found, or unreadable
        upstream = {f.filename: f.sha256 for f in project.files}
        for filename, sha256 in requirement.locked_files:
            if filename not in upstream:
                missing.append(f"{requirement.source}: {requirement.text}: {filename}")
            elif upstream[filename] != sha256:
                raise UserError(
                    f"{requirement.text}: {filename} is locked with sha256 {sha256}, upstream "
                    f"serves {upstream[filename]}: a tampered or stale lock is refused",
                    path=requirement.source.path,
                    line=requirement.source.line or None,
                )
    if not missing:
        return []
    return [f"files a lock names that upstream does not serve (not mirrored): {'; '.join(missing)}"]


def _held_after(actual: ActualState, actions: Iterable[Action]) -> int | None:
    """The bytes the registry holds once the actions are done; None where it does not say
    the size of what it holds."""
    sizes: dict[tuple[str, str], int | None] = {(f.name, f.filename): f.size for f in actual.files}
    for action in actions:
        for planned in action.files:
            key = (action.name, planned.filename)
            if action.kind is ActionKind.DELETE:
                sizes.pop(key, None)
            else:
                sizes[key] = planned.size
    if any(size is None for size in sizes.values()):
        return None
    return sum(size or 0 for size in sizes.values())


# A listed line as blocked entries are keyed: (set, project, line of its file).
BlockedLine = tuple[str, str, int]


@dataclass(frozen=True)
class _Decisions:
    """What the policy decided for the desired state, before it meets the registry."""

    requirements: Mapping[str, tuple[Requirement, ...]]  # the applicable lines of every set
    admitted: Mapping[tuple[str, str], policy.Admitted]  # by (name, version_key)
    blocked: Mapping[BlockedLine, Blocked]  # naming its set, file and line
    targets: Mapping[tuple[str, str], tuple[str, ...]]  # which targets install each admitted
    coverage: tuple[Coverage, ...]
    required_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kept: frozenset[tuple[str, Version]] = frozenset()  # what a blocked requirement still needs
    warnings: tuple[str, ...] = ()
    sets: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # needing each

    @property
    def blocked_names(self) -> set[str]:
        """The projects some set's requirement on which is blocked."""
        return {name for _, name, _ in self.blocked}

    def pulled_by(self, name: str) -> tuple[str, ...]:
        """The listed projects whose dependencies bring `name` in, up the chain of releases
        that need it (`required_by`: `kombu 5.7.0`); none for a listed project."""
        if name in self.requirements:
            return ()
        roots: set[str] = set()
        seen, queue = {name}, [name]
        while queue:
            for release in self.required_by.get(queue.pop(), ()):
                parent = release.split(" ", 1)[0]
                if parent in self.requirements:
                    roots.add(parent)
                elif parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        return tuple(sorted(roots))

    def requirement_pinning(self, name: str, version: Version | None) -> Requirement | None:
        """The line on a project that pins this version, else its first line (if listed)."""
        lines = self.requirements.get(name, ())
        pinning = (r for r in lines if version is not None and r.pinned_version == version)
        return next(pinning, lines[0] if lines else None)


def _decide(
    inputs: PlanInputs,
    context: policy.PolicyContext,
    held: Mapping[str, list[Version]],
    distrusted: Mapping[tuple[str, Version], str],
) -> _Decisions:
    """The versions admitted for the requirements (and, with the closure, each dependency),
    and the targets each is for."""
    settings = inputs.desired.config.policy
    locked = [r for r in inputs.desired.requirements if r.locked]
    free = [r for r in inputs.desired.requirements if not r.locked]
    parts = [_decide_listed(inputs, locked, context, held, distrusted)] if locked else []
    if settings.dependencies is DependencyMode.CLOSURE and free:
        parts.append(_decide_closure(inputs, free, context, held, distrusted))
    elif free or not parts:
        parts.append(_decide_listed(inputs, free, context, held, distrusted))
    return _merged(parts)


def _decide_closure(
    inputs: PlanInputs,
    listed: Sequence[Requirement],
    context: policy.PolicyContext,
    held: Mapping[str, list[Version]],
    distrusted: Mapping[tuple[str, Version], str],
) -> _Decisions:
    """`dependencies: closure`: the lines and every dependency, resolved per set and target."""
    settings = inputs.desired.config.policy
    lines = {(r.set_name, r.name): r for r in listed}
    resolved = closure.resolve(
        listed,
        inputs.projects,
        inputs.metadata,
        inputs.unreadable,
        context,
        held,
        distrusted,
        settings.environments,
        inputs.build,
        inputs.exhausted,
        inputs.memo,
    )
    return _Decisions(
        _by_name(listed),
        _by_version(resolved.admitted.values()),
        _located((lines[key], why) for key, why in resolved.blocked.items()),
        {_key(k): tuple(map(str, t)) for k, t in resolved.targets.items()},
        resolved.coverage,
        resolved.required_by,
        resolved.kept,
        resolved.warnings,
        {_key(k): found for k, found in resolved.sets.items()},
    )


def _merged(parts: Sequence[_Decisions]) -> _Decisions:
    """Decisions of locked and resolved sets in one: a version both hold keeps the files
    each wants, for the targets and sets of both."""
    if len(parts) == 1:
        return parts[0]
    admitted: dict[tuple[str, str], policy.Admitted] = {}
    targets: dict[tuple[str, str], tuple[str, ...]] = {}
    sets: dict[tuple[str, str], tuple[str, ...]] = {}
    coverage: dict[str, Coverage] = {}
    for part in parts:
        for key, decision in part.admitted.items():
            admitted[key] = _joined(admitted.get(key), decision)
            targets[key] = tuple(dict.fromkeys((*targets.get(key, ()), *part.targets[key])))
            sets[key] = tuple(dict.fromkeys((*sets.get(key, ()), *part.sets.get(key, ()))))
        for covered in part.coverage:
            before = coverage.get(covered.target, Coverage(covered.target, 0))
            coverage[covered.target] = Coverage(
                covered.target,
                before.requirements + covered.requirements,
                tuple(sorted({*before.blocked, *covered.blocked})),
            )
    requirements: dict[str, tuple[Requirement, ...]] = {}
    for part in parts:
        for name, lines in part.requirements.items():
            requirements[name] = (*requirements.get(name, ()), *lines)
    return _Decisions(
        requirements,
        admitted,
        {line: why for part in parts for line, why in part.blocked.items()},
        targets,
        tuple(coverage.values()),
        {name: by for part in parts for name, by in part.required_by.items()},
        frozenset().union(*(part.kept for part in parts)),
        tuple(w for part in parts for w in part.warnings),
        sets,
    )


def _joined(kept: policy.Admitted | None, more: policy.Admitted) -> policy.Admitted:
    """One version admitted for several lines (two sets, two locks that name other files of
    it): the files of each."""
    if kept is None:
        return more
    files = {f.filename: f for f in (*kept.files, *more.files)}
    return replace(kept, files=tuple(files.values()))


def _by_name(listed: Iterable[Requirement]) -> dict[str, tuple[Requirement, ...]]:
    found: dict[str, list[Requirement]] = {}
    for requirement in listed:
        found.setdefault(requirement.name, []).append(requirement)
    return {name: tuple(lines) for name, lines in found.items()}


def _located(blocked: Iterable[tuple[Requirement, Blocked]]) -> dict[BlockedLine, Blocked]:
    """Blocked requirements by their line, naming its set, file and line (a lock may pin
    two versions of one project, each its own line)."""
    located: dict[BlockedLine, Blocked] = {}
    for line, why in blocked:
        key = (line.set_name, line.name, line.source.line)
        located.setdefault(key, replace(why, set_name=line.set_name, source=str(line.source)))
    return located


def _decide_listed(
    inputs: PlanInputs,
    listed: Sequence[Requirement],
    context: policy.PolicyContext,
    held: Mapping[str, list[Version]],
    distrusted: Mapping[tuple[str, Version], str],
) -> _Decisions:
    """Each line on its own, for every target it applies to (`dependencies: listed`, and the
    entries of a lock: a lock is never resolved again). Of a locked entry's files (its hashes
    chose them), `policy.files` keeps what the targets install, as the locking installer would
    pick; one that fails names the newest version the policy admits."""
    settings = inputs.desired.config.policy

    def decided(requirement: Requirement) -> policy.Admitted | Blocked:
        decision = policy.decide(
            requirement,
            inputs.projects.get(requirement.name),
            context,
            held=held.get(requirement.name, ()),
            distrusted={v: why for (n, v), why in distrusted.items() if n == requirement.name},
        )
        if isinstance(decision, Blocked) and requirement.locked:
            return _suggesting(decision, requirement, inputs, context)
        return decision

    decisions = [decided(requirement) for requirement in listed]
    chosen: dict[tuple[str, str], policy.Admitted] = {}
    served: dict[tuple[str, str], list[TargetEnvironment]] = {}
    sets: dict[tuple[str, str], list[str]] = {}
    for requirement, decision in zip(listed, decisions, strict=True):
        if isinstance(decision, policy.Admitted):
            key = _key((requirement.name, decision.version))
            chosen[key] = _joined(chosen.get(key), decision)
            serving = served.setdefault(key, [])
            serving.extend(
                t for t in settings.environments if requirement.applies_to([t]) and t not in serving
            )
            sets.setdefault(key, []).append(requirement.set_name)
    blocked = _located(
        (r, d) for r, d in zip(listed, decisions, strict=True) if isinstance(d, Blocked)
    )
    coverage = []
    for target in settings.environments:
        lines = [r for r in listed if r.applies_to([target])]
        stopped = {r.name for r in lines if (r.set_name, r.name, r.source.line) in blocked}
        coverage.append(Coverage(str(target), len(lines), tuple(sorted(stopped))))
    return _Decisions(
        _by_name(listed),
        {
            key: replace(
                d, files=closure.mirrored_files(d.files, served[key], settings.files.wheels)
            )
            for key, d in chosen.items()
        },
        blocked,
        {key: tuple(map(str, found)) for key, found in served.items()},
        tuple(coverage),
        sets={key: tuple(dict.fromkeys(found)) for key, found in sets.items()},
    )


def _suggesting(
    blocked: Blocked,
    requirement: Requirement,
    inputs: PlanInputs,
    context: policy.PolicyContext,
) -> Blocked:
    """A locked entry that fails, naming the newest version the policy admits instead."""
    instead = policy.decide(
        closure.dependency_requirement(requirement.name),
        inputs.projects.get(requirement.name),
        context,
    )
    if not isinstance(instead, policy.Admitted):
        return blocked
    suggestion = f"; the newest version the policy admits is {instead.version}"
    return replace(blocked, detail=blocked.detail + suggestion)


def _key(release: tuple[str, Version]) -> tuple[str, str]:
    """(name, version_key) of a release: one key however the version is spelled."""
    return release[0], version_key(str(release[1]))


def _by_version(admitted: Iterable[policy.Admitted]) -> dict[tuple[str, str], policy.Admitted]:
    return {_key((d.requirement.name, d.version)): d for d in admitted}


def _held_versions(
    mirrored: Mapping[tuple[str, str], Mapping[str, RegistryFile]],
) -> dict[str, list[Version]]:
    """Held versions as the registry spells them: that is how the services were asked."""
    held: dict[str, list[Version]] = {}
    for (name, _), files in mirrored.items():
        if (parsed := parse_version(_registry_spelling(files))) is not None:
            held.setdefault(name, []).append(parsed)
    return held


def _plan_warnings(
    inputs: PlanInputs, context: policy.PolicyContext, decisions: _Decisions
) -> list[str]:
    """What the plan says besides its actions: lapsed entries, lines for no target, limits."""
    warnings = policy.expired_entries(inputs.desired.config, context.grants_checked_at)
    warnings.extend(
        f"{r.source}: {r.text} applies to none of policy.environments (its marker: "
        f"{r.marker}); not mirrored"
        for r in inputs.desired.for_no_target
    )
    warnings.extend(decisions.warnings)
    if inputs.actual.recorded_packages:
        when = inputs.actual.recorded_at
        at = f" at {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""
        warnings.append(
            f"the files of {inputs.actual.recorded_packages} packages are as the last apply or "
            f"drift recorded them{at}, not listed again: a file changed by hand since is seen "
            "by the next apply or nightly drift"
        )
    if inputs.actual.unserved:
        warnings.append(
            f"the registry lists {', '.join(inputs.actual.unserved)} but does not serve it: not "
            "held; an apply that uploads the version replaces it, else remove it by hand"
        )
    if not inputs.actual.keeps_index_metadata:
        warnings.append(
            "this registry serves PEP 503 HTML only: upstream upload times and yank markers are "
            "not carried, so client-side cooldowns (uv --exclude-newer) cannot work against it"
        )
    return warnings


class _Review:
    """Each mirrored version against the decisions: quarantine it, tidy it, keep it, prune it."""

    def __init__(
        self,
        inputs: PlanInputs,
        context: policy.PolicyContext,
        decisions: _Decisions,
        distrusted: Mapping[tuple[str, Version], str],
    ) -> None:
        self.inputs = inputs
        self.context = context
        self.decisions = decisions
        self.distrusted = distrusted
        self.settings = inputs.desired.config.policy
        self.warnings: list[str] = []
        self.retained: list[Retained] = []

    def mirrored_version(self, name: str, files: Mapping[str, RegistryFile]) -> list[Action]:
        """The deletes one held version needs (a quarantine first of all), if any."""
        version = _registry_spelling(files)
        project = self.inputs.projects.get(name)
        if project is not None and project.unreadable is not None:
            self.warnings.append(
                f"{name} {version} could not be checked against upstream this time: its page "
                f"could not be read ({project.unreadable}); kept until it can"
            )
        if (name, version) in self.inputs.unchecked:
            self.warnings.append(
                f"{name} {version} could not be checked for advisories this time: "
                "a vulnerability service has no record of it; kept until one does"
            )
        quarantine = self._quarantine(name, version, files)
        if quarantine is not None:
            return [quarantine]
        decision = self.decisions.admitted.get((name, version_key(version)))
        if decision is not None:
            return self._tidy(name, version, files, decision)
        if name in self.decisions.blocked_names:
            self.warnings.append(
                f"keeping {name} {version} in the registry while "
                f"{self.decisions.requirements[name][0].text} is blocked"
            )
            return []
        parsed = parse_version(version)
        if (
            parsed is not None and (name, parsed) in self.decisions.kept
        ) or not self.settings.prune:
            return []  # kept: a dependency of a version held while its requirement is blocked
        return self._retire(name, version, files)

    def _retire(self, name: str, version: str, files: Mapping[str, RegistryFile]) -> list[Action]:
        """A held version nothing selects any more: kept `retain_days`, yanked (PEP 592) so
        that resolvers pass it by while exact pins and lockfiles still install it, then
        pruned. The date it goes is in its yank reason: the registry's own state says it,
        whichever machine plans next."""
        prune = self._prune(name, version, files)
        days = self.settings.retain_days
        if days and not self.inputs.actual.keeps_yanks:
            self._warn_once(
                "policy.retain_days: this registry keeps no yank markers (nor the date a "
                "version goes), so versions no longer desired are pruned at once"
            )
            return [prune]
        if days == 0:
            return [prune]
        if not self.inputs.actual.keeps_index_metadata:
            self._warn_once(
                "this registry serves no yank markers: a retained version stays installable "
                "by pins and lockfiles, and a range only it satisfies still takes it"
            )
        marked = _retained_until(files.values())
        if marked is not None and marked < self.inputs.now.date():
            return [replace(prune, reason=f"{prune.reason}; retained until {marked}")]
        # Never longer than retain_days from now: a shorter period, or a date edited into the
        # registry by hand, is brought back to the policy's.
        until = min(marked or date.max, (self.inputs.now + timedelta(days=days)).date())
        self.retained.append(Retained(name, version, until))
        if marked == until and all(f.yanked for f in files.values()):
            return []  # marked already (an apply cut short marks the rest next time)
        newer = [d.version for (n, _), d in self.decisions.admitted.items() if n == name]
        why = f"superseded by {max(newer)}" if newer else "no longer needed"
        marker = f"{why}; removed after {until:%Y-%m-%d}"
        planned = tuple(
            PlannedFile(
                f.filename,
                f.sha256,
                before_sha256=f.sha256,
                size=f.size,
                upload_time=f.upload_time,
                requires_python=f.requires_python,
                yanked=True,
                yanked_reason=marker,
            )
            for _, f in sorted(files.items())
        )
        reason = f"retained, yanked, until {until:%Y-%m-%d}: {prune.reason}"
        return [Action(ActionKind.UPLOAD, name, version, reason, planned, cause=Cause.RETAINED)]

    def _warn_once(self, text: str) -> None:
        """A warning about the registry as a whole: said once, however many versions."""
        if text not in self.warnings:
            self.warnings.append(text)

    def _quarantine(
        self, name: str, version: str, files: Mapping[str, RegistryFile]
    ) -> Action | None:
        """The whole version goes, for cause: advisory, takedown, yank or new bytes upstream."""
        parsed = parse_version(version)
        if parsed is None:
            return None
        found = policy.quarantine_cause(
            name,
            parsed,
            self.inputs.projects.get(name),
            self.decisions.requirement_pinning(name, parsed),
            self.context,
            version,
        )
        if found is not None:
            cause, reason, advisories = found
            ids = tuple(a.id for a in advisories)
            return _delete(name, version, cause, reason, files.values(), True, ids)
        if (name, parsed) in self.distrusted:
            why = self.distrusted[(name, parsed)]
            return _delete(name, version, Cause.UPSTREAM_CHANGED, why, files.values(), True)
        return None

    def _tidy(
        self,
        name: str,
        version: str,
        files: Mapping[str, RegistryFile],
        decision: policy.Admitted,
    ) -> list[Action]:
        """An admitted version keeps only the files upstream still serves, unyanked and admitted."""
        project = self.inputs.projects.get(name)
        upstream = {f.filename: f for f in project.files} if project else {}
        wanted = {f.filename for f in decision.files}
        vanished = [f for n, f in files.items() if n not in upstream]
        extra = [f for n, f in files.items() if n not in wanted and n in upstream]
        yanked = [f for f in extra if upstream[f.filename].yanked]
        unadmitted = [f for f in extra if f not in yanked]
        actions = []
        if vanished:
            why = "file vanished upstream"
            actions.append(_delete(name, version, Cause.VANISHED, why, vanished, True))
        if yanked:
            why = "file yanked upstream" + _yank_reasons(upstream[f.filename] for f in yanked)
            actions.append(_delete(name, version, Cause.YANKED, why, yanked, True))
        if unadmitted and self.settings.prune:
            why = "file no longer admitted by policy"
            actions.append(_delete(name, version, Cause.NOT_ADMITTED, why, unadmitted))
        return actions

    def _prune(self, name: str, version: str, files: Mapping[str, RegistryFile]) -> Action:
        """A held version nothing selects any more."""
        requirement = self.decisions.requirement_pinning(name, None)
        if requirement is not None:
            cause = Cause.SUPERSEDED
            reason = f"superseded: {requirement.text} selects another version"
        elif self.settings.dependencies is DependencyMode.CLOSURE:
            cause = Cause.NOT_DESIRED
            reason = "no longer needed: not a requirement nor a dependency of one"
        else:
            cause = Cause.NOT_DESIRED
            reason = "no longer desired: not in the requirements"
        return _delete(name, version, cause, reason, files.values())


# The end of a retained version's yank reason: `superseded by 2.32.5; removed after 2027-01-05`.
_RETAINED_UNTIL = re.compile(
    r"(?:superseded by \S+|no longer needed); removed after (\d{4}-\d{2}-\d{2})"
)


def _retained_until(files: Iterable[RegistryFile]) -> date | None:
    """The date a retained version goes, from the yank reason the mirror gave its files
    (those of them it marked)."""
    found = {
        match[1]
        for f in files
        if f.yanked and (match := _RETAINED_UNTIL.fullmatch(f.yanked_reason or "")) is not None
    }
    if len(found) != 1:
        return None
    try:
        return date.fromisoformat(found.pop())
    except ValueError:
        return None


def _yank_reasons(files: Iterable[UpstreamFile]) -> str:
    """`: <reason>` as upstream gave it (PEP 592), when it gave one."""
    reasons = sorted({f.yanked_reason for f in files if f.yanked_reason})
    return f": {'; '.join(reasons)}" if reasons else ""


def _registry_spelling(files: Mapping[str, RegistryFile]) -> str:
    """A mirrored version as the registry spells it (files of one `version_key` group)."""
    return next(iter(files.values())).version


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
    taken: dict[tuple[str, str], dict[str, str]] = {}
    for record in actual.quarantined:
        if record.cause is Cause.UPSTREAM_CHANGED:
            taken.setdefault((record.name, version_key(record.version)), {}).update(record.files)
    for (name, key), files in mirrored.items():
        for registry_file in files.values():
            # Only the recorded hash says what was taken; without one, a difference may as
            # well be a hand edit of the registry (repaired by re-uploading instead). What
            # the mirror placed last stands over an older record (a restore cut short).
            if registry_file.recorded_sha256:
                taken.setdefault((name, key), {})[registry_file.filename] = (
                    registry_file.recorded_sha256
                )
    changed: dict[tuple[str, Version], str] = {}
    for (name, spelling), hashes in taken.items():
        project, version = projects.get(name), parse_version(spelling)
        if project is None or version is None or context.exception_for(name, version):
            continue
        upstream: dict[str, set[str]] = {}
        for upstream_file in project.files:
            upstream.setdefault(upstream_file.filename, set()).add(upstream_file.sha256 or "")
        for filename, took in hashes.items():
            # A name listed twice counts as changed: which bytes a client gets is not known.
            if (now := upstream.get(filename, {took})) != {took}:
                changed[(name, version)] = (
                    f"upstream now serves other bytes for {filename} than were mirrored "
                    f"(sha256 {took[:12]}… then, "
                    f"{' and '.join(f'{sha[:12]}…' for sha in sorted(now))} now); after review, "
                    "an exception for this version admits the new bytes"
                )
    return changed


def _whole_version(action: Action, mirrored: Mapping[tuple[str, str], Mapping[str, Any]]) -> bool:
    """Whether a delete removes every file the registry holds of its version."""
    held = mirrored.get((action.name, version_key(action.version)), {})
    return {f.filename for f in action.files} >= set(held)


def _unlisted(held: RegistryFile) -> bool:
    """Bytes on disk that no page lists, or that the page records with another sha256 (a crash
    between placing a file and listing it)."""
    return not held.listed or held.recorded_sha256 != held.sha256


def _yank(file: UpstreamFile | RegistryFile) -> tuple[bool, str | None]:
    """A file's yank marker (PEP 592)."""
    return file.yanked, file.yanked_reason


def _page_facts(file: UpstreamFile | RegistryFile) -> tuple[object, ...]:
    """What a page says of a file that never changes upstream (PEP 700, data-requires-python):
    a difference is an edit of the registry's page."""
    return file.requires_python, file.upload_time, file.size


@dataclass(frozen=True)
class _FileChanges:
    """How the registry's files of an admitted version differ from the decision's."""

    missing: tuple[UpstreamFile, ...]
    differing: tuple[UpstreamFile, ...]  # held under the name, with other bytes
    restamped: tuple[UpstreamFile, ...]  # same bytes, other index metadata (or unlisted)

    @classmethod
    def of(
        cls, decision: policy.Admitted, present: Mapping[str, RegistryFile], actual: ActualState
    ) -> _FileChanges:
        """Compare the admitted files with those present."""
        same = [f for f in decision.files if f.filename in present]
        return cls(
            missing=tuple(f for f in decision.files if f.filename not in present),
            differing=tuple(f for f in same if present[f.filename].sha256 != f.sha256),
            restamped=tuple(
                f
                for f in same
                if present[f.filename].sha256 == f.sha256
                and (
                    _unlisted(present[f.filename])
                    or actual.keeps_yanks
                    and _yank(present[f.filename]) != _yank(f)
                    or actual.keeps_index_metadata
                    and _page_facts(present[f.filename]) != _page_facts(f)
                )
            ),
        )

    @property
    def files(self) -> list[UpstreamFile]:
        """Every file the upload touches, by name."""
        return sorted([*self.missing, *self.differing, *self.restamped], key=lambda f: f.filename)


def _upload(
    decision: policy.Admitted,
    mirrored: Mapping[tuple[str, str], dict[str, RegistryFile]],
    actual: ActualState,
    leaving: set[tuple[str, str]],
    decisions: _Decisions,
) -> Action | None:
    """The upload action for an admitted version, or None when the registry has it all.

    `leaving` names the versions this plan quarantines, so a replacement says what it replaces.
    """
    name, version = decision.requirement.name, str(decision.version)
    required_by = decisions.required_by
    present = mirrored.get((name, version_key(version)), {})
    changes = _FileChanges.of(decision, present, actual)
    touched = changes.files
    if not touched:
        return None
    if present:
        cause, reason = _repair_reason(changes, present)
    else:
        cause, reason = _arrival_reason(decision, mirrored, actual, leaving, required_by)
    if decision.notes:
        reason += "; " + "; ".join(decision.notes)
    files = tuple(
        _planned_upload(f, present[f.filename].sha256 if f.filename in present else None)
        for f in touched
    )
    return Action(
        ActionKind.UPLOAD,
        name,
        version,
        reason,
        files,
        cause=cause,
        required_by=required_by.get(name, ()),
        targets=decisions.targets.get((name, version_key(version)), ()),
        sets=decisions.sets.get((name, version_key(version)), ()),
        pulled_by=decisions.pulled_by(name),
    )


def _arrival_reason(
    decision: policy.Admitted,
    mirrored: Mapping[tuple[str, str], dict[str, RegistryFile]],
    actual: ActualState,
    leaving: set[tuple[str, str]],
    required_by: Mapping[str, tuple[str, ...]],
) -> tuple[Cause, str]:
    """Why a version the registry does not hold comes in: restored, replacing, new."""
    name, version = decision.requirement.name, str(decision.version)
    text = decision.requirement.text
    quarantined = actual.quarantine_record(name, version)
    if quarantined is not None:
        return Cause.RESTORED, (
            f"restored: quarantined {quarantined.at:%Y-%m-%d} ({quarantined.reason}); "
            "that no longer applies"
        )
    others = sorted(
        {_registry_spelling(files) for (n, _), files in mirrored.items() if n == name},
        key=version_sort_key,
    )
    replaced = [v for v in others if (name, version_key(v)) in leaving]
    if replaced:
        return Cause.REPLACEMENT, f"{text}: in place of quarantined {', '.join(replaced)}"
    if others:
        return Cause.NEW_VERSION, f"new version for {text} (registry has {', '.join(others)})"
    parents = ", ".join(required_by.get(name, ())) or "a requirement"
    if decision.requirement.source == closure.DEPENDENCY:
        return Cause.NEW_DEPENDENCY, f"new dependency of {parents}"
    if decision.requirement.source == closure.BUILD:  # PEP 518: pip fetches it to build
        return Cause.NEW_DEPENDENCY, f"new build requirement of {parents}"
    return Cause.NEW_REQUIREMENT, f"new requirement {text}"


def _repair_reason(changes: _FileChanges, present: Mapping[str, RegistryFile]) -> tuple[Cause, str]:
    """Why files of a version the registry holds are uploaded again or re-stamped."""
    hand_edited = [
        f.filename
        for f in changes.differing
        if present[f.filename].sha256 != present[f.filename].recorded_sha256
    ]
    if hand_edited:
        return Cause.CHANGED_IN_REGISTRY, (
            "file changed in the registry, restoring upstream's bytes: " + ", ".join(hand_edited)
        )
    if changes.differing:
        return Cause.UPSTREAM_CHANGED, (
            "upstream serves other bytes than were mirrored, replacing them: "
            + ", ".join(f.filename for f in changes.differing)
        )
    if changes.missing:
        return Cause.MISSING_FROM_REGISTRY, (
            "file missing from the registry: " + ", ".join(f.filename for f in changes.missing)
        )
    unlisted = [f.filename for f in changes.restamped if _unlisted(present[f.filename])]
    if unlisted:
        return Cause.CHANGED_IN_REGISTRY, (
            "file in the registry but on no page (an apply cut short), listing it: "
            + ", ".join(unlisted)
        )
    edited = [
        f.filename for f in changes.restamped if _page_facts(present[f.filename]) != _page_facts(f)
    ]
    if edited:
        return Cause.CHANGED_IN_REGISTRY, (
            "page changed in the registry (Requires-Python, upload time or size), restoring "
            "upstream's: " + ", ".join(edited)
        )
    markers = ", ".join(
        f"{f.filename} " + (f"yanked ({f.yanked_reason})" if f.yanked_reason else "yanked")
        if f.yanked
        else f"{f.filename} no longer yanked"
        for f in changes.restamped
    )
    return Cause.YANK_CHANGED, f"yank marker changed upstream: {markers}"


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
        reason,
        tuple(
            PlannedFile(f.filename, f.sha256, before_sha256=f.sha256)
            for f in sorted(files, key=lambda f: f.filename)
        ),
        quarantine=quarantine,
        advisories=advisories,
        cause=cause,
    )


def with_baseline(plan: Plan, base: Iterable[Action], ref: str) -> Plan:
    """`plan`, a merge request's, with the changes its target branch's plan (`base`, at commit
    `ref`) makes too, file for file, marked as not the merge's own (`Plan.baseline`): an upload
    of the same version with a wheel more (a target the merge adds) is the merge's."""
    made = {_content(a) for a in base}
    both = {a.id for a in plan.actions if _content(a) in made}
    return replace(plan, baseline=Baseline(ref, frozenset(both)))


def _content(action: Action) -> tuple[str, frozenset[tuple[str, str | None]]]:
    return action.id, frozenset((f.filename, f.sha256) for f in action.files)
