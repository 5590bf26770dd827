"""Admission policy as pure functions of data: which version of a requirement, which files, why.

Nothing here does I/O; `now` is always passed in, so a decision can be reproduced with `--now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from packaging.version import Version

from reconciler.model import (
    Advisory,
    Blocked,
    Config,
    PolicyException,
    Requirement,
    UpstreamFile,
    UpstreamProject,
    YankedPolicy,
)

Advisories = Mapping[tuple[str, str], Sequence[Advisory]]

# OSV ids of malicious-package reports: no ignore entry or exception can admit those.
MALICIOUS_PREFIX = "MAL-"
# PEP 792: a project marked `quarantined` by the index must not be installed.
QUARANTINED_STATUS = "quarantined"


@dataclass(frozen=True)
class PolicyContext:
    """Everything a decision depends on besides the requirement and upstream data."""

    config: Config
    now: datetime

    @property
    def min_age(self) -> timedelta:
        """The maturity period."""
        return timedelta(days=self.config.policy.min_age_days)

    def exception_for(self, name: str, version: Version) -> PolicyException | None:
        """The active exception admitting this version, if any."""
        return next(
            (
                exception
                for exception in self.config.exceptions
                if exception.package == name
                and exception.version == version
                and exception.active(self.now)
            ),
            None,
        )

    def blocking(self, advisories: Sequence[Advisory], excepted: bool) -> tuple[Advisory, ...]:
        """The advisories that block: not ignored (unless malicious) and not excepted."""
        return tuple(
            advisory
            for advisory in advisories
            if advisory.id.startswith(MALICIOUS_PREFIX)
            or (not excepted and not self._ignored(advisory))
        )

    def _ignored(self, advisory: Advisory) -> bool:
        return any(
            advisory.matches(entry.id)
            and (entry.expires is None or self.now.date() <= entry.expires)
            for entry in self.config.policy.ignore
        )


@dataclass(frozen=True)
class Verdict:
    """The judgement of one version for one requirement."""

    version: Version
    files: tuple[UpstreamFile, ...] = ()
    problem: str | None = None
    detail: str = ""
    eligible_at: datetime | None = None
    notes: tuple[str, ...] = ()
    advisories: tuple[Advisory, ...] = ()


@dataclass(frozen=True)
class Admitted:
    """A requirement served by one version and the files of it to mirror."""

    requirement: Requirement
    version: Version
    files: tuple[UpstreamFile, ...]
    notes: tuple[str, ...] = field(default=())


def judge_version(
    requirement: Requirement,
    version: Version,
    release: Sequence[UpstreamFile],
    context: PolicyContext,
    advisories: Sequence[Advisory] | None,
) -> Verdict:
    """Judge one version; `advisories=None` judges everything except advisories."""
    policy = context.config.policy
    files = [f for f in release if policy.files.keeps(f.filename)]
    if not files:
        return Verdict(version, problem="no-files", detail="no file matches policy.files")
    files = [f for f in files if f.sha256]
    if not files:
        return Verdict(
            version, problem="no-hash", detail="upstream gives no sha256 to verify its files"
        )
    if requirement.hashes:
        files = [f for f in files if f.sha256 in requirement.hashes]
        if not files:
            return Verdict(
                version,
                problem="hash-mismatch",
                detail="no upstream file matches the --hash pins",
            )

    exception = context.exception_for(requirement.name, version)
    notes: list[str] = []
    if exception is not None:
        notes.append(f"admitted by exception: {exception.reason}")
    keep_yanked = exception is not None or (
        policy.yanked is YankedPolicy.ALLOW_PINNED and requirement.pinned_version == version
    )
    if not keep_yanked:
        unyanked = [f for f in files if not f.yanked]
        if not unyanked:
            why = next((f.yanked_reason for f in files if f.yanked_reason), None)
            return Verdict(
                version, problem="yanked", detail="yanked upstream" + (f": {why}" if why else "")
            )
        files = unyanked
    elif any(f.yanked for f in files) and exception is None:
        notes.append("yanked upstream, kept for the pin (policy.yanked: allow-pinned)")

    if exception is None:
        mature = [f for f in files if _mature(f, context)]
        if not mature:
            return _immature(version, files, context)
        if len(mature) < len(files):
            waiting = [f for f in files if f not in mature]
            notes.append(
                f"{len(waiting)} newer file(s) wait to mature: "
                + ", ".join(sorted(f.filename for f in waiting))
            )
        files = mature

    if advisories is not None:
        blocking = context.blocking(advisories, excepted=exception is not None)
        if blocking:
            return Verdict(
                version,
                problem="vulnerable",
                detail="has " + ", ".join(_describe(a) for a in blocking),
                advisories=blocking,
            )
    return Verdict(version, files=tuple(files), notes=tuple(notes))


def candidates(requirement: Requirement, project: UpstreamProject) -> list[Version]:
    """Versions matching the specifier, newest first (pre-releases as pip treats them)."""
    releases = project.releases()
    return sorted(requirement.specifier.filter(releases), reverse=True)


def versions_to_audit(
    requirement: Requirement, project: UpstreamProject | None, context: PolicyContext
) -> list[Version]:
    """Candidate versions that pass every rule but advisories: what must be checked."""
    if project is None:
        return []
    releases = project.releases()
    return [
        version
        for version in candidates(requirement, project)
        if judge_version(requirement, version, releases[version], context, None).problem is None
    ]


def decide(
    requirement: Requirement,
    project: UpstreamProject | None,
    context: PolicyContext,
    advisories: Advisories,
) -> Admitted | Blocked:
    """The newest version that passes policy, or why none does."""
    if project is None:
        return _blocked(requirement, "not-found", "project not found on the upstream index")
    if project.status == QUARANTINED_STATUS:
        return _blocked(requirement, "quarantined", "project is quarantined upstream (PEP 792)")
    versions = candidates(requirement, project)
    if not versions:
        return _blocked(
            requirement,
            "no-matching-version",
            f"no upstream version matches {requirement.specifier or 'any version'}",
        )
    releases = project.releases()
    rejected: list[Verdict] = []
    for version in versions:
        verdict = judge_version(
            requirement,
            version,
            releases[version],
            context,
            advisories.get((requirement.name, str(version)), ()),
        )
        if verdict.problem is None:
            skipped = [f"{v.version}: {v.detail}" for v in rejected[:3]]
            return Admitted(requirement, version, verdict.files, (*verdict.notes, *skipped))
        rejected.append(verdict)
    waiting = [v.eligible_at for v in rejected if v.problem == "immature" and v.eligible_at]
    return Blocked(
        name=requirement.name,
        requirement=requirement.text,
        reason=rejected[0].problem or "blocked",
        detail="; ".join(f"{v.version}: {v.detail}" for v in rejected[:5]),
        eligible_at=min(waiting) if waiting else None,
    )


def quarantine_cause(
    name: str,
    version: Version,
    project: UpstreamProject | None,
    requirement: Requirement | None,
    context: PolicyContext,
    advisories: Sequence[Advisory],
) -> tuple[str, tuple[Advisory, ...]] | None:
    """Why a mirrored version must be removed now, or None when it may stay."""
    if project is None:
        return "vanished upstream: the project is gone from the index", ()
    if project.status == QUARANTINED_STATUS:
        return "project is quarantined upstream (PEP 792)", ()
    release = project.releases().get(version)
    if not release:
        return "vanished upstream: the version is gone from the index", ()
    exception = context.exception_for(name, version)
    allow_yanked = exception is not None or (
        context.config.policy.yanked is YankedPolicy.ALLOW_PINNED
        and requirement is not None
        and requirement.pinned_version == version
    )
    if not allow_yanked and all(f.yanked for f in release):
        return "yanked upstream", ()
    blocking = context.blocking(advisories, excepted=exception is not None)
    if blocking:
        return "has " + ", ".join(_describe(a) for a in blocking), blocking
    return None


def expired_entries(config: Config, now: datetime) -> list[str]:
    """Warnings for exceptions and ignore entries whose expiry has passed."""
    warnings = [
        f"exception for {e.package} {e.version} expired on {e.expires}; it no longer applies"
        for e in config.exceptions
        if not e.active(now)
    ]
    warnings.extend(
        f"ignore entry {entry.id} expired on {entry.expires}; it no longer applies"
        for entry in config.policy.ignore
        if entry.expires is not None and now.date() > entry.expires
    )
    return warnings


def _mature(upstream_file: UpstreamFile, context: PolicyContext) -> bool:
    """Fail closed: a file without an upload time is never mature."""
    return (
        upstream_file.upload_time is not None
        and upstream_file.upload_time + context.min_age <= context.now
    )


def _immature(version: Version, files: Sequence[UpstreamFile], context: PolicyContext) -> Verdict:
    timed = [f.upload_time for f in files if f.upload_time is not None]
    if not timed:
        return Verdict(
            version,
            problem="no-upload-time",
            detail="upstream gives no upload time, so its age is unknown (fail closed)",
        )
    newest_eligible = min(timed) + context.min_age
    age_days = (context.now - min(timed)).days
    return Verdict(
        version,
        problem="immature",
        detail=f"{age_days} days old, eligible {newest_eligible:%Y-%m-%d %H:%M} UTC "
        f"(policy.min_age_days: {context.config.policy.min_age_days})",
        eligible_at=newest_eligible,
    )


def _describe(advisory: Advisory) -> str:
    fixed = f" (fixed in {', '.join(advisory.fixed_in)})" if advisory.fixed_in else ""
    return f"{advisory.id}{fixed}"


def _blocked(requirement: Requirement, reason: str, detail: str) -> Blocked:
    return Blocked(
        name=requirement.name, requirement=requirement.text, reason=reason, detail=detail
    )
