"""Read `config.yaml` into a frozen `Config`; every unknown key or bad value names its line."""

from __future__ import annotations

import re
import reprlib
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent

from reconciler.errors import UserError
from reconciler.model import (
    DEFAULT_ENVIRONMENTS,
    Config,
    DependencyMode,
    FilesPolicy,
    IgnoredAdvisory,
    Policy,
    PolicyException,
    RegistryConfig,
    RegistryType,
    SafetyConfig,
    ServiceName,
    SetKind,
    SetSource,
    UpstreamConfig,
    WheelChoice,
    YankedPolicy,
)
from reconciler.targets import TargetEnvironment, parse_platform

T = TypeVar("T")

# The longest maturity period: a century (a larger one would overflow date arithmetic).
MAX_DAYS = 36500


class _Reader:
    """Typed access to a YAML mapping that reports file, line and dotted key on every error."""

    def __init__(
        self, display: str, mapping: CommentedMap, prefix: str, line: int, source: list[str]
    ) -> None:
        self.display = display
        self.mapping = mapping
        self.prefix = prefix
        self.line = line
        self.source = source  # the file's lines, to quote what the user wrote

    def version_text(self, key: str, example: str) -> str:
        """A version as text. YAML reads `3.10` as the number 3.1: refuse a number, quoting
        what the file says (after any anchor or tag)."""
        value = self.mapping.get(key)
        if value is None or isinstance(value, str):
            return value or ""
        line, column = self.mapping.lc.value(key)
        written = re.match(r"(?:[&!]\S*\s+)*([^\s,}\]#]+)", self.source[line][column:])
        shown = written.group(1) if written else str(value)
        if isinstance(value, float) and not shown.startswith("*"):
            raise self.error(key, f'quote the version, e.g. "{shown}"')
        raise self.error(key, f'expected a version in quotes, like "{example}", got {shown}')

    def error(self, key: str | None, message: str) -> UserError:
        """A UserError located at `key` (or at the mapping itself)."""
        dotted = f"{self.prefix}{key}" if key else self.prefix.rstrip(".")
        return UserError(message, path=self.display, line=self.key_line(key), key=dotted or None)

    def key_line(self, key: str | None) -> int:
        """1-based line of a key, or of the mapping when the key is absent."""
        if key is not None and key in self.mapping:
            return int(self.mapping.lc.key(key)[0]) + 1
        return self.line

    def check_keys(self, allowed: set[str]) -> None:
        """Refuse keys we do not know: a typo must not silently weaken policy."""
        for key in self.mapping:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(str(key), f"unknown key (expected one of: {known})")

    def get(self, key: str, kind: type[T], default: T) -> T:
        """The value of `key` checked against `kind`, or `default` when absent."""
        if key not in self.mapping or self.mapping[key] is None:
            return default
        value = self.mapping[key]
        # bool is an int in Python; a `true` where a number belongs is still a mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"expected {kind.__name__}, got {_shown(value)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """A string that must be one of `choices`."""
        value = self.get(key, str, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {_shown(value)}")
        return value

    def child(self, key: str) -> _Reader | None:
        """A reader for a nested mapping, or None when the key is absent."""
        if key not in self.mapping or self.mapping[key] is None:
            return None
        value = self.mapping[key]
        if not isinstance(value, CommentedMap):
            raise self.error(key, "expected a mapping")
        return _Reader(self.display, value, f"{self.prefix}{key}.", self.key_line(key), self.source)

    def items(self, key: str) -> list[_Reader]:
        """Readers for a list of mappings."""
        if key not in self.mapping or self.mapping[key] is None:
            return []
        value = self.mapping[key]
        if not isinstance(value, CommentedSeq):
            raise self.error(key, "expected a list")
        readers = []
        for index, item in enumerate(value):
            line = int(value.lc.item(index)[0]) + 1
            if not isinstance(item, CommentedMap):
                raise UserError(
                    "expected a mapping",
                    path=self.display,
                    line=line,
                    key=f"{self.prefix}{key}[{index}]",
                )
            prefix = f"{self.prefix}{key}[{index}]."
            readers.append(_Reader(self.display, item, prefix, line, self.source))
        return readers

    def required_str(self, key: str) -> str:
        """A non-empty string that must be present."""
        value = self.get(key, str, "")
        if not value.strip():
            raise self.error(key, "is required")
        return value

    def optional_date(self, key: str) -> date | None:
        """A YAML date (2027-03-01); ruamel parses unquoted ISO dates itself."""
        value = self.mapping.get(key)
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, f"expected a date like 2027-03-01, got {_shown(value)}")


