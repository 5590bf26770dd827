"""Target platforms: what a Python on an operating system and architecture can install.

A platform is named as uv's `--python-platform` names it (`linux`, `x86_64-manylinux_2_28`,
`aarch64-apple-darwin`, `x86_64-pc-windows-msvc`, ...), and means what uv means by it (uv's
`crates/uv-configuration/src/target_triple.rs`): `linux` is x86_64 with glibc 2.17
(manylinux2014), `macos` is arm64 macOS 13.0, `windows` is x86_64. From it follow the PEP 508
marker values and the wheel platform tags, most preferred first, as pip computes them
(`packaging.tags`), so that the mirror keeps what pip or uv on that target would install.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from functools import cached_property, lru_cache

from packaging import tags
from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet


class OperatingSystem(str, Enum):
    """The operating systems a target runs."""

    LINUX = "linux"
    MACOS = "macos"
    WINDOWS = "windows"


@dataclass(frozen=True)
class Platform:
    """An operating system, an architecture, and the oldest system library its wheels may
    need: glibc (manylinux, PEP 600) or musl (musllinux, PEP 656) on Linux, the macOS
    version on macOS."""

    name: str  # as written in `policy.environments`, for messages
    system: OperatingSystem
    machine: str  # x86_64, aarch64 or i686
    baseline: tuple[int, int] = (0, 0)  # glibc, musl or macOS (major, minor)
    musl: bool = False

    def markers(self) -> dict[str, str]:
        """The PEP 508 marker values of this platform (CPython's own spellings)."""
        if self.system is OperatingSystem.WINDOWS:
            machine = {"x86_64": "AMD64", "aarch64": "ARM64", "i686": "x86"}[self.machine]
            return {
                "sys_platform": "win32",
                "platform_system": "Windows",
                "os_name": "nt",
                "platform_machine": machine,
            }
        if self.system is OperatingSystem.MACOS:
            machine = "arm64" if self.machine == "aarch64" else self.machine
            return {
                "sys_platform": "darwin",
                "platform_system": "Darwin",
                "os_name": "posix",
                "platform_machine": machine,
            }
        return {
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": self.machine,
        }

    def platform_tags(self) -> list[str]:
        """Wheel platform tags this platform installs, most preferred first."""
        if self.system is OperatingSystem.WINDOWS:
            return [{"x86_64": "win_amd64", "aarch64": "win_arm64", "i686": "win32"}[self.machine]]
        if self.system is OperatingSystem.MACOS:
            arch = "arm64" if self.machine == "aarch64" else self.machine
            return list(tags.mac_platforms(self.baseline, arch))
        major, newest = self.baseline
        if self.musl:  # PEP 656: musllinux_1_N down to musllinux_1_0
            found = [f"musllinux_{major}_{minor}_{self.machine}" for minor in range(newest, -1, -1)]
        else:
            found = _manylinux_tags(newest, self.machine)
        return [*found, f"linux_{self.machine}"]


# PEP 600's legacy aliases: manylinux2014 is glibc 2.17, manylinux2010 2.12, manylinux1 2.5.
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def _manylinux_tags(newest: int, machine: str) -> list[str]:
    """manylinux_2_N down to the oldest glibc built for the architecture, with the aliases
    (as `packaging.tags._manylinux.platform_tags` orders them)."""
    oldest = 5 if machine in ("x86_64", "i686") else 17
    found = []
    for minor in range(newest, oldest - 1, -1):
        found.append(f"manylinux_2_{minor}_{machine}")
        if minor in _LEGACY_MANYLINUX:
            found.append(f"{_LEGACY_MANYLINUX[minor]}_{machine}")
    return found


_MACOS = (13, 0)  # uv's default deployment target: the oldest macOS still supported
_WINDOWS = {"x86_64", "aarch64", "i686"}
_NAMED = {
    "linux": Platform("linux", OperatingSystem.LINUX, "x86_64", (2, 17)),
    "macos": Platform("macos", OperatingSystem.MACOS, "aarch64", _MACOS),
    "windows": Platform("windows", OperatingSystem.WINDOWS, "x86_64"),
    "x86_64-unknown-linux-gnu": Platform("", OperatingSystem.LINUX, "x86_64", (2, 17)),
    "aarch64-unknown-linux-gnu": Platform("", OperatingSystem.LINUX, "aarch64", (2, 17)),
    "x86_64-unknown-linux-musl": Platform("", OperatingSystem.LINUX, "x86_64", (1, 2), True),
    "aarch64-unknown-linux-musl": Platform("", OperatingSystem.LINUX, "aarch64", (1, 2), True),
    "aarch64-apple-darwin": Platform("", OperatingSystem.MACOS, "aarch64", _MACOS),
    "x86_64-apple-darwin": Platform("", OperatingSystem.MACOS, "x86_64", _MACOS),
    **{
        f"{machine}-pc-windows-msvc": Platform("", OperatingSystem.WINDOWS, machine)
        for machine in _WINDOWS
    },
}
_LINUX_LIBC = re.compile(
    r"(?P<machine>x86_64|aarch64|i686)-(?:(?P<legacy>manylinux2014)"
    r"|manylinux_2_(?P<glibc>\d{1,3})|musllinux_1_(?P<musl>\d{1,3}))"
)


def parse_platform(name: str) -> Platform | None:
    """The platform a name means (uv's `--python-platform` names, and `<arch>-manylinux_2_N`
    or `<arch>-musllinux_1_N` for any baseline); None for a name it does not know."""
    known = _NAMED.get(name)
    if known is not None:
        return Platform(name, known.system, known.machine, known.baseline, known.musl)
    match = _LINUX_LIBC.fullmatch(name)
    if match is None:
        return None
    machine = match["machine"]
    if match["musl"] is not None:
        return Platform(name, OperatingSystem.LINUX, machine, (1, int(match["musl"])), True)
    glibc = 17 if match["legacy"] else int(match["glibc"])
    if glibc < 5:
        return None
    return Platform(name, OperatingSystem.LINUX, machine, (2, glibc))


def platform_names() -> list[str]:
    """The names `parse_platform` knows by heart (besides any manylinux/musllinux baseline)."""
    return list(_NAMED)


def wheel_parts(filename: str) -> list[str]:
    """A wheel file name's dash-separated parts (PEP 427: name, version, optional build tag,
    python, abi, platform), or none when it is not shaped like a wheel's."""
    parts = filename[:-4].split("-") if filename.endswith(".whl") else []
    return parts if len(parts) in (5, 6) else []


def wheel_tags(filename: str) -> frozenset[tags.Tag]:
    """The tags a wheel's file name declares (its last three parts), none when it is not
    shaped like a wheel's; each distinct tag text read once per plan (a project's thousands
    of wheels repeat a few dozen)."""
    parts = wheel_parts(filename)
    return _parsed_tags("-".join(parts[-3:])) if parts else frozenset()


# The most tags a wheel's compressed tag set may expand to (real ones: a few dozen at most).
MAX_WHEEL_TAGS = 256


@lru_cache(maxsize=1 << 12)
def _parsed_tags(text: str) -> frozenset[tags.Tag]:
    if math.prod(len(part.split(".")) for part in text.split("-")) > MAX_WHEEL_TAGS:
        return frozenset()  # not a wheel any installer would take: fits no target
    try:
        return tags.parse_tag(text)
    except ValueError:  # packaging's InvalidTag: an empty or malformed component
        return frozenset()


@dataclass(frozen=True)
class TargetEnvironment:
    """One CPython version on one platform that the mirror's users install on
    (`policy.environments`)."""

    python: str  # "3.12"
    platform: Platform

    def __str__(self) -> str:
        return f"{self.python} {self.platform.name}"

    def markers(self) -> dict[str, str]:
        """The PEP 508 marker environment of this target."""
        return {
            **self.platform.markers(),
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "implementation_version": f"{self.python}.0",
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_version": "",
        }

    @cached_property
    def _marker_environment(self) -> dict[str, str]:
        return {**self.markers(), "extra": ""}

    def satisfies(self, marker: Marker) -> bool:
        """Whether a PEP 508 marker holds on this target, outside any extra; one it cannot
        judge holds (the mirror would rather hold a dependency than miss it)."""
        try:
            return marker.evaluate(self._marker_environment)
        except (UndefinedComparison, UndefinedEnvironmentName):
            return True

    @cached_property
    def _tag_ranks(self) -> dict[tags.Tag, int]:
        version = tuple(int(part) for part in self.python.split("."))
        platforms = self.platform.platform_tags()
        interpreter = f"cp{version[0]}{version[1]}"
        supported = [
            *tags.cpython_tags(version, platforms=platforms),
            *tags.compatible_tags(version, interpreter, platforms),
        ]
        return {tag: rank for rank, tag in reversed(list(enumerate(supported)))}

    @cached_property
    def _tags(self) -> frozenset[tags.Tag]:
        return frozenset(self._tag_ranks)

    def installs(self, filename: str) -> bool:
        """Whether this target can install a wheel (of any tag it supports)."""
        return self.installs_any(wheel_tags(filename))

    def installs_any(self, wheel_tags: frozenset[tags.Tag]) -> bool:
        """Whether this target supports any of these tags (of one or more wheels)."""
        return not wheel_tags.isdisjoint(self._tags)

    def wheel_rank(self, filename: str) -> int | None:
        """How much this target prefers a wheel (0 is best, as pip orders tags), or None
        when it cannot install it at all (or the name is not a wheel's)."""
        ranks = self._tag_ranks
        return min((ranks[tag] for tag in wheel_tags(filename) if tag in ranks), default=None)

    @cached_property
    def _allowed(self) -> dict[str, bool]:
        return {}  # by Requires-Python text: a project's releases repeat a few of them

    def allows(self, requires_python: str | None) -> bool:
        """Whether this target's Python meets a Requires-Python (PEP 345); one that cannot
        be read allows it, as pip does."""
        if not requires_python:
            return True
        if requires_python not in self._allowed:
            try:
                specifier = SpecifierSet(requires_python)
            except InvalidSpecifier:
                self._allowed[requires_python] = True
            else:
                version = f"{self.python}.0"
                self._allowed[requires_python] = specifier.contains(version, prereleases=True)
        return self._allowed[requires_python]
