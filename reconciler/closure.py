"""Dependency closure: every dependency of an admitted release, judged by the same policy.

A real resolver (resolvelib, the library behind pip's) picks one version per project for each
target (`policy.environments`), over the candidates the policy admits (maturity, advisories,
yanks, exceptions) that the target can install: Requires-Python (PEP 503
`data-requires-python`) holds for its Python, and it has a wheel the target installs (or, for
a project with no wheel for the target at all, an sdist). Markers are evaluated for that target;
extras only where a requirement names them. The registry holds the union: per project, every
version some target needs. Each version is judged once, for all targets; a target whose
newest-first choice is the same as an earlier target's takes that resolution as it is.

Pure: upstream pages and core metadata come in as data. Whatever is missing is collected while
resolving and raised once as `NeedData`, so the caller fetches a whole frontier per round.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Union

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PackagingRequirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionError, ResolutionImpossible, Result

from reconciler import policy
from reconciler.metadata import CoreMetadata
from reconciler.model import (
    Blocked,
    Coverage,
    Problem,
    Requirement,
    SourceLocation,
    UpstreamFile,
    UpstreamProject,
    WheelChoice,
    WheelTagGroups,
    wheel_tag_groups,
)
from reconciler.targets import TargetEnvironment

# Where a requirement comes from when no line lists it: a release's Requires-Dist.
DEPENDENCY = SourceLocation("(dependency)", 0)
# The name a release's Requires-Python is asked under: no project is called that.
PYTHON = "(python)"
# Where a requirement comes from when an sdist's build needs it (PEP 518).
BUILD = SourceLocation("(build requirement)", 0)
# Resolution rounds before giving up (pip uses 200000; our graphs are far smaller).
MAX_ROUNDS = 20000
# Metadata files of older versions asked for with a missing one, for backtracking.
PREFETCH = 8
# The version of a project whose page is still being fetched: no real release is read.
_STAND_IN = Version("0")
# Releases an explanation names before it says how many more there are.
_NAMED_RELEASES = 5


class NeedData(Exception):  # noqa: N818 - a signal to the caller, not an error
    """Pages and metadata the resolution needs before it can finish."""

    def __init__(
        self,
        projects: frozenset[str],
        files: frozenset[UpstreamFile],
        sdists: frozenset[UpstreamFile] = frozenset(),
    ) -> None:
        super().__init__(
            f"{len(projects)} projects, {len(files)} metadata files and {len(sdists)} sdists' "
            "build requirements needed"
        )
        self.projects = projects
        self.files = files
        self.sdists = sdists  # whose build requirements a target installing them needs


@dataclass(frozen=True)
class Need:
    """A requirement on a project, from a listed line or a release's Requires-Dist."""

    name: str
    specifier: SpecifierSet
    extras: frozenset[str]
    text: str
    chain: tuple[str, ...] = ()  # the releases that lead here, from a listed requirement


@dataclass(frozen=True)
class Candidate:
    """One version of one project (with extras, when a requirement asks for them)."""

    name: str
    version: Version
    extras: frozenset[str]
    verdict: policy.Verdict = field(compare=False)
    chain: tuple[str, ...] = field(default=(), compare=False)  # how the resolution got here


Item = Union[Need, Candidate]  # noqa: UP007 - resolvelib's type parameters want one name
Judged = Union[list[policy.Verdict], Blocked]  # noqa: UP007


@dataclass(frozen=True)
class Closure:
    """What the resolution admitted, and what it could not satisfy."""

    admitted: dict[tuple[str, Version], policy.Admitted]  # every version some target needs
    targets: dict[tuple[str, Version], tuple[TargetEnvironment, ...]]  # which need each
    required_by: dict[str, tuple[str, ...]]  # project -> releases that need it
    blocked: dict[tuple[str, str], Blocked]  # (set, listed name) -> why (on every target)
    kept: frozenset[tuple[str, Version]] = frozenset()  # what a blocked requirement's held
    # version still needs: kept in the registry, not pruned
    warnings: tuple[str, ...] = ()
    coverage: tuple[Coverage, ...] = ()
    sets: dict[tuple[str, Version], tuple[str, ...]] = field(default_factory=dict)  # whose


def dependency_requirement(name: str) -> Requirement:
    """The requirement a project is judged under when it is only a dependency: any version."""
    return Requirement(name=name, specifier=SpecifierSet(), text=name, source=DEPENDENCY)


def identifier(name: str, extras: Collection[str]) -> str:
    """pip's identity: `name` for the base, `name[a,b]` for it with extras."""
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


@dataclass(frozen=True)
class Facts:
    """What a resolution judges by: upstream pages and metadata, policy, the registry's view."""

    projects: Mapping[str, UpstreamProject | None]
    metadata: Mapping[str, CoreMetadata]
    unreadable: Collection[str]
    context: policy.PolicyContext
    held: Mapping[str, Collection[Version]]
    distrusted: Mapping[tuple[str, Version], str]
    target: TargetEnvironment
    build: Mapping[str, tuple[str, ...] | str]  # sdist sha256 -> build requirements, or why not
    # The plan's fetch budget is spent: what was not fetched is unavailable, never "no
    # dependencies", and the requirements that needed it are blocked.
    exhausted: bool = False