def load_config(path: Path, display: str) -> Config:
    """Parse and validate `config.yaml`; a missing file means every default."""
    if not path.exists():
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
        _refuse_aliases(text, display)
        document = YAML(typ="rt").load(text)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read: {error}", path=display) from None
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"invalid YAML: {problem}", path=display, line=line) from error
    if document is None:
        return Config()
    if not isinstance(document, CommentedMap):
        raise UserError("expected a mapping at the top level", path=display, line=1)
    root = _Reader(display, document, "", 1, text.splitlines())
    root.check_keys({"policy", "exceptions", "upstream", "registry", "sets"})
    return Config(
        policy=_policy(root.child("policy")),
        exceptions=tuple(_exception(item) for item in root.items("exceptions")),
        upstream=_upstream(root.child("upstream")),
        registry=_registry(root.child("registry")),
        sets=_sets(root, root.child("sets")) or Config().sets,
    )


def _refuse_aliases(text: str, display: str) -> None:
    """A config needs no YAML aliases, and a few nested ones expand to gigabytes (a "billion
    laughs"): refuse the first, with its line, before anything is built."""
    for event in YAML().parse(text):
        if isinstance(event, AliasEvent):
            raise UserError(
                f"YAML aliases (*{event.anchor}) are not allowed in the config; write the value",
                path=display,
                line=event.start_mark.line + 1,
            )


def _shown(value: object) -> str:
    """A value for an error message, cut short: it may be anything the file says."""
    return reprlib.repr(value)


def _policy(reader: _Reader | None) -> Policy:
    if reader is None:
        return Policy()
    reader.check_keys(
        {
            "min_age_days",
            "fix_min_age_days",
            "yanked",
            "prune",
            "retain_days",
            "max_deletions",
            "vulnerabilities",
            "dependencies",
            "environments",
            "files",
        }
    )
    defaults = Policy()
    min_age_days = reader.get("min_age_days", int, defaults.min_age_days)
    if not 0 <= min_age_days <= MAX_DAYS:
        raise reader.error("min_age_days", f"must be between 0 and {MAX_DAYS}")
    fix_min_age_days = reader.get("fix_min_age_days", int, min_age_days)
    if not 0 <= fix_min_age_days <= min_age_days:
        raise reader.error(
            "fix_min_age_days", f"must be between 0 and min_age_days ({min_age_days})"
        )
    retain_days = reader.get("retain_days", int, defaults.retain_days)
    if not 0 <= retain_days <= MAX_DAYS:
        raise reader.error("retain_days", f"must be between 0 and {MAX_DAYS}")
    max_deletions = reader.get("max_deletions", int, defaults.max_deletions)
    if max_deletions < 0:
        raise reader.error("max_deletions", "must be 0 or more")
    dependencies = DependencyMode(
        reader.choice("dependencies", tuple(m.value for m in DependencyMode), defaults.dependencies)
    )
    services, ignore, safety = _vulnerabilities(reader.child("vulnerabilities"))
    return Policy(
        min_age_days=min_age_days,
        fix_min_age_days=fix_min_age_days if "fix_min_age_days" in reader.mapping else None,
        yanked=YankedPolicy(reader.choice("yanked", tuple(p.value for p in YankedPolicy), "block")),
        prune=reader.get("prune", bool, defaults.prune),
        retain_days=retain_days,
        max_deletions=max_deletions,
        services=services,
        ignore=ignore,
        safety=safety,
        dependencies=dependencies,
        environments=_environments(reader),
        files=_files(reader.child("files")),
    )


