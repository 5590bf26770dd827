"""Chunked resolution (closure._attempt_in_chunks) against one whole resolution, on small
graphs a fuzzer found (the review of the speed work); CHUNK lowered to make chunks of them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import closure, policy
from reconciler.metadata import CoreMetadata
from reconciler.model import DependencyMode
from reconciler.targets import TargetEnvironment, parse_platform
from tests.conftest import (
    FROZEN_NOW,
    days_ago,
    make_config,
    make_file,
    make_project,
    make_requirement,
)

LINUX_39 = (TargetEnvironment("3.9", parse_platform("linux")),)  # type: ignore[arg-type]

Graph = dict[str, dict[str, list[str]]]  # project -> version -> Requires-Dist


def run(
    listed: list[str], spec: Graph, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[str, str]], list[str]]:
    """(admitted, blocked) of the listed projects on this graph, in chunks of `chunk`."""
    monkeypatch.setattr(closure, "CHUNK", chunk)
    projects: dict[str, Any] = {}
    metadata: dict[str, CoreMetadata] = {}
    for name, versions in spec.items():
        files = [make_file(name, v, days_ago(100)) for v in versions]
        projects[name] = make_project(name, *files)
        for f in files:
            metadata[f.sha256 or ""] = CoreMetadata(tuple(versions[f.version]))
    context = policy.PolicyContext(make_config(dependencies=DependencyMode.CLOSURE), FROZEN_NOW)
    res = closure.resolve(
        [make_requirement(n) for n in listed],
        projects,
        metadata,
        frozenset(),
        context,
        {},
        {},
        LINUX_39,
        {},
    )
    return sorted((n, str(v)) for n, v in res.admitted), sorted(res.blocked)


# Chunks all resolve and agree on what they share, yet their union picks c 1.0 where the
# whole resolution (the behaviour before 0c64bc6) picks c 3.0.
UNION_DIFFERS = (
    ["a", "c"],
    {
        "a": {"1.0": ["r!=2.0", "p!=2.0"], "2.0": ["q==1.0", "s!=2.0"], "3.0": ["p<3"]},
        "c": {"1.0": [], "2.0": ["q>=2", "p<3"], "3.0": ["s"]},
        "p": {"1.0": ["r>=2"], "2.0": ["r>=2"], "3.0": []},
        "q": {"1.0": []},
        "r": {"1.0": [], "2.0": ["q>=2", "s<2"]},
        "s": {"1.0": ["r", "q>=2"], "2.0": [], "3.0": ["p>=2", "t!=2.0"]},
        "t": {"1.0": ["r>=2"], "2.0": []},
    },
)
# Chunk ['a'] alone fails (resolvelib's backjumping misses t 2.0), so _attempt_in_chunks
# returns None without trying the whole set: 'a' ends up BLOCKED, while the whole resolution
# admits a, b, c.
CHUNK_FAILS = (
    ["a", "b", "c"],
    {
        "a": {"1.0": ["t>=2", "q"]},
        "b": {"1.0": [], "2.0": ["p!=2.0"]},
        "c": {"1.0": ["q<2"]},
        "p": {"1.0": [], "2.0": ["s", "q!=2.0"], "3.0": ["r"]},
        "q": {"1.0": [], "2.0": []},
        "r": {"1.0": ["t<2"]},
        "s": {"1.0": ["r==1.0"]},
        "t": {"1.0": [], "2.0": [], "3.0": ["p>=2", "q!=2.0"]},
    },
)


@pytest.mark.parametrize("case", [UNION_DIFFERS, CHUNK_FAILS], ids=["union-differs", "chunk-fails"])
def test_chunks_decide_as_one_resolution(
    case: tuple[list[str], Graph], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, spec = case
    whole = run(listed, spec, 1000, monkeypatch)
    assert run(listed, spec, 1, monkeypatch) == whole


# Crashes (pre-existing at 671f9da for the whole resolution; more chunks = more resolutions =
# more of them): KeyError in closure._required_by (a graph parent resolvelib left out of
# result.mapping) and RecursionError inside resolvelib's _build_result. A hostile index can
# shape such a graph; the plan dies instead of blocking the requirement.
CRASH_WHOLE_KEYERROR = (
    ["b", "c", "a"],
    {
        "a": {"1.0": ["r!=2.0", "p<2"], "2.0": ["t>=2", "q==1.0"], "3.0": []},
        "b": {"1.0": ["r==1.0"], "2.0": []},
        "c": {"1.0": ["t<3"], "2.0": ["p<3"]},
        "p": {"1.0": [], "2.0": ["q!=2.0"]},
        "q": {"1.0": ["p<2"], "2.0": []},
        "r": {"1.0": [], "2.0": []},
        "t": {"1.0": ["p==1.0"], "2.0": [], "3.0": ["r>=2"]},
    },
)
CRASH_CHUNKED_RECURSION = (
    ["c", "b"],
    {
        "b": {"1.0": ["s==1.0", "r<3"]},
        "c": {"1.0": ["p!=2.0", "t==1.0"], "2.0": ["p<2", "s>=2"], "3.0": ["t<3", "s<3"]},
        "p": {"1.0": ["q!=2.0"], "2.0": [], "3.0": ["q==1.0", "r==1.0"]},
        "q": {"1.0": ["p<3"], "2.0": ["r<3"]},
        "r": {"1.0": ["p<2"], "2.0": ["q>=2", "t!=2.0"]},
        "s": {"1.0": [], "2.0": []},
        "t": {"1.0": ["q<3"], "2.0": ["p>=2", "q<3"]},
    },
)


@pytest.mark.parametrize(
    "case,chunk",
    [(CRASH_WHOLE_KEYERROR, 1000), (CRASH_CHUNKED_RECURSION, 1)],
    ids=["whole-keyerror", "chunked-recursion"],
)
def test_resolution_does_not_crash(
    case: tuple[list[str], Graph], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, spec = case
    run(listed, spec, chunk, monkeypatch)