class Provider(AbstractProvider[Need, Candidate, str]):
    """The resolver's view of upstream through the policy, recording what data is missing."""

    def __init__(self, listed: Mapping[str, Requirement], facts: Facts, memo: Memo) -> None:
        self.listed = listed
        self.facts = facts
        self.markers = facts.target.markers()
        self.missing_projects: set[str] = set()
        self.missing_files: set[UpstreamFile] = set()
        self.missing_sdists: set[UpstreamFile] = set()
        self.unread: set[str] = set()  # releases whose dependencies could not be read
        self.unfetched: set[str] = set()  # projects left out because the budget was spent
        self.unfetched_now: set[str] = set()  # the same, in the resolution under way
        self.memo = memo  # shared by every target's provider: each version judged once
        self.fits = memo.fits.setdefault(facts.target, {})

    def with_listed(self, listed: Mapping[str, Requirement]) -> Provider:
        """A provider for other listed requirements, on the same target and judgements."""
        return Provider(listed, self.facts, self.memo)

    def requirement_for(self, name: str) -> Requirement:
        """The listed requirement governing a project, or a bare one for a dependency."""
        return self.listed.get(name) or dependency_requirement(name)

    def judged(self, name: str) -> Judged:
        """Every candidate of a project judged by policy (cached across targets)."""
        requirement = self.requirement_for(name)
        if name not in self.facts.projects:  # not fetched yet: nothing to remember
            return policy.judge_candidates(requirement, None, self.facts.context)
        if requirement not in self.memo.judged:
            self.memo.judged[requirement] = policy.judge_candidates(
                requirement,
                self.facts.projects.get(name),
                self.facts.context,
                self.facts.held.get(name, ()),
                {v: why for (n, v), why in self.facts.distrusted.items() if n == name},
            )
        return self.memo.judged[requirement]

    def admissible(self, name: str) -> list[policy.Verdict]:
        """The releases of a project that the policy admits and the target installs (a file
        whose Requires-Python holds for it): those with a wheel for it newest first, then
        those it would build from the sdist (as uv, and pip told `--prefer-binary`, order
        them: a range takes a wheel, a pin of an sdist-only release still resolves)."""
        key = (self.facts.target, self.requirement_for(name))
        if key not in self.memo.admissible:
            fitting = [(v, self.installs(v)) for v in _verdicts(self, name)]
            self.memo.admissible[key] = [v for v, how in fitting if how is _Install.WHEEL] + [
                v for v, how in fitting if how is _Install.SDIST
            ]
        return self.memo.admissible[key]

    def installs(self, verdict: policy.Verdict) -> _Install | None:
        """How the target installs a release the policy admits: from a wheel, else built
        from its sdist; None when it cannot (or the policy refused the release)."""
        if verdict.problem is not None:
            return None
        # Asked of every admitted release for every target, and a project's releases repeat a
        # few tag sets: each set is matched against the target once.
        groups = verdict.wheel_tag_groups
        fits = self.fits.get(groups)
        if fits is None:
            fits = self.fits[groups] = _wheel_fits(self.facts.target, groups)
        if fits:
            return _Install.WHEEL
        return _Install.SDIST if _sdist_fits(self.facts.target, verdict.files) else None

    def first_meeting(
        self, name: str, specifiers: frozenset[SpecifierSet]
    ) -> policy.Verdict | None:
        """`meeting(name, specifiers)[0]`, the release the resolver tries first, found
        walking the releases newest first and stopping at the first with a wheel for the
        target: an earlier target's resolution is checked against it, release by release,
        and most of a project's history is never looked at."""
        built: policy.Verdict | None = None
        for verdict in _verdicts(self, name):
            if not _meets(verdict.version, specifiers):
                continue
            how = self.installs(verdict)
            if how is _Install.WHEEL:
                return verdict
            if how is _Install.SDIST and built is None:
                built = verdict
        return built

    def meeting(self, name: str, specifiers: frozenset[SpecifierSet]) -> list[policy.Verdict]:
        """The admissible releases that meet every specifier, newest first (each set of
        specifiers checked once per target: the resolver asks again on every pin)."""
        key = (self.facts.target, self.requirement_for(name), specifiers)
        if key not in self.memo.meeting:
            bounds = [s for s in specifiers if s]  # an empty set (a bare name) meets all
            self.memo.meeting[key] = (
                [verdict for verdict in self.admissible(name) if _meets(verdict.version, bounds)]
                if bounds
                else self.admissible(name)
            )
        return self.memo.meeting[key]

    def identify(self, requirement_or_candidate: Item) -> str:
        """A project's identity in the resolution."""
        return identifier(requirement_or_candidate.name, requirement_or_candidate.extras)

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Any:
        """Pin the most constrained projects first (fewest candidates), as pip does."""
        return len(list(candidates[identifier]))  # counted in C: asked ~25 times per pin

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Need]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        """Versions that pass policy and every specifier, newest first."""
        needs = list(requirements[identifier])
        name, extras = needs[0].name, frozenset().union(*(n.extras for n in needs))
        if name == PYTHON:  # asked for only when a release's Requires-Python excludes the target
            return []
        if name not in self.facts.projects:
            self._missing_project(name)
            if self.facts.exhausted:
                return []
            # A stand-in while its page is fetched: the rest of the graph resolves on, so
            # the round names the whole frontier, instead of backtracking through every
            # version of whatever needed it (the resolution is redone once the page is in).
            return [Candidate(name, _STAND_IN, extras, policy.Verdict(_STAND_IN))]
        excluded = {c.version for c in incompatibilities[identifier]}
        matches = [
            Candidate(name, verdict.version, extras, verdict, needs[0].chain)
            for verdict in self.meeting(name, frozenset(n.specifier for n in needs))
            if verdict.version not in excluded
        ]
        if self.facts.exhausted:  # unknown dependencies are not "none": leave those out
            known = [c for c in matches if not self._unfetched_metadata(c.verdict)]
            if len(known) < len(matches):
                self._left_out(name)
            matches = known
        return matches

    def is_satisfied_by(self, requirement: Need, candidate: Candidate) -> bool:
        """Whether a candidate meets a requirement's specifier (a stand-in meets any)."""
        return candidate.name in self.missing_projects or requirement.specifier.contains(
            candidate.version, prereleases=True
        )

    def get_dependencies(self, candidate: Candidate) -> list[Need]:
        """The candidate's Requires-Dist whose markers hold on the target (and its
        Requires-Python, when that excludes the target)."""
        if candidate.name in self.missing_projects:
            return []  # a stand-in: its dependencies are read once its page is
        chain = (*candidate.chain, f"{candidate.name} {candidate.version}")
        needs = []
        if candidate.extras:  # the extras' candidate depends on its own base release
            needs.append(
                Need(candidate.name, SpecifierSet(f"=={candidate.version}"), frozenset(), "")
            )
        core = self._core_metadata(candidate)
        target = self.facts.target
        if core is not None and not target.allows(core.requires_python):
            # The release's own metadata says it needs another Python (an index that does not
            # serve data-requires-python): a requirement nothing satisfies, as pip's
            # RequiresPythonRequirement, so the resolver takes an older release.
            text = f"Requires-Python {core.requires_python} (the target has {target.python})"
            needs.append(Need(PYTHON, SpecifierSet(), frozenset(), text, chain))
        for line in core.requires_dist if core else ():
            parsed = _parsed(line)
            if parsed is None:
                continue
            if self._applies(parsed, candidate.extras):
                if canonicalize_name(parsed.name) not in self.facts.projects:
                    # Note every sibling now: the resolver stops at the first it cannot find.
                    self._missing_project(canonicalize_name(parsed.name))
                needs.append(
                    Need(
                        canonicalize_name(parsed.name),
                        parsed.specifier,
                        frozenset(canonicalize_name(e) for e in parsed.extras),
                        line,
                        chain,
                    )
                )
        return needs

    def _core_metadata(self, candidate: Candidate) -> CoreMetadata | None:
        chosen = metadata_file(candidate.verdict)
        digest = (chosen.sha256 or "") if chosen else ""  # policy admits files with a sha256
        if digest in self.facts.metadata:
            return self.facts.metadata[digest]
        if chosen is None or digest in self.facts.unreadable:
            self.unread.add(f"{candidate.name} {candidate.version}")
        elif not self.facts.exhausted:
            self.missing_files.add(chosen)
            if candidate.version != self.admissible(candidate.name)[0].version:
                # Backtracking walks down the versions: ask for the next few with this one,
                # so a long walk costs a few fetch rounds, not one per version.
                self.missing_files.update(self._next_metadata(candidate, PREFETCH))
        return None

    def _next_metadata(self, candidate: Candidate, count: int) -> list[UpstreamFile]:
        """The metadata files of the next `count` older admissible versions of a project."""
        judged = self.judged(candidate.name)
        older = [
            v for v in (judged if isinstance(judged, list) else [])
            if v.problem is None and v.version < candidate.version
        ]  # fmt: skip
        files = [metadata_file(v) for v in older]
        return [f for f in files if f is not None and self._unfetched_file(f)][:count]

    def _unfetched_metadata(self, verdict: policy.Verdict) -> bool:
        chosen = metadata_file(verdict)
        return chosen is not None and self._unfetched_file(chosen)

    def _unfetched_file(self, upstream_file: UpstreamFile) -> bool:
        digest = upstream_file.sha256 or ""
        return digest not in self.facts.metadata and digest not in self.facts.unreadable

    def _missing_project(self, name: str) -> None:
        """A page the resolution needs: asked for, or, once the budget is spent, unavailable."""
        if self.facts.exhausted:
            self._left_out(name)
        else:
            self.missing_projects.add(name)

    def _left_out(self, name: str) -> None:
        self.unfetched.add(name)
        self.unfetched_now.add(name)

    def _applies(self, requirement: PackagingRequirement, extras: frozenset[str]) -> bool:
        """Whether a Requires-Dist line belongs to this candidate on the target.

        The base release takes the lines whose marker holds without an extra; a candidate
        with extras takes only the lines its extras switch on.
        """
        marker = requirement.marker
        if marker is None:
            return not extras  # unconditional lines belong to the base release
        if bool(extras) != ("extra" in str(marker)):
            return False
        try:
            return any(
                marker.evaluate({**self.markers, "extra": extra}) for extra in extras or {""}
            )
        except (UndefinedComparison, UndefinedEnvironmentName):
            return True  # a marker we cannot judge: mirror the dependency rather than miss it