def _vulnerabilities(
    reader: _Reader | None,
) -> tuple[tuple[ServiceName, ...], tuple[IgnoredAdvisory, ...], SafetyConfig]:
    if reader is None:
        return Policy().services, (), SafetyConfig()
    reader.check_keys({"services", "ignore", "safety"})
    raw_services = reader.mapping.get("services", [ServiceName.OSV.value])
    if not isinstance(raw_services, list) or not raw_services:
        raise reader.error("services", "expected a non-empty list, e.g. [osv]")
    known = tuple(s.value for s in ServiceName)
    for service in raw_services:
        if service not in known:
            raise reader.error(
                "services", f"unknown service {_shown(service)} (available: {', '.join(known)})"
            )
    services = tuple(dict.fromkeys(ServiceName(service) for service in raw_services))
    ignore = tuple(
        IgnoredAdvisory(
            id=item.required_str("id").strip(),
            reason=item.required_str("reason"),
            expires=item.optional_date("expires"),
        )
        for item in _checked(reader.items("ignore"), {"id", "reason", "expires"})
    )
    safety = _safety(reader.child("safety"))
    if ServiceName.SAFETY in services and not (safety.database or safety.api_key_env):
        raise reader.error(
            "services",
            "the safety service needs policy.vulnerabilities.safety.database (an offline "
            "database directory) or .api_key_env (the variable holding an API key)",
        )
    return services, ignore, safety


def _safety(reader: _Reader | None) -> SafetyConfig:
    if reader is None:
        return SafetyConfig()
    reader.check_keys({"database", "api_key_env"})
    database = reader.get("database", str, "") or None
    api_key_env = reader.get("api_key_env", str, "") or None
    if database and api_key_env:
        raise reader.error("api_key_env", "give database or api_key_env, not both")
    if api_key_env is not None and not api_key_env.replace("_", "").isalnum():
        # The name of a variable, never the key itself: a key must not live in git.
        raise reader.error("api_key_env", "expected the name of an environment variable")
    return SafetyConfig(database=database, api_key_env=api_key_env)


def _environments(reader: _Reader) -> tuple[TargetEnvironment, ...]:
    """`policy.environments`: the CPython versions and platforms the mirror serves."""
    items = _checked(reader.items("environments"), {"python", "platform"})
    if "environments" in reader.mapping and not items:
        raise reader.error("environments", "expected at least one environment")
    environments = []
    for item in items:
        python = item.version_text("python", "3.12")
        if not re.fullmatch(r"3\.\d{1,2}", python):
            raise item.error(
                "python", f'expected a CPython version like "3.12", got {_shown(python)}'
            )
        name = item.get("platform", str, "linux")
        platform = parse_platform(name)
        if platform is None:
            raise item.error(
                "platform",
                f"unknown platform {_shown(name)}: expected a name uv's --python-platform takes "
                "(linux, macos, windows, x86_64-manylinux_2_28, aarch64-apple-darwin, "
                "x86_64-pc-windows-msvc, x86_64-musllinux_1_2, ...)",
            )
        environments.append(TargetEnvironment(python, platform))
    return tuple(environments) or DEFAULT_ENVIRONMENTS


def _files(reader: _Reader | None) -> FilesPolicy:
    if reader is None:
        return FilesPolicy()
    reader.check_keys({"sdist", "wheels"})
    wheels = reader.mapping.get("wheels", WheelChoice.TARGETS.value)
    sdist = reader.get("sdist", bool, True)
    if isinstance(wheels, list) and wheels and all(isinstance(tag, str) for tag in wheels):
        return FilesPolicy(sdist, WheelChoice.TARGETS, tuple(wheels))
    try:
        return FilesPolicy(sdist, WheelChoice(wheels))
    except ValueError:
        raise reader.error(
            "wheels",
            "expected 'targets' (the wheel each target installs), 'all', or a list of tag "
            f"patterns like [manylinux*, win_amd64, any]; got {_shown(wheels)}",
        ) from None


