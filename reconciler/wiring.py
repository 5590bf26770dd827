"""The composition root: concrete upstream, services and registry from a validated config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import UserError
from reconciler.http import make_session
from reconciler.model import DesiredState, RegistryType
from reconciler.registry import DirectoryRegistry, Registry
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import OsvService, PypiService, SafetyService, VulnerabilityService

# Concurrent metadata fetches; one pooled session carries them all.
WORKERS = 16


def make_upstream(desired: DesiredState, cache_dir: Path | None) -> UpstreamIndex:
    """The upstream index client: cached, pooled session for pages; uncached for files."""
    return UpstreamIndex(
        desired.config.upstream.index_url,
        session=make_session(cache_dir, pool_size=WORKERS),
        download_session=make_session(None, pool_size=4),
        workers=WORKERS,
    )


def make_services(desired: DesiredState, cache_dir: Path | None) -> list[VulnerabilityService]:
    """The configured vulnerability services, sharing one cached session."""
    session = make_session(cache_dir, pool_size=WORKERS)
    upstream = desired.config.upstream
    factories: dict[str, Callable[[], VulnerabilityService]] = {
        "osv": lambda: OsvService(
            upstream.osv_url,
            session,
            WORKERS,
            record_cache=cache_dir / "osv-records" if cache_dir else None,
        ),
        "pypi": lambda: PypiService(upstream.json_url, session, WORKERS),
        "safety": lambda: _safety_service(desired),
    }
    return [factories[name]() for name in desired.config.policy.services]


def _safety_service(desired: DesiredState) -> VulnerabilityService:
    """The safety database from a directory (relative to the repository) or an API key."""
    settings = desired.config.policy.safety
    if settings.database is not None:
        return SafetyService.from_directory(_repository_path(desired, settings.database))
    assert settings.api_key_env is not None  # the config refuses safety with neither
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise UserError(
            f"environment variable {settings.api_key_env} is not set; the safety service "
            "needs its API key there",
            key="policy.vulnerabilities.safety.api_key_env",
        )
    return SafetyService.from_api_key(key)


def _repository_path(desired: DesiredState, configured: str) -> Path:
    """A configured path; relative ones are relative to the repository (desired-state/..)."""
    path = Path(configured)
    return path if path.is_absolute() else Path(desired.root).parent / path


def make_registry(desired: DesiredState, override: RegistryType | None) -> Registry:
    """The registry from config, or from `--registry`."""
    kind = override or desired.config.registry.type
    if kind is RegistryType.DIRECTORY:
        return DirectoryRegistry(_repository_path(desired, desired.config.registry.path))
    raise UserError(f"registry type {kind.value!r} is not available in this release yet")
