"""The use cases the commands run: plan, apply a saved plan, plan-and-apply, force-unlock."""

from __future__ import annotations

import getpass
import os
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from reconciler import applier, closure, gitrepo, planfile, planner, policy
from reconciler.cancel import Cancellation
from reconciler.clock import Clock
from reconciler.concurrency import crawl
from reconciler.desired import load_desired_state
from reconciler.errors import (
    MassDeleteError,
    OlderStateError,
    ReconcilerError,
    UpstreamError,
    UserError,
)
from reconciler.metadata import CoreMetadata
from reconciler.model import (
    ActionKind,
    ActualState,
    Advisory,
    AdvisorySource,
    DesiredState,
    Plan,
    UpstreamProject,
)
from reconciler.progress import ApplyProgress
from reconciler.registry import Registry
from reconciler.report.drift import DriftReport, Mode
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import PackageVersion, VulnerabilityService

# Tolerance between the clock that made a plan and the one judging it.
CLOCK_SKEW = timedelta(minutes=5)
# Fetch rounds of the dependency closure: about the depth of the dependency graph.
MAX_FETCH_ROUNDS = 50
# Levels of the dependency graph fetched ahead of the resolver in one round (a bound: a
# hostile index could name a new project at every level).
FETCH_AHEAD = 8
# Guessed pages a plan fetches ahead of the resolver, at most (what the resolver asks for is
# fetched whatever the guesses cost): a hostile index's fan-out stops here.
FETCH_AHEAD_PAGES = 2000


def make_plan(
    desired: DesiredState,
    actual: ActualState,
    upstream: UpstreamIndex,
    services: Sequence[VulnerabilityService],
    now: datetime,
    clock: Clock,
) -> Plan:
    """Fetch what the plan needs (pages concurrently, advisories batched) and plan.

    With the dependency closure the planner asks for more (pages of dependencies, their core
    metadata, the build requirements of sdists a target builds) while resolving: each round
    fetches the whole frontier it named, concurrently, and audits the new candidates in one
    batch per service.
    """
    created_at = clock()
    audit = _Audit(services, clock)
    projects: dict[str, UpstreamProject | None] = {}
    metadata: dict[str, CoreMetadata] = {}
    unreadable: set[str] = set()
    build: dict[str, tuple[str, ...] | str] = {}

    prejudged: policy.Prejudgements = {}  # each version judged once (policy.PolicyContext)
    foresight = planner.Foresight(desired, now, prejudged)
    spare = FETCH_AHEAD_PAGES  # guessed pages this plan may still fetch

    def fetch_ahead(names: set[str]) -> None:
        """These pages, and a few levels of what they lead to, ahead of the resolver: each
        page's likely pick's metadata is asked for as soon as the page is in, and the pages
        it names as soon as it is; then all that came in is audited in one batch. A guess
        that upstream cannot answer is dropped (the resolver asks again if it needs it); a
        page the resolver asked for that upstream cannot answer stops the plan."""
        nonlocal spare

        def visit(name: str) -> tuple[_Visit, set[str]]:
            try:
                project = upstream.project(name)
            except UpstreamError:
                if name in names:
                    raise
                return _Visit(fetched=False), set()
            chosen = foresight.metadata_file(name, project)
            try:
                found = upstream.metadata.read_or_none(chosen) if chosen else None
            except UpstreamError:
                found = None
            if chosen is None or chosen.sha256 is None or found is None:
                return _Visit(project), set()
            return _Visit(project, {chosen.sha256: found}), foresight.dependencies(found)

        crawled = crawl(
            names, visit, upstream.workers, FETCH_AHEAD, known=projects.keys(), spare=spare
        )
        spare -= len(crawled.keys() - names)
        fetched = {name: seen.project for name, seen in crawled.items() if seen.fetched}
        projects.update(fetched)
        for visited in crawled.values():
            metadata.update(visited.metadata)
        # Only the new projects' candidates are audited: the others were before.
        audit.query(planner.versions_to_audit(desired, fetched, actual, now, prejudged))

    fetch_ahead(planner.projects_to_fetch(desired, actual))
    memo = closure.Memo()
    for round_number in range(MAX_FETCH_ROUNDS + 1):
        exhausted = round_number == MAX_FETCH_ROUNDS
        inputs = planner.PlanInputs(
            desired=desired,
            projects=projects,
            advisories=audit.findings,
            actual=actual,
            now=now,
            advisory_sources=audit.sources(),
            created_at=created_at,
            unchecked=frozenset(audit.unchecked),
            audited=frozenset(audit.audited),
            metadata=metadata,
            unreadable=frozenset(unreadable),
            build=build,
            memo=memo,
            prejudged=prejudged,
            # Budget spent: what is still missing blocks the requirements that need it,
            # and everything else (quarantines first) is planned as usual.
            exhausted=exhausted,
        )
        try:
            return planner.plan(inputs)
        except closure.NeedData as need:
            read = upstream.core_metadata(need.files)
            metadata.update(read)
            unreadable |= {f.sha256 for f in need.files if f.sha256 and f.sha256 not in read}
            fetch_ahead(set(need.projects))
            build.update(upstream.build_requirements(need.sdists))
    raise UpstreamError(f"the dependency closure did not settle in {MAX_FETCH_ROUNDS} rounds")


