"""The use cases the commands run: plan, apply a saved plan, plan-and-apply, force-unlock."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from reconciler import applier, planfile, planner
from reconciler.errors import MassDeleteError, UserError
from reconciler.model import (
    ActionKind,
    ActualState,
    Advisory,
    AdvisorySource,
    DesiredState,
    Plan,
)
from reconciler.progress import ApplyProgress
from reconciler.registry import Registry
from reconciler.report.drift import DriftReport, Mode
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import PackageVersion, VulnerabilityService

# Tolerance between the clock that made a plan and the one judging it.
CLOCK_SKEW = timedelta(minutes=5)


def make_plan(
    desired: DesiredState,
    actual: ActualState,
    upstream: UpstreamIndex,
    services: Sequence[VulnerabilityService],
    now: datetime,
) -> Plan:
    """Fetch what the plan needs (pages concurrently, advisories batched) and plan."""
    projects = upstream.projects(planner.projects_to_fetch(desired, actual))
    pairs = planner.versions_to_audit(desired, projects, actual, now)
    findings: dict[PackageVersion, list[Advisory]] = {}
    unchecked: set[PackageVersion] = set()
    sources = []
    for service in services:
        answer = service.query(pairs)
        sources.append(
            AdvisorySource(
                service.name,
                answer.answered_at,
                len(pairs),
                database=answer.database,
                unanswered=len(answer.unanswered),
            )
        )
        unchecked |= answer.unanswered
        for package, advisories in answer.findings.items():
            merge_advisories(findings.setdefault(package, []), advisories)
    return planner.plan(
        planner.PlanInputs(
            desired=desired,
            projects=projects,
            advisories=findings,
            actual=actual,
            now=now,
            advisory_sources=tuple(sources),
            created_at=datetime.now(timezone.utc),
            unchecked=frozenset(unchecked),
            audited=frozenset(pairs),
        )
    )


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


def apply_saved(
    plan: Plan,
    desired: DesiredState,
    registry: Registry,
    upstream: UpstreamIndex,
    progress: ApplyProgress,
) -> applier.ApplyResult:
    """Apply a saved plan under the lock, after checking it is not stale."""
    check_not_future(plan.evaluated_at, plan.created_at)
    with registry.lock(lock_owner()):
        actual = registry.list_actual()
        planfile.check_fresh(plan, desired.digest, actual)
        return applier.apply(plan, registry, upstream, actual, progress)


def plan_and_apply(
    desired: DesiredState,
    registry: Registry,
    upstream: UpstreamIndex,
    services: Sequence[VulnerabilityService],
    now: datetime,
    approve: Callable[[Plan], bool],
    progress: ApplyProgress,
    allow_mass_delete: bool,
    only: ActionKind | None = None,
) -> tuple[Plan, applier.ApplyResult | None]:
    """Plan and apply in one go under the lock; `approve` sees the plan first.

    `only` keeps the actions of one kind (the `mirror-manager` commands).
    """
    check_not_future(now, datetime.now(timezone.utc))
    with registry.lock(lock_owner()):
        actual = registry.list_actual()
        plan = make_plan(desired, actual, upstream, services, now)
        if only is not None:
            plan = plan.only(only)
        check_deletion_limit(plan, desired.config.policy.max_deletions, allow_mass_delete)
        if not plan.has_changes or not approve(plan):
            return plan, None
        return plan, applier.apply(plan, registry, upstream, actual, progress)


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
) -> DriftReport:
    """The nightly job: plan against main's desired state and apply it whole, or only report.

    What main's desired state calls for is already approved, so every action is applied:
    quarantines, versions that matured, repairs of the registry. Too many deletions are
    refused (an upstream outage must not empty the mirror) and reported for a person.
    `announce` sees the plan before anything is applied (a CI log keeps what was done).
    """
    if report_only:
        plan = make_plan(desired, registry.list_actual(), upstream, services, now)
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
        )
    except MassDeleteError as error:
        announce(error.plan)
        return DriftReport(error.plan, Mode.REFUSED, refusal=str(error))
    if result is None:  # nothing to change: approval was never asked
        announce(plan)
    return DriftReport(plan, Mode.APPLIED, result)


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
