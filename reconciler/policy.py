"""Admission policy as pure functions of data: which version of a requirement, which files, why.

Nothing here does I/O; `now` is always passed in, so a decision can be reproduced with `--now`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property

from packaging.version import Version

from reconciler.model import (
    MAX_FILE_SIZE,
    Advisory,
    Blocked,
    Cause,
    Config,
    IgnoredAdvisory,
    PolicyException,
    Problem,
    Requirement,
    UpstreamFile,
    UpstreamProject,
    Waiting,
    WheelTagGroups,
    YankedPolicy,
    parse_version,
    wheel_tag_groups,
)

Advisories = Mapping[tuple[str, str], Sequence[Advisory]]
PackageKey = tuple[str, str]
"""(canonical name, version as queried): the key of advisory findings."""

# Clocks differ a little; an upload time further ahead than this is not believed.
FUTURE_TOLERANCE = timedelta(days=1)

# PEP 792: a project marked `quarantined` by the index must not be installed.
QUARANTINED_STATUS = "quarantined"


@dataclass(frozen=True)
class PolicyContext:
    """Everything a decision depends on besides the requirement and upstream data.

    `advisories` holds what the services found; a key in `unchecked` is a version some service
    had no record of, and with `audited` given, a key outside it is one nobody was asked about:
    either is never admitted, and never quarantined for lack of findings (fail closed).
    """

    config: Config
    now: datetime
    advisories: Advisories = field(default_factory=dict)
    unchecked: frozenset[PackageKey] = frozenset()
    audited: frozenset[PackageKey] | None = None  # what was asked; None: plain-data callers
    wall_clock: datetime | None = None  # when the plan is made; `now` may be a past `--now`
    # What `judge_version` found by the rules that depend on neither the maturity period nor
    # advisories, shared by the contexts of one plan (same config): the audit's choice of
    # versions and the resolver's judgements then apply them once per version. None: nothing
    # kept.
    prejudged: Prejudgements | None = field(default=None, compare=False)

    @property
    def grants_checked_at(self) -> datetime:
        """The instant exceptions and ignore entries must still be in force at: the later of
        `now` and the wall clock, so that a past `--now` (or an edited plan's instant) never
        revives one that has lapsed."""
        return max(self.now, self.wall_clock or self.now).astimezone(timezone.utc)

    @property
    def min_age(self) -> timedelta:
        """The maturity period."""
        return timedelta(days=self.config.policy.min_age_days)

    @property
    def fix_min_age(self) -> timedelta:
        """The maturity period of a version that fixes an advisory on what the registry holds."""
        return timedelta(days=self.config.policy.fix_age_days)

    def advisories_of(self, name: str, version: Version | str) -> tuple[Advisory, ...]:
        """What the services found for a version (see `is_unchecked` for what they could not)."""
        return tuple(self.advisories.get((name, str(version)), ()))

    def is_unchecked(self, name: str, version: Version | str) -> bool:
        """Whether some service had no record of this version, or none was asked about it:
        silence is not a clean bill."""
        key = (name, str(version))
        return key in self.unchecked or (self.audited is not None and key not in self.audited)

    def exception_for(self, name: str, version: Version) -> PolicyException | None:
        """The active exception admitting this version, if any."""
        return next(
            (
                exception
                for exception in self.config.exceptions
                if exception.package == name
                and exception.version == version
                and exception.active(self.grants_checked_at)
            ),
            None,
        )

    def blocking(self, advisories: Sequence[Advisory], excepted: bool) -> tuple[Advisory, ...]:
        """The advisories that block: not ignored (unless malicious) and not excepted."""
        return tuple(
            advisory
            for advisory in advisories
            if advisory.malicious or (not excepted and self.ignore_entry(advisory) is None)
        )

    def ignore_entry(self, advisory: Advisory) -> IgnoredAdvisory | None:
        """The unexpired ignore entry naming this advisory (by id or alias), if any."""
        return next(
            (
                entry
                for entry in self.config.policy.ignore
                if advisory.matches(entry.id)
                and (entry.expires is None or self.grants_checked_at.date() <= entry.expires)
            ),
            None,
        )

    def describe(self, advisory: Advisory) -> str:
        """`GHSA-… (fixed in 2.0.1)`, saying so when an ignore entry for it has expired."""
        text = advisory.id
        if advisory.fixed_in:
            text += f" (fixed in {', '.join(advisory.fixed_in)})"
        lapsed = self.grants_checked_at.date()
        expired = [
            entry
            for entry in self.config.policy.ignore
            if advisory.matches(entry.id) and entry.expires and lapsed > entry.expires
        ]
        if expired:
            text += f" [ignore entry expired {expired[0].expires}]"
        if advisory.malicious:
            text += " [malicious package: no ignore entry or exception applies]"
        return text

    def ignored_notes(self, advisories: Sequence[Advisory], excepted: bool) -> list[str]:
        """Say which advisories a version is admitted despite: ignoring is never silent."""
        notes = []
        for advisory in advisories:
            if advisory.malicious:
                continue
            entry = self.ignore_entry(advisory)
            if entry is not None:
                until = f" until {entry.expires}" if entry.expires else ""
                notes.append(f"{advisory.id} ignored{until}: {entry.reason}")
            elif excepted:
                notes.append(f"{advisory.id} admitted by exception")
        return notes


@dataclass(frozen=True)
class Verdict:
    """The judgement of one version for one requirement."""

    version: Version
    files: tuple[UpstreamFile, ...] = ()
    problem: Problem | None = None
    detail: str = ""
    eligible_at: datetime | None = None
    notes: tuple[str, ...] = ()
    advisories: tuple[Advisory, ...] = ()
    rule: str | None = None  # the setting that refused it (`policy.min_age_days: 14`), if one

    @cached_property
    def wheel_tag_groups(self) -> WheelTagGroups:
        """Its wheels' tags united per Requires-Python: every target asks which it installs."""
        return wheel_tag_groups(self.files)


# What the files and yank rules found of a version: its refusal, or (files, notes).
_Prejudged = Verdict | tuple[tuple[UpstreamFile, ...], tuple[str, ...]]
_PrejudgeKey = tuple[Requirement, Version, PolicyException | None]
# Kept for one plan (`PolicyContext.prejudged`).
Prejudgements = dict[_PrejudgeKey, _Prejudged]


@dataclass(frozen=True)
class Admitted:
    """A requirement served by one version and the files of it to mirror."""

    requirement: Requirement
    version: Version
    files: tuple[UpstreamFile, ...]
    notes: tuple[str, ...] = field(default=())
    waiting: tuple[Waiting, ...] = ()  # newer versions the requirement would take once mature


def judge_version(
    requirement: Requirement,
    version: Version,
    release: Sequence[UpstreamFile],
    context: PolicyContext,
    check_advisories: bool = True,
    min_age: timedelta | None = None,
) -> Verdict:
    """Judge one version against every rule (`check_advisories=False`: all but advisories).

    The rules run in order, each narrowing the files the next one sees: which files the policy
    mirrors, yanks, maturity, then advisories. `min_age` overrides the maturity period (the
    security-fix lane).
    """
    exception = context.exception_for(requirement.name, version)
    key = (requirement, version, exception)
    kept = context.prejudged.get(key) if context.prejudged is not None else None
    if kept is None:
        kept = _prejudge(requirement, version, release, context, exception)
        if context.prejudged is not None:
            context.prejudged[key] = kept
    if isinstance(kept, Verdict):
        return kept
    files, notes = list(kept[0]), list(kept[1])
    if exception is None:
        mature = _mature_files(version, files, context, min_age, notes)
        if isinstance(mature, Verdict):
            return mature
        files = mature
    if check_advisories:
        refused = _advisory_verdict(requirement.name, version, context, exception, notes)
        if refused is not None:
            return refused
    return Verdict(version, files=tuple(files), notes=tuple(notes))


def _prejudge(
    requirement: Requirement,
    version: Version,
    release: Sequence[UpstreamFile],
    context: PolicyContext,
    exception: PolicyException | None,
) -> _Prejudged:
    """The rules that do not depend on the maturity period or advisories: which files the
    policy mirrors, and yanks. The refusal, or the files that pass and the notes."""
    notes: list[str] = []
    files = _verifiable_files(requirement, version, release, context)
    if isinstance(files, Verdict):
        return files
    if exception is not None:
        notes.append(f"admitted by exception: {exception.reason}")
    files = _unyanked_files(requirement, version, files, context, exception, notes)
    if isinstance(files, Verdict):
        return files
    return tuple(files), tuple(notes)


def _verifiable_files(
    requirement: Requirement,
    version: Version,
    release: Sequence[UpstreamFile],
    context: PolicyContext,
) -> list[UpstreamFile] | Verdict:
    """The files `policy.files` keeps that have a sha256 to verify (and match `--hash` pins)
    and a size the mirror takes.

    A release listing one file name twice is refused whole: PyPI never does that, and which of
    the two a client would get is anyone's guess.
    """
    counted = Counter(f.filename for f in release)
    if twice := sorted(name for name, count in counted.items() if count > 1):
        detail = f"upstream lists {', '.join(twice)} more than once"
        return Verdict(version, problem=Problem.AMBIGUOUS_FILE, detail=detail)
    files = [f for f in release if context.config.policy.files.keeps(f.filename)]
    if not files:
        return Verdict(version, problem=Problem.NO_FILES, detail="no file matches policy.files")
    files = [f for f in files if f.sha256]
    if not files:
        detail = "upstream gives no sha256 to verify its files"
        return Verdict(version, problem=Problem.NO_HASH, detail=detail)
    files = [f for f in files if (f.size or 0) <= MAX_FILE_SIZE]
    if not files:
        detail = f"upstream says its files are larger than {MAX_FILE_SIZE >> 30} GiB"
        return Verdict(version, problem=Problem.TOO_LARGE, detail=detail)
    if requirement.hashes:
        files = [f for f in files if f.sha256 in requirement.hashes]
        if not files:
            detail = "no upstream file matches the --hash pins"
            return Verdict(version, problem=Problem.HASH_MISMATCH, detail=detail)
    return files


def _unyanked_files(
    requirement: Requirement,
    version: Version,
    files: list[UpstreamFile],
    context: PolicyContext,
    exception: PolicyException | None,
    notes: list[str],
) -> list[UpstreamFile] | Verdict:
    """PEP 592: yanked files are left out, unless an exception or `allow-pinned` keeps them."""
    if exception is not None:
        return files
    pinned = requirement.pinned_version == version
    if context.config.policy.yanked is YankedPolicy.ALLOW_PINNED and pinned:
        if any(f.yanked for f in files):
            notes.append("yanked upstream, kept for the pin (policy.yanked: allow-pinned)")
        return files
    unyanked = [f for f in files if not f.yanked]
    if not unyanked:
        why = next((f.yanked_reason for f in files if f.yanked_reason), None)
        detail = "yanked upstream" + (f": {why}" if why else "")
        return Verdict(version, problem=Problem.YANKED, detail=detail)
    return unyanked


def _mature_files(
    version: Version,
    files: list[UpstreamFile],
    context: PolicyContext,
    min_age: timedelta | None,
    notes: list[str],
) -> list[UpstreamFile] | Verdict:
    """The files public for the maturity period; none: when the first one becomes eligible."""
    age = context.min_age if min_age is None else min_age
    mature = [f for f in files if _mature(f, age, context.now)]
    if not mature:
        return _immature(version, files, age, context)
    waiting = sorted(f.filename for f in files if not _mature(f, age, context.now))
    if waiting:
        notes.append(f"{len(waiting)} newer file(s) wait to mature: " + ", ".join(waiting))
    return mature


def _advisory_verdict(
    name: str,
    version: Version,
    context: PolicyContext,
    exception: PolicyException | None,
    notes: list[str],
) -> Verdict | None:
    """The refusal for known advisories or a version no service could check, else None."""
    found = context.advisories_of(name, version)
    blocking = context.blocking(found, excepted=exception is not None)
    if blocking:
        malicious = any(a.malicious for a in blocking)
        return Verdict(
            version,
            problem=Problem.MALICIOUS if malicious else Problem.VULNERABLE,
            detail="has " + ", ".join(context.describe(a) for a in blocking),
            advisories=blocking,
        )
    if context.is_unchecked(name, version):
        return Verdict(
            version,
            problem=Problem.UNCHECKED,
            detail="a vulnerability service has no record of this version, so it cannot "
            "be checked (fail closed)",
        )
    notes.extend(context.ignored_notes(found, excepted=exception is not None))
    return None


def reasons(verdicts: Sequence[Verdict]) -> str:
    """`1.2: 3 days old, eligible …; 1.1: 5 days old, eligible … (policy.min_age_days: 14)`:
    why each version was refused, the rules they share named once, at the end."""
    said = "; ".join(f"{v.version}: {v.detail}" for v in verdicts)
    rules = list(dict.fromkeys(v.rule for v in verdicts if v.rule))
    return f"{said} ({'; '.join(rules)})" if rules else said


def candidates(requirement: Requirement, project: UpstreamProject) -> list[Version]:
    """Versions matching the specifier, newest first (pre-releases as pip treats them)."""
    releases = project.releases()
    return sorted(requirement.specifier.filter(releases), reverse=True)


def versions_to_audit(
    requirement: Requirement, project: UpstreamProject | None, context: PolicyContext
) -> list[Version]:
    """Candidate versions that pass every rule but advisories: what must be checked.

    Judged at the shorter of the two maturity periods, so that a version the security-fix
    lane could admit has been checked too.
    """
    if project is None:
        return []
    releases = project.releases()
    age = min(context.min_age, context.fix_min_age)
    return [
        version
        for version in candidates(requirement, project)
        if judge_version(
            requirement, version, releases[version], context, check_advisories=False, min_age=age
        ).problem
        is None
    ]


def judge_candidates(
    requirement: Requirement,
    project: UpstreamProject | None,
    context: PolicyContext,
    held: Collection[Version] = (),
    distrusted: Mapping[Version, str] | None = None,
) -> list[Verdict] | Blocked:
    """Every candidate version judged, newest first; or why there are none to judge.

    A passing verdict carries its files and notes (the security-fix lane's included).
    `held`: the versions of this project the registry holds (for the security-fix lane).
    `distrusted`: versions refused for what the registry saw, with why.
    """
    if project is None:
        return _blocked(requirement, Problem.NOT_FOUND, "project not found on the upstream index")
    if project.unreadable is not None:
        detail = f"its upstream page could not be read: {project.unreadable}"
        return _blocked(requirement, Problem.UPSTREAM_UNREADABLE, detail)
    if project.status == QUARANTINED_STATUS:
        return _blocked(
            requirement, Problem.UPSTREAM_QUARANTINED, "project is quarantined upstream (PEP 792)"
        )
    versions = candidates(requirement, project)
    if not versions:
        return _blocked(
            requirement,
            Problem.NO_MATCHING_VERSION,
            f"no upstream version matches {requirement.specifier or 'any version'}",
        )
    releases = project.releases()
    distrusted = distrusted or {}
    lane = _fix_lane(requirement, versions, releases, held, context, distrusted)
    verdicts: list[Verdict] = []
    for version in versions:
        if version in distrusted:
            verdicts.append(
                Verdict(version, problem=Problem.UPSTREAM_CHANGED, detail=distrusted[version])
            )
            continue
        fixes = lane.get(version, [])
        verdict = judge_version(
            requirement,
            version,
            releases[version],
            context,
            min_age=context.fix_min_age if fixes else None,
        )
        if verdict.problem is None and fixes:
            verdict = replace(verdict, notes=(*verdict.notes, _fix_lane_note(fixes, context)))
        verdicts.append(verdict)
    return verdicts


def admit(requirement: Requirement, chosen: Verdict, verdicts: Sequence[Verdict]) -> Admitted:
    """Admit a passing version, noting why the newer ones were not chosen (`verdicts`: the
    versions the requirement would otherwise take), but for those that only wait to mature:
    those are its `waiting`, which the reports list in one place."""
    skipped = [v for v in verdicts if v.version > chosen.version and v.problem is not None]
    waiting = tuple(
        Waiting(requirement.name, str(v.version), v.eligible_at)
        for v in sorted(skipped, key=lambda v: v.version)
        if v.problem is Problem.IMMATURE and v.eligible_at is not None
    )
    waits = {w.version for w in waiting}
    refused = [v for v in skipped if str(v.version) not in waits]
    notes = (*chosen.notes, *([reasons(refused[:3])] if refused else []))
    return Admitted(requirement, chosen.version, chosen.files, notes, waiting)


def blocked_by(requirement: Requirement, rejected: Sequence[Verdict]) -> Blocked:
    """Why no candidate passes: the first few reasons, and when the soonest matures."""
    waiting = [v.eligible_at for v in rejected if v.problem is Problem.IMMATURE and v.eligible_at]
    return Blocked(
        name=requirement.name,
        requirement=requirement.text,
        reason=next((v.problem for v in rejected if v.problem), Problem.NO_MATCHING_VERSION),
        detail=reasons(rejected[:5]),
        eligible_at=min(waiting) if waiting else None,
        advisories=tuple(dict.fromkeys(a.id for v in rejected[:5] for a in v.advisories)),
    )


def decide(
    requirement: Requirement,
    project: UpstreamProject | None,
    context: PolicyContext,
    held: Collection[Version] = (),
    distrusted: Mapping[Version, str] | None = None,
) -> Admitted | Blocked:
    """The newest version that passes policy, or why none does."""
    verdicts = judge_candidates(requirement, project, context, held, distrusted)
    if isinstance(verdicts, Blocked):
        return verdicts
    chosen = next((v for v in verdicts if v.problem is None), None)
    if chosen is None:
        return blocked_by(requirement, verdicts)
    return admit(requirement, chosen, verdicts)


def quarantine_cause(
    name: str,
    version: Version,
    project: UpstreamProject | None,
    requirement: Requirement | None,
    context: PolicyContext,
    queried_as: str,
) -> tuple[Cause, str, tuple[Advisory, ...]] | None:
    """Why a mirrored version must be removed now, or None when it may stay.

    `queried_as` is the version's spelling the services were asked about.
    """
    found = context.advisories_of(name, queried_as)
    malicious = tuple(a for a in found if a.malicious)
    if malicious:
        # A takedown is usually a malware report: name it whatever else is true.
        return Cause.ADVISORY, "has " + ", ".join(map(context.describe, malicious)), malicious
    if project is None:
        return Cause.VANISHED, "vanished upstream: the project is gone from the index", ()
    if project.unreadable is not None:
        return None  # nothing to judge by: kept, and the plan says why (fail closed)
    if project.status == QUARANTINED_STATUS:
        return Cause.UPSTREAM_QUARANTINED, "project is quarantined upstream (PEP 792)", ()
    release = project.releases().get(version)
    if not release:
        return Cause.VANISHED, "vanished upstream: the version is gone from the index", ()
    exception = context.exception_for(name, version)
    allow_yanked = exception is not None or (
        context.config.policy.yanked is YankedPolicy.ALLOW_PINNED
        and requirement is not None
        and requirement.pinned_version == version
    )
    if not allow_yanked and all(f.yanked for f in release):
        reasons = sorted({f.yanked_reason for f in release if f.yanked_reason})
        return Cause.YANKED, "yanked upstream" + (f": {'; '.join(reasons)}" if reasons else ""), ()
    blocking = context.blocking(found, excepted=exception is not None)
    if blocking:
        return Cause.ADVISORY, "has " + ", ".join(map(context.describe, blocking)), blocking
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


def _fix_lane(
    requirement: Requirement,
    versions: Sequence[Version],
    releases: Mapping[Version, Sequence[UpstreamFile]],
    held: Collection[Version],
    context: PolicyContext,
    distrusted: Mapping[Version, str],
) -> dict[Version, list[tuple[Version, Advisory]]]:
    """The versions the security-fix lane may admit early, with what each fixes.

    For each blocking advisory on a held version, only the lowest candidate that fixes it (a
    fixed version above the held one and at or below the candidate, the candidate free of it)
    and passes every rule at `fix_min_age_days`; and only when that candidate is not mature
    anyway. So the lane never reaches past the fix to a release published an hour ago.
    """
    lane: dict[Version, list[tuple[Version, Advisory]]] = {}
    if context.fix_min_age >= context.min_age:
        return lane
    ascending = sorted(versions)
    for held_version in held:
        found = context.advisories_of(requirement.name, held_version)
        for advisory in context.blocking(found, excepted=False):
            fixed = [v for f in advisory.fixed_in if (v := parse_version(f)) and v > held_version]
            for candidate in ascending:
                if candidate in distrusted or not any(f <= candidate for f in fixed):
                    continue
                own = context.advisories_of(requirement.name, candidate)
                if any(advisory.names & a.names for a in own):
                    continue
                release = releases[candidate]
                early = judge_version(
                    requirement, candidate, release, context, min_age=context.fix_min_age
                )
                if early.problem is None:
                    if judge_version(requirement, candidate, release, context).problem is not None:
                        lane.setdefault(candidate, []).append((held_version, advisory))
                    break
    return lane


def _fix_lane_note(fixes: Sequence[tuple[Version, Advisory]], context: PolicyContext) -> str:
    """The plan line for a version the security-fix lane admitted before `min_age_days`."""
    fixed = ", ".join(f"{a.id} in {held}" for held, a in fixes)
    return (
        f"security fix: fixes {fixed}; admitted under policy.fix_min_age_days "
        f"({context.config.policy.fix_age_days}) before policy.min_age_days "
        f"({context.config.policy.min_age_days})"
    )


def _mature(upstream_file: UpstreamFile, min_age: timedelta, now: datetime) -> bool:
    """Fail closed: a file without an upload time is never mature. (An age, not an eligible
    date, is compared: an upload time of year 9999 cannot overflow it.)"""
    return upstream_file.upload_time is not None and now - upstream_file.upload_time >= min_age


def _immature(
    version: Version, files: Sequence[UpstreamFile], min_age: timedelta, context: PolicyContext
) -> Verdict:
    timed = [f.upload_time for f in files if f.upload_time is not None]
    if not timed:
        return Verdict(
            version,
            problem=Problem.NO_UPLOAD_TIME,
            detail="upstream gives no upload time, so its age is unknown (fail closed)",
        )
    first = min(timed)
    if first - context.now > FUTURE_TOLERANCE:
        return Verdict(
            version,
            problem=Problem.IMMATURE,
            detail=f"upstream says it was uploaded on {first:%Y-%m-%d}, in the future, so its "
            "age is unknown (fail closed)",
        )
    eligible = first + min_age
    age_days = (context.now - first).days
    return Verdict(
        version,
        problem=Problem.IMMATURE,
        detail=f"{age_days} days old, eligible {eligible:%Y-%m-%d %H:%M} UTC",
        eligible_at=eligible,
        rule=f"policy.{'fix_' if min_age != context.min_age else ''}min_age_days: {min_age.days}",
    )


def _blocked(requirement: Requirement, reason: Problem, detail: str) -> Blocked:
    return Blocked(
        name=requirement.name, requirement=requirement.text, reason=reason, detail=detail
    )