@dataclass(frozen=True)
class _Visit:
    """What fetching ahead found of one project: its page (None: upstream has no such
    project), the core metadata of its likely pick, by sha256; `fetched` False when upstream
    could not answer for a guessed page."""

    project: UpstreamProject | None = None
    metadata: dict[str, CoreMetadata] = field(default_factory=dict)
    fetched: bool = True


def compared_with(
    plan: Plan, directory: Path, ref: str, plan_for: Callable[[DesiredState], Plan]
) -> Plan:
    """`plan` with what its target branch plans anyway marked (`Plan.baseline`): the desired
    state in `directory` as it is at commit `ref`, planned by `plan_for` (against the same
    registry, upstream and advisory services, at the same moment). A target without a desired
    state plans nothing; one whose desired state cannot be read or planned (invalid, or a
    project only it wants is unreachable) leaves this plan uncompared, with a warning: the
    merge request may be the fix."""
    with tempfile.TemporaryDirectory() as scratch:
        commit, exported = gitrepo.export(directory, ref, Path(scratch))
        if exported is None:
            return planner.with_baseline(plan, (), commit)
        try:
            base = plan_for(load_desired_state(exported))
        except ReconcilerError as error:
            said = str(error).replace(str(exported), f"{ref}:{directory.name}")
            warning = (
                f"--against {ref} ({commit[:12]}): the target's desired state could not be "
                f"planned ({said}); this plan is not compared with it"
            )
            return replace(plan, warnings=(*plan.warnings, warning))
    return planner.with_baseline(plan, base.actions, commit)


class _Audit:
    """Advisories gathered over the rounds of one plan; each version is asked about once."""

    def __init__(self, services: Sequence[VulnerabilityService], clock: Clock) -> None:
        self.services = services
        self.clock = clock
        self.findings: dict[PackageVersion, list[Advisory]] = {}
        self.unchecked: set[PackageVersion] = set()
        self.audited: set[PackageVersion] = set()
        self._sources: dict[str, AdvisorySource] = {}

    def query(self, pairs: Sequence[PackageVersion]) -> None:
        """Ask every service about the pairs not asked about yet."""
        new = [pair for pair in dict.fromkeys(pairs) if pair not in self.audited]
        if not new:
            return
        for service in self.services:
            answer = service.query(new)
            before = self._sources.get(service.name)
            self._sources[service.name] = AdvisorySource(
                service.name,
                self.clock(),
                len(new) + (before.queried if before else 0),
                database=answer.database or (before.database if before else None),
                unanswered=len(answer.unanswered) + (before.unanswered if before else 0),
            )
            self.unchecked |= answer.unanswered
            for package, advisories in answer.findings.items():
                merge_advisories(self.findings.setdefault(package, []), advisories)
        self.audited.update(new)

    def sources(self) -> tuple[AdvisorySource, ...]:
        """One line of provenance per service, in the configured order."""
        return tuple(self._sources[s.name] for s in self.services if s.name in self._sources)


def merge_advisories(known: list[Advisory], new: Sequence[Advisory]) -> None:
    """Unite findings: a CVE, its GHSA and its PYSEC count once, under every name any
    service gave them (so an ignore entry or a report matches whichever name it uses)."""
    for advisory in new:
        same = [k for k in known if advisory.names & k.names]
        for duplicate in same:
            known.remove(duplicate)
            advisory = duplicate.merged(advisory)
        known.append(advisory)


def check_deletion_limit(plan: Plan, max_deletions: int, allow_mass_delete: bool) -> None:
    """Refuse a plan that deletes more than `policy.max_deletions` unless explicitly allowed."""
    deletions = plan.count(ActionKind.DELETE)
    if deletions > max_deletions and not allow_mass_delete:
        raise MassDeleteError(
            f"the plan deletes {deletions} versions, more than policy.max_deletions "
            f"({max_deletions}); review it and pass --allow-mass-delete to go ahead",
            plan,
        )


@dataclass(frozen=True)
class History:
    """What an apply knows of the desired state's git history (an edge, passed in): whether
    one commit is an ancestor of another (None: cannot tell), and whether an older desired
    state may be applied all the same (`--allow-older-state`)."""

    is_ancestor: Callable[[str, str], bool | None] = field(default=lambda older, newer: None)
    allow_older: bool = False


def check_order(plan: Plan, actual: ActualState, history: History) -> None:
    """Refuse to put back an older desired state: an apply of a commit that is an ancestor of
    the one the registry's last apply carried out (GitLab's resource_group serialises jobs,
    but not in pipeline order), or, failing closed, of one this clone cannot place."""
    new, last = plan.desired_commit, actual.applied_commit
    if new is None or last is None or new == last or history.allow_older:
        return
    older = history.is_ancestor(new, last)
    if older is False:
        return
    why = (
        f"is older than {last}, which the registry's last apply carried out"
        if older
        else f"cannot be placed against {last}, which the registry's last apply carried out "
        "(not in this clone's history: fetch it, e.g. GIT_DEPTH: 0)"
    )
    raise OlderStateError(
        f"the desired state at {new} {why}; applying it could put back an older desired "
        "state (an older pipeline running late), so nothing was changed; pass "
        "--allow-older-state to apply it all the same"
    )