def target_wheel(target: TargetEnvironment, files: Iterable[UpstreamFile]) -> UpstreamFile | None:
    """The wheel pip on the target takes of these: the one it ranks first among those whose
    Requires-Python holds for it (PEP 503 `data-requires-python`)."""
    ranked = [
        (target.wheel_rank(f.filename), f.filename, f) for f in _fitting_wheels(target, files)
    ]
    return min(ranked)[2] if ranked else None


def _fitting_wheels(
    target: TargetEnvironment, files: Iterable[UpstreamFile]
) -> Iterator[UpstreamFile]:
    """The wheels the target installs."""
    return (f for f in files if target.installs(f.filename) and target.allows(f.requires_python))


def _fitting_sdists(
    target: TargetEnvironment, files: Iterable[UpstreamFile]
) -> Iterator[UpstreamFile]:
    """The files that are not wheels (sdists) whose Requires-Python holds for the target."""
    return (
        f for f in files if not f.filename.endswith(".whl") and target.allows(f.requires_python)
    )


def _meets(version: Version, specifiers: Iterable[SpecifierSet]) -> bool:
    """Whether a version meets every specifier (pre-releases as candidates: the policy chose
    the candidates)."""
    return all(s.contains(version, prereleases=True) for s in specifiers)


def _wheel_fits(target: TargetEnvironment, groups: WheelTagGroups) -> bool:
    """Whether the target installs some wheel of a release, asked of its wheels' tags united
    per Requires-Python (`wheel_tag_groups`): asked of every admitted release for every
    target, so never of each wheel."""
    return any(
        target.installs_any(tags) and target.allows(requires_python)
        for requires_python, tags in groups
    )


def _sdist_fits(target: TargetEnvironment, files: Iterable[UpstreamFile]) -> bool:
    return next(_fitting_sdists(target, files), None) is not None


def mirrored_files(
    files: Sequence[UpstreamFile], targets: Iterable[TargetEnvironment], choice: WheelChoice
) -> tuple[UpstreamFile, ...]:
    """The files of a release to mirror for these targets: what is not a wheel (an sdist:
    pip builds it where no wheel fits), and the wheel each target takes, or every wheel."""
    if choice is WheelChoice.ALL:
        return tuple(files)
    wanted = {wheel.filename for t in targets if (wheel := target_wheel(t, files)) is not None}
    return tuple(f for f in files if not f.filename.endswith(".whl") or f.filename in wanted)