def _sets(root: _Reader, reader: _Reader | None) -> tuple[SetSource, ...]:
    """`sets`: name -> file, relative to the desired state; its kind follows its name."""
    if reader is None:
        if "sets" in root.mapping:  # `sets:` and nothing: not "requirements.txt" by accident
            raise root.error("sets", "expected at least one set: name: path")
        return ()
    found = []
    for key in reader.mapping:
        name = str(key)
        if not isinstance(key, str) or not re.fullmatch(
            r"[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?", name
        ):
            raise UserError(
                "a set's name is lower-case letters and digits, with '.', '_', '-' inside",
                path=reader.display,
                line=int(reader.mapping.lc.key(key)[0]) + 1,
                key=f"sets.{name}",
            )
        path = reader.required_str(name)
        parts = PurePosixPath(path).parts
        if (
            not parts
            or path.startswith(("/", "\\"))
            or ".." in parts
            or "\\" in path
            or ":" in path
        ):
            raise reader.error(
                name, f"expected a path inside the desired state, got {_shown(path)}"
            )
        kind = _set_kind(reader, name, parts[-1])
        found.append(SetSource(name, path, kind, reader.key_line(name)))
    if not found:
        raise reader.error(None, "expected at least one set: name: path")
    return tuple(found)


def _set_kind(reader: _Reader, name: str, filename: str) -> SetKind:
    if filename == "uv.lock":
        return SetKind.UV_LOCK
    if re.fullmatch(r"pylock\.([^.]+\.)?toml", filename):
        return SetKind.PYLOCK
    if filename.endswith((".txt", ".in")):
        return SetKind.REQUIREMENTS
    raise reader.error(
        name,
        f"{_shown(filename)}: expected a requirements file (*.txt, *.in), a PEP 751 lock "
        "(pylock.toml, pylock.<name>.toml) or uv.lock",
    )


def _exception(reader: _Reader) -> PolicyException:
    reader.check_keys({"package", "version", "reason", "expires"})
    raw_version = reader.version_text("version", "1.2.3")
    try:
        version = Version(raw_version)
    except InvalidVersion:
        raise reader.error("version", f"not a valid version: {_shown(raw_version)}") from None
    return PolicyException(
        package=canonicalize_name(reader.required_str("package")),
        version=version,
        reason=reader.required_str("reason"),
        expires=reader.optional_date("expires"),
    )


def _upstream(reader: _Reader | None) -> UpstreamConfig:
    if reader is None:
        return UpstreamConfig()
    reader.check_keys({"index_url", "json_url", "osv_url"})
    defaults = UpstreamConfig()
    urls = {
        key: _url(reader, key, getattr(defaults, key))
        for key in ("index_url", "json_url", "osv_url")
    }
    return UpstreamConfig(**urls)


def _registry(reader: _Reader | None) -> RegistryConfig:
    if reader is None:
        return RegistryConfig()
    reader.check_keys({"type", "path"})
    kind = reader.choice("type", tuple(t.value for t in RegistryType), "directory")
    return RegistryConfig(type=RegistryType(kind), path=reader.get("path", str, "registry"))


def _url(reader: _Reader, key: str, default: str) -> str:
    value = reader.get(key, str, default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise reader.error(key, f"expected an http(s) URL, got {_shown(value)}")
    if parts.username or parts.password:
        raise reader.error(key, "credentials in URLs are refused: they would end up in plans")
    return value


def _checked(readers: list[_Reader], allowed: set[str]) -> list[_Reader]:
    for reader in readers:
        reader.check_keys(allowed)
    return readers
