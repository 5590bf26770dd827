"""Frozen values that flow between the edges (upstream, registry, desired state) and the core."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import Enum
from fnmatch import fnmatchcase
from functools import cached_property, lru_cache

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from reconciler.targets import (
    Platform,
    TargetEnvironment,
    parse_platform,
    wheel_parts,
    wheel_tags,
)

# The one set of a desired state whose config names none: its requirements.txt.
DEFAULT_SET = "requirements"


@dataclass(frozen=True)
class SourceLocation:
    """Where a line of desired state came from, for error messages and plan reasons."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True)
class Requirement:
    """One requirement of the desired state, validated and with its canonical name."""

    name: str
    specifier: SpecifierSet
    text: str
    source: SourceLocation
    extras: frozenset[str] = frozenset()
    marker: str | None = None
    hashes: frozenset[str] = frozenset()
    # The targets (`str(target)`) this line serves, when lines of one project are split by
    # their markers between targets; None: wherever its marker holds.
    targets: frozenset[str] | None = None
    set_name: str = DEFAULT_SET  # the requirement set (`sets`) the line belongs to
    # From a lock (a lockfile, or a requirements file pinned with --hash throughout): not
    # resolved again, each entry judged on its own. A lockfile names its files too.
    locked: bool = False
    locked_files: tuple[tuple[str, str], ...] = ()  # (file name, sha256)

    @property
    def pinned_version(self) -> Version | None:
        """The version of an `==X` pin (no wildcard), else None."""
        specs = list(self.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return parse_version(specs[0].version)
        return None

    def applies_to(self, environments: Iterable[TargetEnvironment]) -> bool:
        """Whether the line serves some of these targets: its marker (PEP 508) holds for one
        (no marker: always), or it is one of the targets it was split to."""
        if self.targets is not None:
            return any(str(e) in self.targets for e in environments)
        if self.marker is None:
            return True
        marker = Marker(self.marker)
        return any(e.satisfies(marker) for e in environments)


class Problem(str, Enum):
    """Why a version, or a whole requirement, cannot be admitted now."""

    IMMATURE = "immature"
    NO_UPLOAD_TIME = "no-upload-time"
    NO_FILES = "no-files"
    NO_HASH = "no-hash"
    HASH_MISMATCH = "hash-mismatch"
    YANKED = "yanked"
    MALICIOUS = "malicious"
    VULNERABLE = "vulnerable"
    UNCHECKED = "unchecked"
    UPSTREAM_CHANGED = "upstream-changed"
    AMBIGUOUS_FILE = "ambiguous-file"  # upstream lists one file name twice
    TOO_LARGE = "too-large"  # upstream claims sizes past MAX_FILE_SIZE
    NOT_FOUND = "not-found"
    UPSTREAM_QUARANTINED = "quarantined"  # PEP 792 project status
    UPSTREAM_UNREADABLE = "upstream-unreadable"  # its page could not be read
    NO_MATCHING_VERSION = "no-matching-version"
    DEPENDENCY_UNSATISFIABLE = "dependency-unsatisfiable"
    DEPENDENCY_CONFLICT = "dependency-conflict"
    UNRESOLVED = "unresolved"  # the closure did not settle within the plan's fetch budget


class DependencyMode(str, Enum):
    """What the mirror holds besides the listed requirements (`policy.dependencies`)."""

    CLOSURE = "closure"  # every dependency of an admitted release, judged by the same policy
    LISTED = "listed"  # only the lines of requirements.txt


class ServiceName(str, Enum):
    """The vulnerability services (`policy.vulnerabilities.services`)."""

    OSV = "osv"
    PYPI = "pypi"
    SAFETY = "safety"


class YankedPolicy(str, Enum):
    """What to do with yanked releases (PEP 592)."""

    BLOCK = "block"
    ALLOW_PINNED = "allow-pinned"


class RegistryType(str, Enum):
    """The registries the mirror can keep."""

    DIRECTORY = "directory"
    GITLAB = "gitlab"


@dataclass(frozen=True)
class IgnoredAdvisory:
    """An advisory id the policy ignores, with a reason and an optional expiry."""

    id: str
    reason: str
    expires: date | None = None


@dataclass(frozen=True)
class PolicyException:
    """An explicit admission of one version despite maturity, yank and advisories."""

    package: str
    version: Version
    reason: str
    expires: date | None = None

    def active(self, now: datetime) -> bool:
        """True while the exception has not expired (it lapses after its expiry day)."""
        return self.expires is None or now.date() <= self.expires


class WheelChoice(str, Enum):
    """Which wheels of a release are mirrored (`files.wheels`)."""

    TARGETS = "targets"  # the one each target installs: pip's first choice on it
    ALL = "all"  # every wheel upstream has


@dataclass(frozen=True)
class FilesPolicy:
    """Which distribution files of a release are mirrored."""

    sdist: bool = True
    wheels: WheelChoice = WheelChoice.TARGETS
    # Given: only wheels with a tag matching one of these are considered at all (`fnmatch`
    # patterns of a platform tag, `manylinux*`, or of a whole tag, `cp312-*-*`).
    wheel_patterns: tuple[str, ...] | None = None

    def keeps(self, filename: str) -> bool:
        """Whether a file may be mirrored: sdists by flag, wheels by the patterns (which
        wheels of those the targets need is the closure's choice)."""
        if not filename.endswith(".whl"):
            return self.sdist
        if self.wheel_patterns is None:
            return True
        return any(
            fnmatchcase(str(tag) if "-" in pattern else tag.platform, pattern)
            for tag in wheel_tags(filename)
            for pattern in self.wheel_patterns
        )


def _platform(name: str) -> Platform:
    found = parse_platform(name)
    assert found is not None, name
    return found


# The CPython versions supported upstream in late 2026, on the three common platforms: Linux
# x86_64 with glibc 2.28 (manylinux_2_28: RHEL 8, Debian 10, Ubuntu 20.04 and later; numpy,
# pandas and cryptography publish only such wheels for new Pythons, where uv's `linux`, glibc
# 2.17, would leave Python 3.14 to build numpy from source), macOS arm64 13, Windows x86_64.
DEFAULT_ENVIRONMENTS = tuple(
    TargetEnvironment(python, _platform(platform))
    for python in ("3.10", "3.11", "3.12", "3.13", "3.14")
    for platform in ("x86_64-manylinux_2_28", "macos", "windows")
)


@dataclass(frozen=True)
class SafetyConfig:
    """Where the `safety` service reads its database: a directory, or an API key's env var."""

    database: str | None = None
    api_key_env: str | None = None


@dataclass(frozen=True)
class Policy:
    """The admission policy from `config.yaml`'s `policy:` section."""

    min_age_days: int = 14
    fix_min_age_days: int | None = None  # None: the same as min_age_days
    yanked: YankedPolicy = YankedPolicy.BLOCK
    prune: bool = True
    # A version no longer desired (without a quarantine cause) stays this long, yanked
    # (PEP 592), before it is pruned: lockfiles and exact pins refreshed monthly, as
    # Dependabot and Renovate schedules commonly are, still install meanwhile.
    retain_days: int = 30
    max_deletions: int = 25
    services: tuple[ServiceName, ...] = (ServiceName.OSV,)
    ignore: tuple[IgnoredAdvisory, ...] = ()
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    dependencies: DependencyMode = DependencyMode.CLOSURE
    environments: tuple[TargetEnvironment, ...] = DEFAULT_ENVIRONMENTS
    files: FilesPolicy = field(default_factory=FilesPolicy)

    @property
    def fix_age_days(self) -> int:
        """The maturity period of the security-fix lane."""
        return self.min_age_days if self.fix_min_age_days is None else self.fix_min_age_days


@dataclass(frozen=True)
class UpstreamConfig:
    """Where upstream metadata and advisories come from."""

    index_url: str = "https://pypi.org/simple"
    json_url: str = "https://pypi.org/pypi"
    osv_url: str = "https://api.osv.dev"


@dataclass(frozen=True)
class RegistryConfig:
    """Which registry holds the mirror."""

    type: RegistryType = RegistryType.DIRECTORY
    path: str = "registry"


class SetKind(str, Enum):
    """What a requirement set's file is, by its name."""

    REQUIREMENTS = "requirements"  # pip's requirements-file format (ranges, pins, -r)
    PYLOCK = "pylock"  # PEP 751: pylock.toml, pylock.<name>.toml
    UV_LOCK = "uv.lock"  # uv's lockfile


@dataclass(frozen=True)
class SetSource:
    """`sets.<name>`: one team's or application's requirements, resolved on their own."""

    name: str
    path: str  # relative to the desired-state directory, as written
    kind: SetKind = SetKind.REQUIREMENTS
    line: int | None = None  # of config.yaml, for messages


@dataclass(frozen=True)
class Config:
    """The whole validated `config.yaml`."""

    policy: Policy = field(default_factory=Policy)
    exceptions: tuple[PolicyException, ...] = ()
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    sets: tuple[SetSource, ...] = (SetSource(DEFAULT_SET, "requirements.txt"),)


@dataclass(frozen=True)
class DesiredState:
    """Requirements plus config, with a digest of every file they were read from.

    `requirements` are the lines whose marker holds for some target of `policy.environments`
    (repeats merged); `for_no_target` the lines left out because it holds for none.
    """

    requirements: tuple[Requirement, ...]  # of every set, each line naming its set
    config: Config
    digest: str
    root: str  # the directory, resolved
    location: str = "desired-state"  # the directory as the user named it, for messages
    for_no_target: tuple[Requirement, ...] = ()
    commit: str | None = None  # the git commit it was read at, where it is in git

    def of_set(self, name: str) -> tuple[Requirement, ...]:
        """The requirements of one set: an environment resolved on its own."""
        return tuple(r for r in self.requirements if r.set_name == name)


@dataclass(frozen=True, slots=True)  # slots: a plan holds ~100,000 of them
class UpstreamFile:
    """One distribution file as the upstream simple API describes it (PEP 691/700/592)."""

    filename: str
    url: str
    version: str
    sha256: str | None
    upload_time: datetime | None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    requires_python: str | None = None
    has_metadata: bool = False  # PEP 658: `<url>.metadata` holds the core metadata
    metadata_sha256: str | None = None

    def __hash__(self) -> int:
        # Files are set members by the thousand (a round's missing files, wheel choices): two
        # strings' cached hashes, not eleven fields.
        return hash((self.filename, self.sha256))


# A release's wheels' tags, united per Requires-Python (a release has one or a few).
WheelTagGroups = tuple[tuple[str | None, frozenset[Tag]], ...]


def wheel_tag_groups(files: Iterable[UpstreamFile]) -> WheelTagGroups:
    """The tags of the wheels among `files`, united per Requires-Python."""
    groups: dict[str | None, set[Tag]] = {}
    for upstream_file in files:
        if upstream_file.filename.endswith(".whl"):
            groups.setdefault(upstream_file.requires_python, set()).update(
                wheel_tags(upstream_file.filename)
            )
    return tuple((requires_python, frozenset(tags)) for requires_python, tags in groups.items())


@dataclass(frozen=True)
class UpstreamProject:
    """A project page from upstream; `status` is the PEP 792 project status, if any.

    `unreadable` says why a page upstream served could not be read (malformed, nested too
    deeply, an unknown API version): that project is blocked, the rest of the plan goes on.
    """

    name: str
    files: tuple[UpstreamFile, ...]
    status: str | None = None
    unreadable: str | None = None

    def releases(self) -> Mapping[Version, tuple[UpstreamFile, ...]]:
        """Files grouped by parsed version; files whose version cannot be parsed are left out."""
        return self._releases

    @cached_property
    def _releases(self) -> dict[Version, tuple[UpstreamFile, ...]]:
        # Grouped by the text first: a release's files share it, so each is parsed once.
        grouped: dict[str, list[UpstreamFile]] = {}
        for upstream_file in self.files:
            grouped.setdefault(upstream_file.version, []).append(upstream_file)
        releases: dict[Version, tuple[UpstreamFile, ...]] = {}
        for text, files in grouped.items():
            try:
                version = Version(text)
            except InvalidVersion:
                continue
            releases[version] = releases.get(version, ()) + tuple(files)  # 1.0 and 1.0.0
        return releases


# OSV ids of malicious-package reports: no ignore entry or exception can admit those.
MALICIOUS_PREFIX = "MAL-"


@dataclass(frozen=True)
class Advisory:
    """A known vulnerability (or malicious-package report) affecting one version."""

    id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    link: str = ""
    fixed_in: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        """The id and every alias."""
        return frozenset((self.id, *self.aliases))

    @property
    def malicious(self) -> bool:
        """An OSV malicious-package report (`MAL-`), under its own id or an alias."""
        return any(name.startswith(MALICIOUS_PREFIX) for name in self.names)

    def matches(self, advisory_id: str) -> bool:
        """Whether an id names this advisory, directly or through an alias."""
        return advisory_id in self.names

    def merged(self, other: Advisory) -> Advisory:
        """One advisory from two reports of it (a CVE, its GHSA, its PYSEC): names united.

        A malicious-package id stays the primary id, so no report can hide it.
        """
        first, second = (other, self) if other.id.startswith(MALICIOUS_PREFIX) else (self, other)
        return Advisory(
            id=first.id,
            aliases=tuple(sorted((first.names | second.names) - {first.id})),
            summary=first.summary or second.summary,
            link=first.link or second.link,
            fixed_in=tuple(dict.fromkeys((*first.fixed_in, *second.fixed_in))),
        )


class Cause(str, Enum):
    """Why an action exists, for machines: the drift report groups actions by it."""

    # quarantines
    ADVISORY = "advisory"
    YANKED = "yanked"
    VANISHED = "vanished"
    UPSTREAM_QUARANTINED = "upstream-quarantined"
    UPSTREAM_CHANGED = "upstream-changed"  # also an upload: new bytes admitted by exception
    # uploads
    NEW_REQUIREMENT = "new-requirement"
    NEW_VERSION = "new-version"  # a range selects another version: it matured, or was chosen
    NEW_DEPENDENCY = "new-dependency"
    REPLACEMENT = "replacement"  # in place of a version this plan quarantines
    RESTORED = "restored"
    MISSING_FROM_REGISTRY = "missing-from-registry"
    CHANGED_IN_REGISTRY = "changed-in-registry"
    YANK_CHANGED = "yank-changed"
    # retention: a version no longer desired, yanked until it is pruned
    RETAINED = "retained"
    # prunes
    SUPERSEDED = "superseded"  # its requirement selects another version now
    NOT_DESIRED = "not-desired"  # neither a requirement nor a dependency of one any more
    NOT_ADMITTED = "not-admitted"  # a file of a kept version that policy no longer admits


@dataclass(frozen=True)
class RegistryFile:
    """A file the registry holds, with the sha256 of its actual bytes and its yank marker."""

    name: str
    version: str
    filename: str
    sha256: str
    yanked: bool = False
    yanked_reason: str | None = None
    recorded_sha256: str | None = None  # what the index says: the bytes the mirror uploaded
    listed: bool = True  # False: bytes the registry serves by URL that no page lists
    # What the index says besides (PEP 700, data-requires-python), where the registry keeps it.
    requires_python: str | None = None
    upload_time: datetime | None = None
    size: int | None = None


@dataclass(frozen=True)
class QuarantineRecord:
    """A version the mirror removed for cause, kept so a later plan can say it is restored."""

    name: str
    version: str
    reason: str
    advisories: tuple[str, ...]
    at: datetime
    cause: Cause | None = None
    files: tuple[tuple[str, str], ...] = ()  # (filename, sha256) of what was removed

    def after(self, earlier: QuarantineRecord | None) -> QuarantineRecord:
        """This record, keeping what an earlier one of the version knew: a quarantine cut
        short and done again removes fewer files, and the bytes first taken (upstream
        changed) must never be forgotten."""
        if earlier is None:
            return self
        taken = dict(earlier.files)
        files = {**dict(self.files), **taken}
        changed = Cause.UPSTREAM_CHANGED in (self.cause, earlier.cause)
        return replace(
            self,
            cause=Cause.UPSTREAM_CHANGED if changed else self.cause,
            files=tuple(sorted(files.items())),
        )


@dataclass(frozen=True)
class ActualState:
    """Everything the registry holds right now.

    `generation` counts the applies that changed the registry and `last_plan` names the plan
    the latest one carried out, so a saved plan can tell its own partial work from anyone else's.
    """

    files: tuple[RegistryFile, ...]
    generation: int = 0
    last_plan: str | None = None
    applied_commit: str | None = None  # the desired state's commit the latest apply carried out
    quarantined: tuple[QuarantineRecord, ...] = ()
    keeps_index_metadata: bool = True  # False: yank markers and upload times are not served
    # The registry keeps yank markers (and their reasons) and lists them back, whether or not
    # it serves them to clients: where a retained version's date is kept.
    keeps_yanks: bool = True
    # A recorded view (a plan's, on GitLab): the files of this many packages come from the
    # record the last apply or drift wrote at `recorded_at`, not from a listing of their own.
    recorded_at: datetime | None = None
    recorded_packages: int = 0
    repairs: tuple[str, ...] = ()  # where pages and files disagree: the next apply mends them
    # Versions the registry lists but does not serve (and why): not held; an upload of the
    # version replaces them.
    unserved: tuple[str, ...] = ()

    def by_version(self) -> Mapping[tuple[str, str], dict[str, RegistryFile]]:
        """Files keyed by (canonical name, `version_key`), then by filename."""
        grouped: dict[tuple[str, str], dict[str, RegistryFile]] = {}
        for registry_file in self.files:
            key = (registry_file.name, version_key(registry_file.version))
            grouped.setdefault(key, {})[registry_file.filename] = registry_file
        return grouped

    def held(self) -> dict[tuple[str, str], str]:
        """sha256 of every file, keyed by (canonical name, filename): filenames are unique."""
        return {(f.name, f.filename): f.sha256 for f in self.files}

    def quarantine_record(self, name: str, version: str) -> QuarantineRecord | None:
        """Why and when this version was quarantined, if it was."""
        key = version_key(version)
        return next(
            (r for r in self.quarantined if r.name == name and version_key(r.version) == key),
            None,
        )


def version_key(version: str) -> str:
    """One spelling per PEP 440 version: `1.0` and `1.0.0` name the same release."""
    return canonicalize_version(version, strip_trailing_zero=True)


def parse_version(text: str) -> Version | None:
    """A PEP 440 version, or None for a spelling that is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def version_sort_key(version: str) -> tuple[int, Version | str]:
    """Sort key putting PEP 440 versions in order and unparsable ones first."""
    parsed = parse_version(version)
    return (0, version) if parsed is None else (1, parsed)


# The largest file the mirror takes. PyPI's largest files (CUDA wheels) are a few GiB; a size
# claimed past this is upstream's data gone wrong, and it sets how long a download may take.
MAX_FILE_SIZE = 8 * 1024**3


def is_sha256(text: str) -> bool:
    """A sha256 hex digest as indexes spell it (lower case): it names cache files and is
    compared with bytes, so it is checked for what it claims to be."""
    return _SHA256.fullmatch(text) is not None


def is_plain_filename(filename: str) -> bool:
    """A bare file name: no directory part, not hidden, nothing that could escape a folder."""
    return (
        bool(filename)
        and len(filename.encode()) <= 255  # the longest name a filesystem takes
        and "/" not in filename
        and "\\" not in filename
        and not filename.startswith(".")
        and "\0" not in filename
    )


def parse_distribution_filename(filename: str) -> tuple[str, str] | None:
    """(canonical project name, normalised version) of a wheel or sdist, else None.

    As `packaging.utils` reads them (PEP 427 and the sdist format), except that a wheel's tags
    are checked for shape only (three components, none empty, interpreters identifiers): which
    targets a wheel fits is read where a target asks (`targets.wheel_tags`). Called for every
    file of every page, so nothing is parsed twice: versions and names are cached.
    """
    if len(filename) > 255:  # no filesystem takes the name (nor do the caches below)
        return None
    if filename.endswith(".whl"):
        parts = wheel_parts(filename)
        if not parts or not _wheel_name(parts[0]) or not _tags_shaped("-".join(parts[-3:])):
            return None
        if len(parts) == 6 and _BUILD_TAG.fullmatch(parts[2]) is None:
            return None
        name, version = parts[0], parts[1]
    elif filename.endswith((".tar.gz", ".zip")):
        stem = filename[: -7 if filename.endswith(".tar.gz") else -4]
        name, dash, version = stem.rpartition("-")  # a PEP 440 version has no dash
        if not dash or not name:
            return None
    else:
        return None
    normal = _normal_version(version)
    return None if normal is None else (_canonical_name(name), normal)


# PEP 427: a wheel's name part is escaped to word characters, dots and underscores.
_WHEEL_NAME = re.compile(r"[\w._]+")
_BUILD_TAG = re.compile(r"\d.*", re.ASCII)  # a build tag starts with a digit
_SHA256 = re.compile(r"[0-9a-f]{64}")
_canonical_name = lru_cache(maxsize=1024)(canonicalize_name)


# A page's thousands of wheels repeat one name and a few dozen tag texts: each checked once.
@lru_cache(maxsize=1024)
def _wheel_name(text: str) -> bool:
    return "__" not in text and _WHEEL_NAME.fullmatch(text) is not None


@lru_cache(maxsize=1 << 12)
def _tags_shaped(text: str) -> bool:
    """Three dot-separated tag sets (python-abi-platform), none empty, interpreters
    identifiers."""
    components = [component.split(".") for component in text.split("-")]
    return all("" not in c for c in components) and all(i.isidentifier() for i in components[0])


@lru_cache(maxsize=1 << 14)
def _normal_version(text: str) -> str | None:
    """A version's normal form (PEP 440), None if it is none; each text parsed once."""
    try:
        return str(Version(text))
    except ValueError:  # InvalidVersion, or a number too long to convert
        return None


@dataclass(frozen=True)
class Blocked:
    """A requirement that cannot be served now, and why; a decision, not an error."""

    name: str
    requirement: str
    reason: Problem
    detail: str
    eligible_at: datetime | None = None
    advisories: tuple[str, ...] = ()
    set_name: str = DEFAULT_SET  # the requirement set of the blocked line
    source: str = ""  # its file and line, `teams/web.txt:3`


@dataclass(frozen=True)
class SetSummary:
    """One requirement set as a plan states it: its file and how many lines it holds."""

    name: str
    source: str  # the file, as the config names it
    requirements: int  # lines (a lock: entries) that apply to some target
    locked: bool = False


@dataclass(frozen=True)
class Retained:
    """A version no longer desired that the registry keeps, yanked, until a date."""

    name: str
    version: str
    until: date


@dataclass(frozen=True)
class Baseline:
    """What the target branch's desired state plans against the same registry (`mirror plan
    --against REF`): of a merge request's plan, the changes that are not the merge's own (versions
    maturing, upstream yanks) and that the reports mention in one line."""

    ref: str
    planned: frozenset[str]  # ids (`Action.id`) of the actions both plans make


@dataclass(frozen=True)
class Waiting:
    """A newer version a range would take once it matures, and when it becomes eligible."""

    name: str
    version: str
    eligible_at: datetime


@dataclass(frozen=True)
class PlannedFile:
    """One file an action touches: its sha256 before the action (None: absent) and after."""

    filename: str
    sha256: str
    before_sha256: str | None = None
    url: str | None = None
    size: int | None = None
    upload_time: datetime | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    metadata_sha256: str | None = None  # the registry's PEP 658 `.metadata` file, once written


class ActionKind(str, Enum):
    """What an action does to the registry."""

    UPLOAD = "upload"
    DELETE = "delete"


def download_size(actions: Iterable[Action]) -> int:
    """What the uploads among `actions` fetch from upstream (the sizes it gives): each file
    whose bytes the registry does not hold already."""
    return sum(
        f.size or 0
        for a in actions
        if a.kind is ActionKind.UPLOAD
        for f in a.files
        if f.before_sha256 != f.sha256
    )


class Change(str, Enum):
    """What an action does, in a word."""

    QUARANTINE = "quarantine"
    RETAIN = "retain"
    UPLOAD = "upload"
    DELETE = "delete"


class Section(str, Enum):
    """Where a change stands in a plan's reading order: what needs a decision first, then what
    the listed requirements change, then what they pull in, then what leaves."""

    DECISION = "decision"  # quarantines
    REQUIREMENTS = "requirements"  # listed requirements and lockfile entries
    DEPENDENCIES = "dependencies"  # what those pull in
    REMOVALS = "removals"  # no longer desired: deleted, or kept yanked until it is pruned


@dataclass(frozen=True)
class Action:
    """One change to the registry: upload or delete files of one version, with its reason.

    `quarantine` marks a delete for cause (advisory, yank, takedown): the reason says the cause,
    the reports say that it is a quarantine.
    """

    kind: ActionKind
    name: str
    version: str
    reason: str
    files: tuple[PlannedFile, ...]
    quarantine: bool = False
    advisories: tuple[str, ...] = ()
    cause: Cause | None = None  # None only in plans saved before causes were recorded
    required_by: tuple[str, ...] = ()  # for a dependency: the releases that need it
    targets: tuple[str, ...] = ()  # for an upload: the targets that install this version
    sets: tuple[str, ...] = ()  # for an upload: the requirement sets that need this version
    pulled_by: tuple[str, ...] = ()  # for a dependency: the listed projects that bring it in

    @property
    def change(self) -> Change:
        """What it does, in a word."""
        if self.quarantine:
            return Change.QUARANTINE
        if self.cause is Cause.RETAINED:
            return Change.RETAIN
        return Change.UPLOAD if self.kind is ActionKind.UPLOAD else Change.DELETE

    @property
    def id(self) -> str:
        """`upload-django-5.2.19`: the same in the plan file and every report of it."""
        return f"{self.change.value}-{self.name}-{self.version}"

    @property
    def section(self) -> Section:
        """Where the reports show it."""
        change = self.change
        if change is Change.QUARANTINE:
            return Section.DECISION
        if change in (Change.DELETE, Change.RETAIN):
            return Section.REMOVALS
        return Section.DEPENDENCIES if self.pulled_by else Section.REQUIREMENTS


@dataclass(frozen=True)
class Coverage:
    """One target the plan judged for: how many listed requirements apply to it, and which
    of those are blocked there."""

    target: str  # `3.12 linux`
    requirements: int
    blocked: tuple[str, ...] = ()  # requirement names


@dataclass(frozen=True)
class AdvisorySource:
    """When a vulnerability service answered, and from which data, for the audit trail."""

    service: ServiceName
    answered_at: datetime
    queried: int
    database: str | None = None  # the service's own date, version or ETag, where it gives one
    unanswered: int = 0  # versions the service had no record of (never admitted unchecked)


@dataclass(frozen=True)
class Plan:
    """The diff between desired and actual state, as saved by `mirror plan --out`."""

    created_at: datetime
    evaluated_at: datetime
    desired_digest: str
    actual_digest: str
    actions: tuple[Action, ...]
    blocked: tuple[Blocked, ...]
    warnings: tuple[str, ...] = ()
    advisory_sources: tuple[AdvisorySource, ...] = ()
    registry_generation: int = 0
    advisories: tuple[Advisory, ...] = ()  # every advisory an action or a blocked entry names
    waiting: tuple[Waiting, ...] = ()  # newer versions admitted requirements wait for
    repairs: tuple[str, ...] = ()  # where the registry's pages and files disagree
    coverage: tuple[Coverage, ...] = ()  # per target judged: what installs there
    download_bytes: int = 0  # what the uploads fetch (sizes upstream gives)
    held_bytes: int | None = None  # what the registry holds after the apply, where known
    sets: tuple[SetSummary, ...] = ()  # the requirement sets of the desired state
    retained: tuple[Retained, ...] = ()  # held, yanked, until pruned: no longer desired
    desired_commit: str | None = None  # the git commit of the desired state planned from
    min_age_days: int | None = None  # the policy's maturity period, which `waiting` waits out
    baseline: Baseline | None = None  # a merge request's plan: what its target plans anyway

    def own(self) -> tuple[Action, ...]:
        """The actions a reviewer of this plan decides on: all of them, unless a baseline says
        which its target branch plans anyway; a quarantine always (it needs eyes either way)."""
        if self.baseline is None:
            return self.actions
        planned = self.baseline.planned
        return tuple(a for a in self.actions if a.quarantine or a.id not in planned)

    def advisory(self, advisory_id: str) -> Advisory | None:
        """The details of an advisory the plan names."""
        return next((a for a in self.advisories if a.matches(advisory_id)), None)

    @property
    def id(self) -> str:
        """A stable identity for the plan, recorded by the registry while it is applied."""
        seed = (
            f"{self.desired_digest}\0{self.actual_digest}\0{self.registry_generation}\0"
            f"{self.created_at.isoformat()}"
        )
        return hashlib.sha256(seed.encode()).hexdigest()[:16]

    def count(self, kind: ActionKind) -> int:
        """How many actions of one kind the plan holds."""
        return sum(1 for action in self.actions if action.kind is kind)

    def only(self, kind: ActionKind) -> Plan:
        """The same plan with only the actions of one kind (`mirror-manager sync`/`audit`)."""
        return replace(self, actions=tuple(a for a in self.actions if a.kind is kind))

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan would change the registry (repairs included)."""
        return bool(self.actions or self.repairs)