@functools.lru_cache(maxsize=65536)
def _parsed(line: str) -> PackagingRequirement | None:
    """A Requires-Dist line parsed once per plan, whatever the number of targets and rounds
    (None when it does not parse: such a line is no requirement)."""
    try:
        return PackagingRequirement(line)
    except InvalidRequirement:
        return None


def likely_dependencies(metadata: CoreMetadata, targets: Sequence[TargetEnvironment]) -> set[str]:
    """The projects a release's Requires-Dist names for some target, outside any extra: the
    pages a resolution that takes the release asks for."""
    names: set[str] = set()
    for line in metadata.requires_dist:
        parsed = _parsed(line)
        if parsed is not None and (
            parsed.marker is None or any(t.satisfies(parsed.marker) for t in targets)
        ):
            names.add(canonicalize_name(parsed.name))
    return names


def metadata_file(verdict: policy.Verdict) -> UpstreamFile | None:
    """The file whose core metadata stands for a release: a wheel, one with a PEP 658 file
    first; None for a release of sdists only."""
    wheels = sorted(
        (f for f in verdict.files if f.filename.endswith(".whl")),
        key=lambda f: (not f.has_metadata, f.filename),
    )
    return wheels[0] if wheels else None


def resolve(
    listed: Sequence[Requirement],
    projects: Mapping[str, UpstreamProject | None],
    metadata: Mapping[str, CoreMetadata],
    unreadable: Collection[str],
    context: policy.PolicyContext,
    held: Mapping[str, Collection[Version]],
    distrusted: Mapping[tuple[str, Version], str],
    environments: Sequence[TargetEnvironment],
    build: Mapping[str, tuple[str, ...] | str],
    exhausted: bool = False,
    memo: Memo | None = None,
) -> Closure:
    """Resolve the listed requirements and their whole dependency closure, per requirement
    set (each an environment of its own) and target, with what building the sdists a target
    installs needs (`build`: by sdist sha256).

    Raises NeedData when pages, metadata or build requirements are missing: what every set
    misses at once, so independent sets share a fetch round.
    """
    memo = memo if memo is not None else Memo()
    outcomes: list[tuple[str, TargetEnvironment, _TargetClosure]] = []
    missing: list[NeedData] = []
    for set_name in dict.fromkeys(r.set_name for r in listed):
        members = [r for r in listed if r.set_name == set_name]
        earlier: list[_TargetClosure] = []
        for target in environments:
            applicable = [r for r in members if r.applies_to([target])]
            outcome = memo.outcomes.get((set_name, target))
            if outcome is None:
                facts = Facts(
                    projects,
                    metadata,
                    unreadable,
                    context,
                    held,
                    distrusted,
                    target,
                    build,
                    exhausted,
                )
                provider = Provider({r.name: r for r in applicable}, facts, memo)
                reused = (_reuse(provider, applicable, o) for o in reversed(earlier))
                try:
                    # NeedData from the first target that misses something: most of what one
                    # target needs, the others need too, and a round's fetch is cheaper than
                    # every target resolving again (a target needing more asks later).
                    outcome = _with_builds(
                        provider,
                        next((o for o in reused if o is not None), None)
                        or _resolve_target(provider, applicable),
                    )
                except NeedData as need:
                    missing.append(need)
                    break
                memo.outcomes[(set_name, target)] = outcome
            earlier.append(outcome)
            outcomes.append((set_name, target, outcome))
    if missing:
        raise NeedData(
            frozenset().union(*(n.projects for n in missing)),
            frozenset().union(*(n.files for n in missing)),
            frozenset().union(*(n.sdists for n in missing)),
        )
    return _united(listed, outcomes, context.config.policy.files.wheels)


class _Install(Enum):
    """How a target installs a release."""

    WHEEL = "wheel"
    SDIST = "sdist"  # built from it


# Listed requirements resolved together in chunks of this many (see `_attempt_in_chunks`).
CHUNK = 100


