"""Shared factories and fixtures: plain-data builders for the pure core, real local servers."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from typer.testing import CliRunner, Result

from reconciler.cli import manager_app, mirror_app
from reconciler.http import RetryPolicy
from reconciler.model import (
    Config,
    DependencyMode,
    DesiredState,
    Policy,
    Requirement,
    SourceLocation,
    UpstreamFile,
    UpstreamProject,
)
from reconciler.wiring import Runtime
from tests.servers.osv import FakeOsv
from tests.servers.upstream import FakeUpstream

# The tests start some forty fresh interpreters (the real `mirror`, pip, uv): let them keep
# compiled modules, or each compiles every module it imports again (an environment may set
# PYTHONDONTWRITEBYTECODE).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

FROZEN_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
NOW_ARG = "2026-11-24T12:00:00Z"


def frozen_clock() -> datetime:
    """The tests' wall clock: it always reads FROZEN_NOW, so records carry a known instant."""
    return FROZEN_NOW


def fast_retries(waits: list[float] | None = None, sleeps: bool = False) -> RetryPolicy:
    """Production's retry counts without the waiting (unless `sleeps`); `waits` records what
    would be slept."""

    def wait(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)
        if sleeps:
            time.sleep(seconds)

    return RetryPolicy(sleep=wait)


def days_ago(days: float) -> datetime:
    return FROZEN_NOW - timedelta(days=days)


def wall_days_ago(days: float) -> datetime:
    """For tests that run the real `mirror` process, which judges by the machine's clock."""
    return datetime.now(timezone.utc) - timedelta(days=days)


def make_requirement(text: str, hashes: tuple[str, ...] = ()) -> Requirement:
    """A requirement from `name<specifier>` text."""
    index = next((i for i, c in enumerate(text) if c in "<>=!~"), len(text))
    name = text[:index].strip()
    return Requirement(
        name=canonicalize_name(name),
        specifier=SpecifierSet(text[index:]),
        text=text,
        source=SourceLocation("desired-state/requirements.txt", 1),
        hashes=frozenset(hashes),
    )


def make_file(
    name: str,
    version: str,
    uploaded: datetime | None,
    kind: str = "wheel",
    yanked: bool = False,
    sha256: str | None = None,
) -> UpstreamFile:
    module = name.replace("-", "_")
    filename = (
        f"{module}-{version}-py3-none-any.whl" if kind == "wheel" else f"{module}-{version}.tar.gz"
    )
    return UpstreamFile(
        filename=filename,
        url=f"https://files.example/{filename}",
        version=version,
        sha256=sha256 or hashlib.sha256(filename.encode()).hexdigest(),
        upload_time=uploaded,
        yanked=yanked,
        size=100,
    )


def make_project(name: str, *files: UpstreamFile, status: str | None = None) -> UpstreamProject:
    return UpstreamProject(name=name, files=tuple(files), status=status)


def make_config(**policy: Any) -> Config:
    """A config for plain-data tests; they judge listed requirements unless they ask for the
    closure (which needs core metadata as data too), and prune at once unless they ask for
    retention."""
    exceptions = policy.pop("exceptions", ())
    policy.setdefault("dependencies", DependencyMode.LISTED)
    policy.setdefault("retain_days", 0)
    return Config(policy=Policy(**policy), exceptions=tuple(exceptions))


def make_desired(*requirements: Requirement, config: Config | None = None) -> DesiredState:
    return DesiredState(
        requirements=requirements, config=config or make_config(), digest="sha256:d", root="/x"
    )


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def osv() -> Iterator[FakeOsv]:
    with FakeOsv() as server:
        yield server  # type: ignore[misc]


@dataclass
class Workspace:
    """A repository checkout: desired-state/ pointing at the local fakes, and a registry dir."""

    root: Path
    upstream: FakeUpstream
    osv: FakeOsv
    policy: dict[str, Any] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)  # retry waits the commands asked for
    elapsed: timedelta = timedelta()  # how far the wall clock has moved past FROZEN_NOW
    sleeps: bool = False  # waits are slept too: for a fake that keeps real time (a throttle)

    @property
    def runtime(self) -> Runtime:
        """The frozen clock (moved on by `elapsed`), and retries that record their waits
        instead of sleeping (unless `sleeps`)."""
        instant = FROZEN_NOW + self.elapsed
        return Runtime(clock=lambda: instant, retries=fast_retries(self.waits, self.sleeps))

    @property
    def desired(self) -> Path:
        return self.root / "desired-state"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    def requirements(self, text: str) -> None:
        self.desired.mkdir(exist_ok=True)
        (self.desired / "requirements.txt").write_text(text)

    def config(self, policy: str = "", extra: str = "", retain_days: int | None = 0) -> None:
        """The desired state's config.yaml: the fakes as upstream, a directory registry, and
        pruning at once unless a test asks for retention (None: the product's default)."""
        self.desired.mkdir(exist_ok=True)
        retention = f"  retain_days: {retain_days}\n" if retain_days is not None else ""
        (self.desired / "config.yaml").write_text(
            "policy:\n  min_age_days: 14\n"
            + retention
            + policy
            + f"upstream:\n  index_url: {self.upstream.index_url}\n"
            f"  osv_url: {self.osv.url}\n"
            f"  json_url: {self.upstream.url}/pypi\n"
            f"registry:\n  type: directory\n  path: registry\n" + extra
        )

    def mirror(self, *args: str, now: str | None = NOW_ARG, input: str | None = None) -> Result:
        return self._invoke(mirror_app, args, now, input)

    def manager(self, *args: str, now: str | None = NOW_ARG) -> Result:
        return self._invoke(manager_app, args, now, None)

    def _invoke(
        self, app: Any, args: tuple[str, ...], now: str | None, input: str | None
    ) -> Result:
        extra = ["--desired-state", str(self.desired)]
        if now == NOW_ARG and self.elapsed:
            now = (FROZEN_NOW + self.elapsed).isoformat()
        if now is not None and args[0] not in ("show", "force-unlock", "init", "serve"):
            extra += ["--now", now]
        if args[0] in ("show", "comment"):  # they read a saved plan, not the desired state
            extra = []
        return CliRunner().invoke(app, [*args, *extra], input=input, obj=self.runtime)


@pytest.fixture
def workspace(
    tmp_path: Path, upstream: FakeUpstream, osv: FakeOsv, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    monkeypatch.setenv("MIRROR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    space = Workspace(tmp_path, upstream, osv)
    space.config()
    space.requirements("")
    return space
