"""The composition root: concrete upstream, services and registry from a validated config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.errors import UserError
from reconciler.http import make_session
from reconciler.model import DesiredState, RegistryType
from reconciler.registry import DirectoryRegistry, Registry
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import OsvService, VulnerabilityService

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
        "osv": lambda: OsvService(upstream.osv_url, session, WORKERS),
    }
    return [factories[name]() for name in desired.config.policy.services]


def make_registry(desired: DesiredState, override: RegistryType | None) -> Registry:
    """The registry from config, or from `--registry`."""
    kind = override or desired.config.registry.type
    if kind is RegistryType.DIRECTORY:
        # Relative paths are relative to the repository: the desired-state directory's parent.
        path = Path(desired.config.registry.path)
        if not path.is_absolute():
            path = Path(desired.root).parent / path
        return DirectoryRegistry(path)
    raise UserError(f"registry type {kind.value!r} is not available in this release yet")