@dataclass
class Memo:
    """What one plan's rounds keep: a round adds pages and metadata of projects nothing
    resolved so far used, so a version judged, or a target resolved, stays so."""

    judged: dict[Requirement, Judged] = field(default_factory=dict)
    admissible: dict[tuple[TargetEnvironment, Requirement], list[policy.Verdict]] = field(
        default_factory=dict
    )
    meeting: dict[
        tuple[TargetEnvironment, Requirement, frozenset[SpecifierSet]], list[policy.Verdict]
    ] = field(default_factory=dict)
    outcomes: dict[tuple[str, TargetEnvironment], _TargetClosure] = field(default_factory=dict)
    fits: dict[TargetEnvironment, dict[WheelTagGroups, bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class _TargetClosure:
    """One target's resolution."""

    listed: frozenset[str]  # the listed requirements that apply to the target
    admitted: dict[str, policy.Admitted]  # by project name
    required_by: dict[str, set[str]]  # project -> releases that need it
    blocked: dict[str, Blocked]
    kept: frozenset[tuple[str, Version]]
    unread: frozenset[str]  # releases whose dependencies could not be read
    unfetched: frozenset[str]  # projects left out: the fetch budget was spent
    builds: dict[tuple[str, Version], policy.Admitted] = field(default_factory=dict)


def _with_builds(provider: Provider, outcome: _TargetClosure) -> _TargetClosure:
    """The target's closure with what building its sdists needs (PEP 518).

    Each release the target installs from its sdist has its build requirements resolved as
    an environment of their own, as pip's isolated build does, on the same policy; what that
    needs is mirrored too (a build may need another version of a project than the runtime).
    A release that cannot be built blocks, on this target, the listed requirements that
    need it, naming why.
    """
    target = provider.facts.target
    builds: dict[tuple[str, Version], policy.Admitted] = {}
    required_by = {name: set(releases) for name, releases in outcome.required_by.items()}
    unbuildable: dict[str, str] = {}
    pending, seen = list(outcome.admitted.values()), set()
    while pending:
        decision = pending.pop()
        release = f"{decision.requirement.name} {decision.version}"
        sdist = _built_from(target, decision.files)
        if sdist is None or release in seen:
            continue
        seen.add(release)
        found = provider.facts.build.get(sdist.sha256 or "")
        if found is None and provider.facts.exhausted:
            found = "its build requirements were not read within the plan's fetch budget"
        if found is None:
            provider.missing_sdists.add(sdist)
            continue
        if isinstance(found, str):
            unbuildable[release] = found
            continue
        needs = _build_requirements(found, target)
        builder = provider.with_listed({r.name: r for r in needs})
        result = _attempt(builder, needs)
        provider.missing_projects |= builder.missing_projects
        provider.missing_files |= builder.missing_files
        if builder.missing_projects:
            continue  # resolved with stand-ins: redone once the pages are in
        if isinstance(result, (Blocked, Conflict)):
            unbuildable[release] = result.detail if isinstance(result, Blocked) else result.why
            continue
        for name, releases in _required_by([result]).items():
            required_by.setdefault(name, set()).update(releases)
        for need in needs:
            required_by.setdefault(need.name, set()).add(f"{release} (to build it)")
        for key, candidate in result.mapping.items():
            if key == candidate.name:
                admitted = _admitted(builder, result, key, candidate)
                builds[(candidate.name, candidate.version)] = admitted
                pending.append(admitted)
    _raise_if_missing(provider)
    blocked = dict(outcome.blocked)
    for release, why in unbuildable.items():
        detail = f"{release} cannot be built on {target} (no wheel of it fits there): {why}"
        for name in _listed_above(release.split(" ")[0], outcome.required_by, outcome.listed):
            blocked.setdefault(
                name,
                Blocked(
                    name=name,
                    requirement=provider.requirement_for(name).text,
                    reason=Problem.DEPENDENCY_UNSATISFIABLE,
                    detail=detail,
                ),
            )
    return replace(outcome, builds=builds, required_by=required_by, blocked=blocked)


def _listed_above(
    name: str, required_by: Mapping[str, Collection[str]], listed: Collection[str]
) -> set[str]:
    """The listed requirements whose closure reaches a project (itself, when listed)."""
    found, seen, pending = set(), set(), [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in listed:
            found.add(current)
        pending.extend(release.split(" ")[0] for release in required_by.get(current, ()))
    return found


def _built_from(target: TargetEnvironment, files: tuple[UpstreamFile, ...]) -> UpstreamFile | None:
    """The sdist a target builds a release from: when no wheel of it fits the target."""
    if _wheel_fits(target, wheel_tag_groups(files)):
        return None
    return next(_fitting_sdists(target, files), None)


def _build_requirements(lines: Sequence[str], target: TargetEnvironment) -> list[Requirement]:
    """Build requirements (PEP 508 lines, checked when read) whose markers hold in the build
    environment: the target's own."""
    found = []
    for line in lines:
        parsed = PackagingRequirement(line)
        if parsed.marker is not None and not target.satisfies(parsed.marker):
            continue
        found.append(
            Requirement(
                name=canonicalize_name(parsed.name),
                specifier=parsed.specifier,
                text=line,
                source=BUILD,
                extras=frozenset(canonicalize_name(e) for e in parsed.extras),
            )
        )
    return found


def _resolve_target(provider: Provider, listed: Sequence[Requirement]) -> _TargetClosure:
    """Resolve for the provider's target: all requirements together, as pip would. When
    they cannot be (or data is missing), each requirement is resolved on its own, so one that
    cannot be satisfied is blocked with the chain that leads there; the rest are then
    resolved together, in groups that share projects, and a requirement whose closure
    conflicts with the others' is blocked in turn. (While data is missing, the one
    resolution of them all names it: a fetch round's frontier.)"""
    together = _attempt_in_chunks(provider, listed) if listed else None
    _raise_if_missing(provider)
    if together is not None:
        return _target_closure(provider, listed, together, {})
    blocked: dict[str, Blocked] = {}
    reach: dict[str, set[str]] = {}  # requirement -> the projects its own closure touches
    for requirement in listed:
        outcome = _attempt(provider, [requirement])
        if isinstance(outcome, Blocked):
            blocked[requirement.name] = outcome
        elif isinstance(outcome, Conflict):  # the resolver gave up on it alone
            blocked[requirement.name] = Blocked(
                name=requirement.name,
                requirement=requirement.text,
                reason=Problem.DEPENDENCY_UNSATISFIABLE,
                detail=outcome.why,
            )
        else:
            reach[requirement.name] = {c.name for c in outcome.mapping.values()}
    _raise_if_missing(provider)
    return _target_closure(
        provider, listed, _resolve_in_groups(provider, listed, reach, blocked), blocked
    )


def _attempt_in_chunks(
    provider: Provider, listed: Sequence[Requirement]
) -> list[Result[Need, Candidate, str]] | None:
    """All requirements resolved together (None if they cannot be).

    The resolver checks every requirement at every pin, so one resolution of 3,000 listed
    projects makes millions of checks. More than CHUNK requirements are first resolved in
    chunks of CHUNK; their results stand for the whole only when they are what one resolution
    gives: no chunk backtracked, and each project is pinned alike in every chunk, to the
    release the resolver tries first for all the chunks' requirements on it (which answer
    resolvelib settles on can depend on what it is given). Otherwise, or when a chunk fails
    (a part can fail where the whole resolves), all at once.
    """
    if len(listed) > CHUNK:
        results = []
        for chunk in (listed[i : i + CHUNK] for i in range(0, len(listed), CHUNK)):
            reporter = _Backtracking()
            result = _attempt(provider, chunk, reporter)
            if not isinstance(result, Result) or reporter.rejected:
                break
            results.append(result)
        else:
            if _as_one(provider, results):
                return results
    whole = _attempt(provider, listed)
    return [whole] if isinstance(whole, Result) else None


def _as_one(provider: Provider, results: Sequence[Result[Need, Candidate, str]]) -> bool:
    """Whether the chunks' results pin each project alike, to the release the resolver tries
    first for every requirement the chunks put on it."""
    pins: dict[str, Candidate] = {}
    needs: dict[str, set[SpecifierSet]] = {}
    for result in results:
        for key, candidate in result.mapping.items():
            if pins.setdefault(key, candidate).version != candidate.version:
                return False
            needs.setdefault(key, set()).update(
                information.requirement.specifier
                for information in result.criteria[key].information
            )
    for key, candidate in pins.items():
        if key == candidate.name:  # a release with extras: its base is pinned under the name
            first = provider.first_meeting(key, frozenset(needs[key]))
            if first is None or first.version != candidate.version:
                return False
    return True


class _Backtracking(BaseReporter[Need, Candidate, str]):
    """Counts the conflicts a resolution met and the candidates it rejected: none of either,
    and it went straight to its answer."""

    def __init__(self) -> None:
        self.rejected = 0

    def resolving_conflicts(self, causes: Collection[Any]) -> None:
        self.rejected += 1

    def rejecting_candidate(self, criterion: Any, candidate: Candidate) -> None:
        self.rejected += 1


def _target_closure(
    provider: Provider,
    listed: Sequence[Requirement],
    results: Sequence[Result[Need, Candidate, str]],
    blocked: dict[str, Blocked],
) -> _TargetClosure:
    """A target's resolution from the resolver's results."""
    admitted = {
        candidate.name: _admitted(provider, result, key, candidate)
        for result in results
        for key, candidate in result.mapping.items()
        if key == candidate.name  # a release with extras: its base is under the plain name
    }
    kept = _kept_for_blocked(provider, blocked, provider.facts.held)
    _raise_if_missing(provider)
    return _TargetClosure(
        frozenset(r.name for r in listed),
        admitted,
        _required_by(results),
        blocked,
        kept,
        frozenset(provider.unread),
        frozenset(provider.unfetched),
    )


def _reuse(
    provider: Provider, listed: Sequence[Requirement], earlier: _TargetClosure
) -> _TargetClosure | None:
    """An earlier target's resolution when it is this target's too, else None.

    It is when, walking the listed requirements' dependencies under this target's markers,
    every project reached is pinned there to a release this target installs, and that
    release is the newest this target installs that meets every requirement on it: the
    resolver, which tries the newest first, has nothing to revise. Most targets share most
    of a graph, so a many-target plan resolves a few times, not once per target.
    """
    if earlier.blocked or earlier.unfetched or earlier.listed != {r.name for r in listed}:
        return None
    needs: dict[str, list[Need]] = {}
    parents: dict[str, set[str]] = {}
    frontier = [
        Need(r.name, r.specifier, frozenset(canonicalize_name(e) for e in r.extras), r.text)
        for r in listed
    ]
    walked: set[tuple[str, frozenset[str]]] = set()
    while frontier:
        need = frontier.pop()
        pinned = earlier.admitted.get(need.name)
        if pinned is None or not need.specifier.contains(pinned.version, prereleases=True):
            return None
        needs.setdefault(need.name, []).append(need)
        if (need.name, need.extras) in walked:
            continue
        walked.add((need.name, need.extras))
        verdict = next(
            (v for v in _verdicts(provider, need.name) if v.version == pinned.version), None
        )
        if verdict is None or provider.installs(verdict) is None:
            return None
        candidate = Candidate(need.name, pinned.version, need.extras, verdict)
        for dependency in provider.get_dependencies(candidate):
            if dependency.name != need.name:
                parents.setdefault(dependency.name, set()).add(f"{need.name} {pinned.version}")
            frontier.append(dependency)
        if provider.missing_projects or provider.missing_files or provider.unread:
            return None  # a full resolution says what is missing, and why
    for name, on_it in needs.items():
        first = provider.first_meeting(name, frozenset(n.specifier for n in on_it))
        if first is None or first.version != earlier.admitted[name].version:
            return None
    return replace(
        earlier,
        admitted={name: earlier.admitted[name] for name in needs},
        required_by=parents,
    )


def _verdicts(provider: Provider, name: str) -> list[policy.Verdict]:
    judged = provider.judged(name)
    return judged if isinstance(judged, list) else []


def _united(
    listed: Sequence[Requirement],
    outcomes: Sequence[tuple[str, TargetEnvironment, _TargetClosure]],
    choice: WheelChoice,
) -> Closure:
    """Every set's and target's resolution in one: per project, each version some target of
    some set needs; a requirement blocked where it applies on every target is blocked, one
    blocked on some targets only is said in a warning (what the other targets get is held).
    Of each version, the files those targets take are mirrored (`choice`)."""
    admitted: dict[tuple[str, Version], policy.Admitted] = {}
    targets: dict[tuple[str, Version], list[TargetEnvironment]] = {}
    sets: dict[tuple[str, Version], list[str]] = {}
    required_by: dict[str, set[str]] = {}
    blocked_on: dict[tuple[str, str], list[tuple[TargetEnvironment, Blocked]]] = {}
    warnings: list[str] = []
    for set_name, target, outcome in outcomes:
        releases = [((n, d.version), d) for n, d in outcome.admitted.items()]
        for key, decision in [*releases, *outcome.builds.items()]:
            admitted.setdefault(key, decision)
            if target not in targets.setdefault(key, []):
                targets[key].append(target)
            if set_name not in sets.setdefault(key, []):
                sets[key].append(set_name)
        for name, releases_of in outcome.required_by.items():
            required_by.setdefault(name, set()).update(releases_of)
        for name, why in outcome.blocked.items():
            blocked_on.setdefault((set_name, name), []).append((target, why))
    several = len({set_name for set_name, _, _ in outcomes}) > 1
    blocked: dict[tuple[str, str], Blocked] = {}
    for requirement in listed:
        line = (requirement.set_name, requirement.name)
        applies = [t for s, t, _ in outcomes if s == line[0] and requirement.applies_to([t])]
        where = [(t, why) for t, why in blocked_on.get(line, []) if t in applies]
        if where and len(where) == len(applies):
            blocked[line] = where[0][1]
        elif where:
            named = ", ".join(str(t) for t, _ in where)
            text = f"{requirement.set_name}: {requirement.text}" if several else requirement.text
            warnings.append(f"{text} is blocked on {named}: {where[0][1].detail}")
    names = {name for name, _ in admitted}
    unread = sorted({r for _, _, o in outcomes for r in o.unread if r.split(" ")[0] in names})
    warnings.extend(
        f"the dependencies of {release} could not be read (an sdist only, or no readable "
        "metadata); list them in requirements.txt"
        for release in unread
    )
    unfetched = sorted({p for _, _, o in outcomes for p in o.unfetched})
    if unfetched:
        warnings.append(
            "the dependency closure did not settle within the plan's fetch budget: "
            f"{', '.join(unfetched)} could not be read in time; what needs them is blocked"
        )
    return Closure(
        admitted={
            key: replace(decision, files=mirrored_files(decision.files, targets[key], choice))
            for key, decision in admitted.items()
        },
        targets={key: tuple(found) for key, found in targets.items()},
        required_by={name: tuple(sorted(releases)) for name, releases in required_by.items()},
        blocked=blocked,
        kept=frozenset().union(*(o.kept for _, _, o in outcomes)),
        warnings=tuple(dict.fromkeys(warnings)),
        coverage=_coverage(outcomes, several),
        sets={key: tuple(found) for key, found in sets.items()},
    )


def _coverage(
    outcomes: Sequence[tuple[str, TargetEnvironment, _TargetClosure]], several: bool
) -> tuple[Coverage, ...]:
    """Per target, the requirements of every set it serves and those blocked there."""
    listed: dict[TargetEnvironment, int] = {}
    blocked: dict[TargetEnvironment, list[str]] = {}
    for set_name, target, outcome in outcomes:
        listed[target] = listed.get(target, 0) + len(outcome.listed)
        named = (f"{set_name}: {name}" if several else name for name in outcome.blocked)
        blocked.setdefault(target, []).extend(named)
    return tuple(Coverage(str(t), listed[t], tuple(sorted(blocked[t]))) for t in listed)


def _admitted(
    provider: Provider, result: Result[Need, Candidate, str], key: str, candidate: Candidate
) -> policy.Admitted:
    """A resolved candidate admitted, explained by the newer versions every requirement on
    it would have taken (not those another requirement excludes anyway)."""
    judged = provider.judged(candidate.name)
    needs = [information.requirement for information in result.criteria[key].information]
    # Newest first: only the releases newer than the one chosen can explain it.
    newer = itertools.takewhile(
        lambda v: v.version > candidate.version, judged if isinstance(judged, list) else []
    )
    verdicts = [v for v in newer if _meets(v.version, [n.specifier for n in needs])]
    return policy.admit(provider.requirement_for(candidate.name), candidate.verdict, verdicts)


def _required_by(results: Iterable[Result[Need, Candidate, str]]) -> dict[str, set[str]]:
    """Each project and the releases (`name version`) whose dependencies pulled it in."""
    parents: dict[str, set[str]] = {}
    for result in results:
        for key, candidate in result.mapping.items():
            for parent in result.graph.iter_parents(key):
                # A parent the resolver left unpinned (dropped in backtracking) pulls in nothing.
                if parent is None or parent not in result.mapping:
                    continue
                if result.mapping[parent].name != candidate.name:
                    pulled_by = result.mapping[parent]
                    parents.setdefault(candidate.name, set()).add(
                        f"{pulled_by.name} {pulled_by.version}"
                    )
    return parents


def _kept_for_blocked(
    provider: Provider, blocked: Mapping[str, Blocked], held: Mapping[str, Collection[Version]]
) -> frozenset[tuple[str, Version]]:
    """What the held versions of blocked requirements need, so it is not pruned from under
    them; each held version is judged afresh under a pin (the specifier may exclude it)."""
    kept: set[tuple[str, Version]] = set()
    for name in blocked:
        for version in held.get(name, ()):
            pinned = replace(provider.requirement_for(name), specifier=SpecifierSet(f"=={version}"))
            keeper = provider.with_listed({**provider.listed, name: pinned})
            outcome = _attempt(keeper, [pinned])
            provider.missing_projects |= keeper.missing_projects
            provider.missing_files |= keeper.missing_files
            if not isinstance(outcome, (Blocked, Conflict)):
                kept |= {(c.name, c.version) for c in outcome.mapping.values()}
    return frozenset(kept)


def _resolve_in_groups(
    provider: Provider,
    listed: Sequence[Requirement],
    reach: Mapping[str, set[str]],
    blocked: dict[str, Blocked],
) -> list[Result[Need, Candidate, str]]:
    """Resolve requirements whose closures share no project separately: they cannot conflict,
    and many small resolutions cost far less than one large one. Groups whose resolutions
    pin a shared project differently (backtracking can reach new projects) are merged and
    resolved again, until every project has one version."""
    groups = _overlapping(reach)
    while True:
        results = [
            _resolve_together(
                provider, [r for r in listed if r.name in group and r.name not in blocked], blocked
            )
            for group in groups
        ]
        pins: dict[str, tuple[Version, int]] = {}
        clash: tuple[int, int] | None = None
        for index, result in enumerate(results):
            for candidate in result.mapping.values():
                seen = pins.setdefault(candidate.name, (candidate.version, index))
                if seen[0] != candidate.version:
                    clash = (seen[1], index)
        if clash is None:
            return results
        first, second = clash
        groups = [g for i, g in enumerate(groups) if i not in clash] + [
            groups[first] | groups[second]
        ]


def _overlapping(reach: Mapping[str, set[str]]) -> list[set[str]]:
    """Requirements grouped by shared projects (connected components, union-find)."""
    parent = {name: name for name in reach}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[str, str] = {}
    for requirement, projects in reach.items():
        for project in projects:
            if project in owner:
                parent[root(requirement)] = root(owner[project])
            else:
                owner[project] = requirement
    groups: dict[str, set[str]] = {}
    for requirement in reach:
        groups.setdefault(root(requirement), set()).add(requirement)
    return list(groups.values())


def _resolve_together(
    provider: Provider, remaining: list[Requirement], blocked: dict[str, Blocked]
) -> Result[Need, Candidate, str]:
    """Resolve the requirements together; block those in a conflict until the rest resolve."""
    while True:
        outcome = _attempt(provider, remaining)
        _raise_if_missing(provider)
        if isinstance(outcome, Blocked):  # the last one standing cannot be satisfied
            blocked[remaining[0].name] = outcome
            remaining = []
        elif isinstance(outcome, Conflict):
            conflicting = [r for r in remaining if r.name in outcome.roots] or remaining[-1:]
            for requirement in conflicting:
                blocked[requirement.name] = Blocked(
                    name=requirement.name,
                    requirement=requirement.text,
                    reason=Problem.DEPENDENCY_CONFLICT,
                    detail=f"its dependencies conflict with other requirements': {outcome.why}",
                )
            remaining = [r for r in remaining if r.name not in blocked]
        else:
            return outcome


@dataclass(frozen=True)
class Conflict:
    """Several requirements whose closures cannot be satisfied together."""

    why: str
    roots: frozenset[str]  # the listed requirements involved


def _attempt(
    provider: Provider,
    requirements: Sequence[Requirement],
    reporter: BaseReporter[Need, Candidate, str] | None = None,
) -> Result[Need, Candidate, str] | Blocked | Conflict:
    """A resolution's result; a Blocked for a single requirement that cannot be satisfied; or
    the Conflict among several. `reporter` hears the resolver's steps."""
    needs = [
        Need(r.name, r.specifier, frozenset(canonicalize_name(e) for e in r.extras), r.text)
        for r in requirements
    ]
    provider.unfetched_now = set()
    try:
        resolver = Resolver(provider, reporter or BaseReporter())
        return resolver.resolve(needs, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as impossible:
        causes = list(impossible.causes)
        why = _explain_all(provider, [c.requirement for c in causes])
        if provider.unfetched_now:  # it might have resolved, had the budget lasted
            left_out = ", ".join(sorted(provider.unfetched_now))
            why = f"{left_out}: not read within the plan's fetch budget; then {why}"
        if len(requirements) == 1:
            requirement = requirements[0]
            reasons = _reasons(provider, causes)
            if provider.unfetched_now or not reasons:
                reason = (
                    Problem.UNRESOLVED
                    if provider.unfetched_now
                    else Problem.DEPENDENCY_UNSATISFIABLE
                )
            else:
                reason = reasons[0].reason
            return Blocked(
                name=requirement.name,
                requirement=requirement.text,
                reason=reason,
                detail=why,
                eligible_at=min(
                    (r.eligible_at for r in reasons if r.eligible_at is not None), default=None
                ),
                advisories=tuple(dict.fromkeys(a for r in reasons for a in r.advisories)),
            )
        roots = {
            (cause.requirement.chain or (cause.requirement.name,))[0].split(" ")[0]
            for cause in causes
        }
        return Conflict(why, frozenset(canonicalize_name(r) for r in roots))
    except ResolutionError as error:
        return Conflict(f"the resolver gave up: {error}", frozenset(r.name for r in requirements))
    except RecursionError:  # resolvelib builds its result recursively: a cycle of leftover pins
        why = "the resolver gave up: its result's dependency graph nests too deeply"
        return Conflict(why, frozenset(r.name for r in requirements))


def _reasons(provider: Provider, causes: Iterable[Any]) -> list[Blocked]:
    reasons = []
    for cause in causes:
        judged = (
            provider.judged(cause.requirement.name)
            if cause.requirement.name in provider.facts.projects
            else None
        )
        if isinstance(judged, Blocked):
            reasons.append(judged)
        elif judged:
            rejected = [v for v in judged if cause.requirement.specifier.contains(v.version, True)]
            if rejected:
                reasons.append(
                    policy.blocked_by(provider.requirement_for(cause.requirement.name), rejected)
                )
    return reasons


def _explain_all(provider: Provider, needs: Sequence[Need]) -> str:
    """Why these needs failed, the first three ways; one dependency that fails alike from
    several versions of its parent is said once: `app 1.0, 0.9 → b>=2: 2.0: 2 days old, …`."""
    grouped: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for need in needs:
        *above, parent = need.chain or ("",)
        grouped.setdefault((tuple(above), _explain(provider, need)), []).append(parent)
    said = [
        " → ".join(part for part in (*above, _releases(parents), why) if part)
        for (above, why), parents in grouped.items()
    ]
    return "; ".join(said[:3])


def _releases(releases: list[str]) -> str:
    """`app 1.0, 0.9` for releases (each `name version`) of one project; the first few, and
    how many more."""
    unique = list(dict.fromkeys(releases))
    names = {release.rpartition(" ")[0] for release in unique}
    shown = unique[:_NAMED_RELEASES]
    more = f" and {len(unique) - len(shown)} more" if len(unique) > len(shown) else ""
    if len(unique) > 1 and len(names) == 1:
        return f"{names.pop()} " + ", ".join(r.rpartition(" ")[2] for r in shown) + more
    return ", ".join(shown) + more


def _explain(provider: Provider, need: Need) -> str:
    """`urllib3<3,>=1.21.1: 2.5.0: 5 days old, eligible …` (the path to it is the caller's)."""
    path = need.text or need.name
    if need.name == PYTHON:
        return path
    if need.name in provider.unfetched:
        return f"{path}: not read within the plan's fetch budget (its page or metadata)"
    judged = provider.judged(need.name) if need.name in provider.facts.projects else None
    if judged is None:
        return f"{path}: not found upstream"
    if isinstance(judged, Blocked):
        return f"{path}: {judged.detail}"
    matching = [v for v in judged if need.specifier.contains(v.version, prereleases=True)]
    if not matching:
        return f"{path}: no upstream version matches"
    rejected = [v for v in matching if v.problem is not None]
    if not rejected:
        return f"{path}: conflicts with another requirement on {need.name}"
    return f"{path}: {policy.reasons(rejected[:3])}"


def _raise_if_missing(provider: Provider) -> None:
    if provider.missing_projects or provider.missing_files or provider.missing_sdists:
        raise NeedData(
            frozenset(provider.missing_projects),
            frozenset(provider.missing_files),
            frozenset(provider.missing_sdists),
        )