def apply_saved(
    plan: Plan,
    desired: DesiredState,
    registry: Registry,
    upstream: UpstreamIndex,
    services: Sequence[VulnerabilityService],
    progress: ApplyProgress,
    clock: Clock,
    cancel: Cancellation,
    history: History | None = None,
) -> applier.ApplyResult:
    """Apply a saved plan under the lock, after checking it: not stale, not older than the
    desired state the registry last carried out (`history`), and every action one
    the policy takes now, from the desired state, upstream's listing and today's advisories,
    judged at the plan's instant. What is carried out is the policy's own copy of each saved
    action (a plan file is an input like any other: it may be edited)."""
    check_not_future(plan.evaluated_at, clock())
    with registry.lock(lock_owner()):
        actual = registry.list_actual()
        planfile.check_fresh(plan, desired, actual)
        check_order(plan, actual, history or History())
        again = make_plan(desired, actual, upstream, services, plan.evaluated_at, clock)
        actions, done = planfile.authorised_actions(plan, again, actual)
        # What the registry needs repaired is found now (a killed apply may have left some).
        authorised = replace(plan, actions=actions, repairs=again.repairs)
        result = applier.apply(authorised, registry, upstream, actual, progress, clock, cancel)
    result.skipped += done
    return result


def plan_and_apply(
    desired: DesiredState,
    registry: Registry,
    upstream: UpstreamIndex,
    services: Sequence[VulnerabilityService],
    now: datetime,
    approve: Callable[[Plan], bool],
    progress: ApplyProgress,
    allow_mass_delete: bool,
    clock: Clock,
    cancel: Cancellation,
    only: ActionKind | None = None,
    history: History | None = None,
) -> tuple[Plan, applier.ApplyResult | None]:
    """Plan and apply in one go under the lock; `approve` sees the plan first.

    `only` keeps the actions of one kind (the `mirror-manager` commands); `history` refuses
    an older desired state than the registry last carried out.
    """
    check_not_future(now, clock())
    with registry.lock(lock_owner()):
        actual = registry.list_actual()
        plan = make_plan(desired, actual, upstream, services, now, clock)
        if only is not None:
            plan = plan.only(only)
        check_deletion_limit(plan, desired.config.policy.max_deletions, allow_mass_delete)
        if plan.has_changes:
            check_order(plan, actual, history or History())
        if not plan.has_changes or not approve(plan):
            return plan, None
        return plan, applier.apply(plan, registry, upstream, actual, progress, clock, cancel)


def drift(
    desired: DesiredState,
    registry: Registry,
    upstream: UpstreamIndex,
    services: Sequence[VulnerabilityService],
    now: datetime,
    progress: ApplyProgress,
    report_only: bool,
    allow_mass_delete: bool,
    announce: Callable[[Plan], None],
    clock: Clock,
    cancel: Cancellation,
    history: History | None = None,
) -> DriftReport:
    """The nightly job: plan against main's desired state and apply it whole, or only report.

    What main's desired state calls for is already approved, so every action is applied:
    quarantines, versions that matured, repairs of the registry. Too many deletions are
    refused (an upstream outage must not empty the mirror) and reported for a person.
    `announce` sees the plan before anything is applied (a CI log keeps what was done).
    """
    if report_only:
        plan = make_plan(desired, registry.list_actual(), upstream, services, now, clock)
        announce(plan)
        return DriftReport(plan, Mode.REPORT_ONLY)

    def approve(plan: Plan) -> bool:
        announce(plan)
        return True

    try:
        plan, result = plan_and_apply(
            desired,
            registry,
            upstream,
            services,
            now,
            approve=approve,
            progress=progress,
            allow_mass_delete=allow_mass_delete,
            clock=clock,
            cancel=cancel,
            history=history,
        )
    except MassDeleteError as error:
        announce(error.plan)
        return DriftReport(error.plan, Mode.REFUSED, refusal=str(error))
    if result is None:  # nothing to change: approval was never asked
        announce(plan)
    cancelled = result is not None and result.cancelled
    return DriftReport(plan, Mode.INTERRUPTED if cancelled else Mode.APPLIED, result)


def check_not_future(evaluated_at: datetime, wall_clock: datetime) -> None:
    """Refuse to write what was judged at a future instant: it would admit immature files.

    `--now` in the future is for previewing a plan, never for applying one.
    """
    if evaluated_at > wall_clock + CLOCK_SKEW:
        raise UserError(
            f"policy was evaluated at {evaluated_at:%Y-%m-%d %H:%M} UTC, in the future; "
            "a plan for a future --now can be shown but not applied",
            key="--now",
        )


def lock_owner() -> str:
    """Who is applying: user@host and pid, and the CI job URL when there is one."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    owner = f"{user}@{socket.gethostname()} (pid {os.getpid()})"
    job_url = os.environ.get("CI_JOB_URL")
    return f"{owner}, {job_url}" if job_url else owner
