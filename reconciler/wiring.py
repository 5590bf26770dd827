"""The composition root: concrete upstream, services and registry from a validated config."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.cancel import Cancellation
from reconciler.clock import Clock, system_clock
from reconciler.errors import UserError
from reconciler.gitlab import Credential, GitLabClient, ci_setting
from reconciler.http import RetryPolicy, make_session
from reconciler.model import DesiredState, RegistryType, ServiceName
from reconciler.notes import MergeRequestNotes, merged_request
from reconciler.registry import DirectoryRegistry, Registry
from reconciler.registry.gitlab import GitLabRegistry
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import OsvService, PypiService, SafetyService, VulnerabilityService

# Concurrent metadata fetches; one pooled session carries them all.
WORKERS = 16


@dataclass(frozen=True)
class Runtime:
    """What a command takes from the machine besides its inputs: the clock, how it retries, and
    its Ctrl-C (one per command).

    The CLI runs with the defaults; a test passes its own (a fixed instant, retries that do not
    wait) as the Click context's `obj`.
    """

    clock: Clock = system_clock
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    cancel: Cancellation = field(default_factory=Cancellation)

    def retry_policy(self) -> RetryPolicy:
        """The retries, waiting on the machine's clock unless told otherwise; in an apply, a
        cancel ends the wait."""
        return replace(self.retries, sleep=self.retries.sleep or self.cancel.wait)


def make_upstream(desired: DesiredState, cache_dir: Path | None, runtime: Runtime) -> UpstreamIndex:
    """The upstream index client: cached, pooled session for pages; uncached for files."""
    return UpstreamIndex(
        desired.config.upstream.index_url,
        session=make_session(cache_dir, WORKERS, runtime.retry_policy()),
        download_session=make_session(None, WORKERS, runtime.retry_policy()),
        workers=WORKERS,
        cache_dir=cache_dir,
    )


def make_services(
    desired: DesiredState, cache_dir: Path | None, runtime: Runtime
) -> list[VulnerabilityService]:
    """The configured vulnerability services, sharing one cached session."""
    session = make_session(cache_dir, WORKERS, runtime.retry_policy())
    upstream = desired.config.upstream
    factories: dict[ServiceName, Callable[[], VulnerabilityService]] = {
        ServiceName.OSV: lambda: OsvService(
            upstream.osv_url,
            session,
            WORKERS,
            record_cache=cache_dir / "osv-records" if cache_dir else None,
        ),
        ServiceName.PYPI: lambda: PypiService(upstream.json_url, session, WORKERS),
        ServiceName.SAFETY: lambda: _safety_service(desired),
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


def make_registry(
    desired: DesiredState, override: RegistryType | None, runtime: Runtime
) -> Registry:
    """The registry from config, or from `--registry`."""
    kind = override or desired.config.registry.type
    if kind is RegistryType.DIRECTORY:
        return DirectoryRegistry(
            _repository_path(desired, desired.config.registry.path), runtime.clock
        )
    return make_gitlab_registry(runtime)


def make_gitlab_registry(runtime: Runtime) -> GitLabRegistry:
    """GitLab's PyPI registry of the CI project, with the job token (GitLab CI provides all
    three variables; elsewhere set them by hand)."""
    purpose = "the gitlab registry needs CI_API_V4_URL, CI_PROJECT_ID and CI_JOB_TOKEN"
    _refuse_fork_pipeline()
    client = GitLabClient(
        ci_setting("CI_API_V4_URL", purpose),
        ci_setting("CI_PROJECT_ID", purpose),
        pool_size=WORKERS,
        retries=runtime.retry_policy(),
    )
    return GitLabRegistry(
        client,
        Credential(ci_setting("CI_JOB_TOKEN", purpose)),
        workers=WORKERS,
        clock=runtime.clock,
    )


def _refuse_fork_pipeline() -> None:
    """A merge request from a fork runs its pipeline in the fork (GitLab's default): the
    registry there is the fork's, not the mirror's, so any plan would mislead. Said, not
    planned. (A pipeline a Maintainer runs in the parent project passes.)"""
    here = os.environ.get("CI_PROJECT_ID", "")
    target = os.environ.get("CI_MERGE_REQUEST_PROJECT_ID", "")
    if target and here and target != here:
        raise UserError(
            f"this merge request comes from a fork: its pipeline runs in project {here}, whose "
            f"registry is not the mirror's (project {target}), so no plan is made here; a "
            f"Maintainer of project {target} can run the pipeline in the parent project (the "
            "merge request's Pipelines tab > Run pipeline)"
        )


def make_merge_request_notes(runtime: Runtime) -> MergeRequestNotes:
    """The merge request of this pipeline, written to with MIRROR_NOTE_TOKEN."""
    purpose = "mirror comment posts to the merge request of a merge-request pipeline"
    client, token = _notes_client(runtime, purpose)
    return MergeRequestNotes(client, token, ci_setting("CI_MERGE_REQUEST_IID", purpose))


def make_merged_request_notes(runtime: Runtime) -> MergeRequestNotes | None:
    """The merge request that brought this pipeline's commit to the default branch (None:
    the commit came in otherwise, e.g. a push)."""
    purpose = "mirror comment --applied posts to the merge request a commit on main merged"
    client, token = _notes_client(runtime, purpose)
    iid = merged_request(client, token, ci_setting("CI_COMMIT_SHA", purpose))
    return MergeRequestNotes(client, token, iid) if iid is not None else None


def _notes_client(runtime: Runtime, purpose: str) -> tuple[GitLabClient, Credential]:
    token = ci_setting(
        "MIRROR_NOTE_TOKEN",
        "mirror comment needs a project access token with api scope there "
        "(the CI job token cannot write notes)",
    )
    client = GitLabClient(
        ci_setting("CI_API_V4_URL", purpose),
        ci_setting("CI_PROJECT_ID", purpose),
        retries=runtime.retry_policy(),
    )
    return client, Credential(token)
