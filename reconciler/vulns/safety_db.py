"""The `safety` package's vulnerability database (the optional `safety` extra).

Never through safety's CLI (which needs the network even with `--db`). An offline database
directory is one JSON file, `insecure_full.json`, read here as safety's `fetch_database_file`
reads it (without importing safety: half a second and 28 MB of a plan). The database downloaded
with an API key goes through safety's library, imported only then: the import is slow and noisy.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from reconciler.errors import UserError
from reconciler.jsondata import loads
from reconciler.model import Advisory, ServiceName, version_sort_key
from reconciler.vulns.interface import (
    PackageVersion,
    ServiceAnswer,
    ServiceError,
    VulnerabilityService,
    summary,
)

DATABASE_FILE = "insecure_full.json"
# The commercial database is tens of megabytes; a file far past that is not one.
MAX_DATABASE_BYTES = 256 << 20
# Where `more_info_path` leads when the database names no `base_domain` (safety's own default,
# safety/safety.py).
DEFAULT_BASE_DOMAIN = "https://data.safetycli.com"
INSTALL_HINT = "pip install 'pypi-delayed-mirror[safety]'"

Database = Mapping[str, Any]


class SafetyService(VulnerabilityService):
    """Advisories from a safety database, loaded once per plan by `load`."""

    name = ServiceName.SAFETY

    def __init__(self, load: Callable[[], Database]) -> None:
        self.load = load

    @classmethod
    def from_directory(cls, directory: Path) -> SafetyService:
        """The offline database in `directory` (as safety's `--db` expects it)."""

        def load() -> Database:
            path = directory.expanduser() / DATABASE_FILE
            try:
                with path.open("rb") as stream:
                    data = stream.read(MAX_DATABASE_BYTES + 1)
                if len(data) > MAX_DATABASE_BYTES:
                    raise ValueError(f"{path} is over {MAX_DATABASE_BYTES} bytes")
                database = loads(data)
                if not isinstance(database, dict):
                    raise ValueError(f"{path} is not a JSON object")
            except (OSError, ValueError) as error:
                raise ServiceError(
                    f"safety database in {directory} could not be read: {error}"
                ) from None
            return database

        return cls(load)

    @classmethod
    def from_api_key(cls, api_key: str, mirror: str | None = None) -> SafetyService:
        """The database from safety's data API, authenticated by an API key.

        The key goes only in the `X-Api-Key` header to safety's own host (or `mirror`).
        """
        fetch = _safety_function("fetch_database_url")
        import httpx
        from safety.constants import API_MIRRORS

        url = mirror or API_MIRRORS[0]

        def load() -> Database:
            try:
                with _quiet(), httpx.Client(headers={"X-Api-Key": api_key}) as client:
                    database: Database = fetch(
                        client, url, DATABASE_FILE, cached=0, telemetry=False, from_cache=False
                    )
            except Exception as error:  # noqa: BLE001 - any failure means no answer
                raise ServiceError(
                    f"safety database could not be downloaded: {type(error).__name__}"
                ) from None
            return database

        return cls(load)

    def query(self, packages: Sequence[PackageVersion]) -> ServiceAnswer:
        """Advisories whose affected-version specifiers contain each version."""
        database = self.load()
        try:
            findings, stamp = _findings(database, packages)
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ServiceError(f"safety database is malformed: {error!r}") from None
        return ServiceAnswer(
            service=self.name,
            findings=findings,
            database=f"last updated {stamp}" if stamp else None,
        )


def _findings(
    database: Database, packages: Sequence[PackageVersion]
) -> tuple[dict[PackageVersion, tuple[Advisory, ...]], str | None]:
    """Findings per version, and the database's own date.

    Both layouts safety reads: schema 2 (`meta`, `vulnerable_packages`, `ids` per entry) and
    the flat one (`$meta`, names at the top, `id` and `cve` per entry).
    """
    meta = database.get("meta") or database.get("$meta") or {}
    entries = database.get("vulnerable_packages", database)
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for key, value in entries.items():
        if not key.startswith("$") and key != "meta":
            by_name.setdefault(str(canonicalize_name(key)), []).extend(value)
    base = str(meta.get("base_domain") or DEFAULT_BASE_DOMAIN).rstrip("/")
    # Each entry's ranges parsed once, for the projects asked about: a plan asks about
    # thousands of versions of the same few hundred projects.
    ranges = {
        name: [(entry, _specifiers(entry)) for entry in by_name.get(name, ())]
        for name in {name for name, _ in packages}
    }
    # An entry's Advisory is made once, however many versions it affects (its summary is
    # shortened, which costs). Keyed by the entry's id: every entry outlives this call.
    made: dict[int, Advisory] = {}
    findings: dict[PackageVersion, tuple[Advisory, ...]] = {}
    for name, version in dict.fromkeys(packages):
        parsed = Version(version) if ranges[name] else None  # parsed once, if anything asks
        affected = [
            entry
            for entry, specifiers in ranges[name]
            if parsed is not None and _affects(specifiers, parsed)
        ]
        for entry in affected:
            if id(entry) not in made:
                made[id(entry)] = _advisory(entry, base)
        findings[(name, version)] = tuple(made[id(entry)] for entry in affected)
    return findings, _database_date(meta)


def _affects(specifiers: Sequence[SpecifierSet], version: Version) -> bool:
    """Whether any of an entry's ranges contains the version."""
    return any(spec.contains(version, prereleases=True) for spec in specifiers)


def _database_date(meta: Mapping[str, Any]) -> str | None:
    """The database's date as a date: `last_updated`, else the epoch `timestamp`."""
    stamp = meta.get("last_updated") or meta.get("timestamp")
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        try:
            return f"{datetime.fromtimestamp(stamp, timezone.utc):%Y-%m-%d %H:%M} UTC"
        except (OverflowError, OSError, ValueError):  # not seconds since 1970 after all
            return f"timestamp {stamp}"
    return str(stamp) if stamp else None


def _safety_function(name: str) -> Callable[..., Database]:
    """A function of `safety.safety`, or a clear error when the extra is not installed."""
    try:
        with _quiet():
            from safety import safety
    except ImportError:
        raise UserError(
            f"the safety vulnerability service needs the safety package: {INSTALL_HINT}",
            key="policy.vulnerabilities.services",
        ) from None
    function: Callable[..., Database] = getattr(safety, name)
    return function


@contextlib.contextmanager
def _quiet() -> Any:
    """Keep safety's deprecation warnings and prints away from our users' output."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def _specifiers(entry: Mapping[str, Any]) -> list[SpecifierSet]:
    """The entry's affected ranges (`specs`, else `v`), each a PEP 440 specifier set.

    A specifier that cannot be read stops the plan: skipping it could admit a version it names.
    """
    specs = entry.get("specs") or [entry.get("v", "")]
    return [_specifier(entry, spec) for spec in specs if spec]


def _fixed_versions(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """The versions that fix it: `fixed_versions` where the entry lists them, else the upper
    bound of each affected range (`<5.3.1` is fixed in 5.3.1; `<=5.3` names no fix)."""
    listed = tuple(str(v) for v in entry.get("fixed_versions") or () if v)
    if listed:
        return listed
    bounds = {s.version for spec in _specifiers(entry) for s in spec if s.operator == "<"}
    return tuple(sorted(bounds, key=version_sort_key))


def _specifier(entry: Mapping[str, Any], spec: str) -> SpecifierSet:
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        raise ServiceError(
            f"safety database entry {_ids(entry)[0]} has an unreadable specifier {spec!r}"
        ) from None


def _ids(entry: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(id, aliases) of an entry: schema 2 lists typed `ids`; the flat layout `id` and `cve`."""
    if "ids" in entry:
        typed = [(str(i.get("type")), str(i.get("id"))) for i in entry["ids"] if i.get("id")]
        pyup = [i for t, i in typed if t == "pyup"]
        others = tuple(i for t, i in typed if t != "pyup")
        if pyup:
            primary = pyup[0] if not pyup[0].isdigit() else f"pyup.io-{pyup[0]}"
            return primary, others
        if others:
            return others[0], others[1:]
    cve = entry.get("cve")
    return str(entry["id"]), (str(cve),) if cve else ()


def _advisory(entry: Mapping[str, Any], base_domain: str) -> Advisory:
    """An Advisory from a safety database entry; its CVE becomes an alias."""
    advisory_id, aliases = _ids(entry)
    return Advisory(
        id=advisory_id,
        aliases=aliases,
        summary=summary(str(entry.get("advisory") or "")),
        link=_link(entry, aliases, base_domain),
        fixed_in=_fixed_versions(entry),
    )


def _link(entry: Mapping[str, Any], aliases: Sequence[str], base_domain: str) -> str:
    """safety's page for the entry; without one (older databases), the CVE's NVD record."""
    if path := entry.get("more_info_path"):
        return f"{base_domain}{path}"
    cve = next((a for a in aliases if a.startswith("CVE-")), None)
    return f"https://nvd.nist.gov/vuln/detail/{cve}" if cve else ""
