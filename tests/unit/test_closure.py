"""The closure resolver on plain data: what it asks for, markers per target environment."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from packaging.version import Version

from reconciler import closure, policy
from reconciler.metadata import CoreMetadata
from reconciler.model import DependencyMode, UpstreamFile, UpstreamProject, WheelChoice
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


def project(name: str, version: str = "1.0") -> UpstreamProject:
    return make_project(name, make_file(name, version, days_ago(100)))


def sha(p: UpstreamProject) -> str:
    return p.files[0].sha256 or ""


def resolve(projects, metadata, environments=None, build=None):  # type: ignore[no-untyped-def]
    context = policy.PolicyContext(make_config(dependencies=DependencyMode.CLOSURE), FROZEN_NOW)
    return closure.resolve(
        [make_requirement("app")],
        projects,
        metadata,
        frozenset(),
        context,
        {},
        {},
        environments or make_config().policy.environments,
        build or {},
    )


def names(resolved: closure.Closure) -> set[str]:
    return {name for name, _ in resolved.admitted}


def test_missing_pages_and_metadata_are_asked_for_a_frontier_at_a_time() -> None:
    app = project("app")
    with pytest.raises(closure.NeedData) as first:
        resolve({"app": app}, {})
    assert first.value.files == {app.files[0]} and not first.value.projects
    requires = CoreMetadata(("left>=1", "right"))
    with pytest.raises(closure.NeedData) as second:
        resolve({"app": app}, {sha(app): requires})
    assert second.value.projects == {"left", "right"}  # both at once, not one per round


def test_a_page_still_missing_asks_for_what_the_newest_release_needs_not_for_older_ones() -> None:
    # Had the resolver backtracked from app 2.0 for want of left's page, it would have asked
    # for app 1.0's dependency too: a page nothing needs, and every version walked through.
    app = make_project(
        "app", make_file("app", "1.0", days_ago(100)), make_file("app", "2.0", days_ago(100))
    )
    old, new = app.files
    metadata = {
        sha(make_project("app", old)): CoreMetadata(("legacy",)),
        new.sha256 or "": CoreMetadata(("left", "right")),
    }
    with pytest.raises(closure.NeedData) as need:
        resolve({"app": app}, metadata)
    assert need.value.projects == {"left", "right"}


def test_metadata_of_older_releases_is_asked_for_only_once_the_resolver_walks_down() -> None:
    app = make_project("app", *(make_file("app", v, days_ago(100)) for v in ("1.0", "2.0", "3.0")))
    one, two, three = app.files
    dep = project("dep")
    with pytest.raises(closure.NeedData) as newest:
        resolve({"app": app, "dep": dep}, {})
    assert newest.value.files == {three}  # the newest release is what a resolution takes
    needs_more = {three.sha256 or "": CoreMetadata(("dep>=9",)), sha(dep): CoreMetadata(())}
    with pytest.raises(closure.NeedData) as walking:
        resolve({"app": app, "dep": dep}, needs_more)
    assert walking.value.files == {two, one}  # backtracking: the next ones with it


def test_markers_count_for_the_target_environments_only() -> None:
    app, old = project("app"), project("backport")
    requires = CoreMetadata(('backport; python_version < "3.10"',))
    metadata = {sha(app): requires, sha(old): CoreMetadata(())}
    default = resolve({"app": app, "backport": old}, metadata)
    assert names(default) == {"app"}  # no default target is older than 3.10
    for_39 = resolve({"app": app, "backport": old}, metadata, LINUX_39)
    assert names(for_39) == {"app", "backport"}
    assert for_39.required_by == {"backport": ("app 1.0",)}


def test_requirements_that_share_no_project_are_grouped_apart() -> None:
    assert sorted(
        map(sorted, closure._overlapping({"a": {"a", "x"}, "b": {"b"}, "c": {"c", "x"}}))
    ) == [
        ["a", "c"],
        ["b"],
    ]


def test_a_marker_that_cannot_be_judged_keeps_the_dependency_instead_of_failing() -> None:
    app, dep = project("app"), project("dep")
    metadata = {
        sha(app): CoreMetadata(('dep; platform_version ~= "1"',)),
        sha(dep): CoreMetadata(()),
    }
    assert names(resolve({"app": app, "dep": dep}, metadata)) == {"app", "dep"}


def test_a_blocked_requirement_keeps_what_its_held_version_needs() -> None:
    app = make_project(
        "app", make_file("app", "1.0", days_ago(100)), make_file("app", "2.0", days_ago(1))
    )
    dep = project("dep")
    metadata = {f.sha256 or "": CoreMetadata(("dep",)) for f in app.files}
    metadata[sha(dep)] = CoreMetadata(())
    context = policy.PolicyContext(make_config(dependencies=DependencyMode.CLOSURE), FROZEN_NOW)
    resolved = closure.resolve(
        [make_requirement("app>=2")],
        {"app": app, "dep": dep},
        metadata,
        frozenset(),
        context,
        {"app": [Version("1.0")]},
        {},
        make_config().policy.environments,
        {},
    )
    assert ("requirements", "app") in resolved.blocked
    assert ("dep", Version("1.0")) in resolved.kept


def test_a_dependency_is_explained_only_by_versions_its_dependents_would_take() -> None:
    app = project("app")
    lib = make_project(
        "lib",
        make_file("lib", "1.26.20", days_ago(100)),
        make_file("lib", "2.0.0", days_ago(90)),
        make_file("lib", "2.0.1", days_ago(3)),
        make_file("lib", "1.27.0", days_ago(2)),
    )
    metadata = {sha(app): CoreMetadata(("lib<1.28",)), lib.files[0].sha256 or "": CoreMetadata(())}
    (admitted,) = [
        d
        for (n, _), d in resolve({"app": app, "lib": lib}, metadata).admitted.items()
        if n == "lib"
    ]
    assert admitted.version == Version("1.26.20")
    # Only 1.27.0 is explained, as waiting (2.x is outside <1.28), and only there.
    assert [(w.version, w.eligible_at) for w in admitted.waiting] == [("1.27.0", days_ago(2 - 14))]
    assert admitted.notes == ()


def test_a_dependency_failing_alike_under_several_releases_is_explained_once() -> None:
    app = make_project(
        "app", *(make_file("app", version, days_ago(100)) for version in ("1.0", "0.9", "0.8"))
    )
    dependency = make_project(
        "b", make_file("b", "1.0", days_ago(100)), make_file("b", "2.0", days_ago(2))
    )
    metadata = {f.sha256 or "": CoreMetadata(("b>=2",)) for f in app.files}
    metadata.update({f.sha256 or "": CoreMetadata(()) for f in dependency.files})
    blocked = resolve({"app": app, "b": dependency}, metadata).blocked[("requirements", "app")]
    assert blocked.detail == (
        "app 1.0, 0.9, 0.8 → b>=2: 2.0: 2 days old, eligible 2026-12-06 12:00 UTC "
        "(policy.min_age_days: 14)"
    )


def no_dependencies(found: UpstreamProject) -> dict[str, CoreMetadata]:
    return {f.sha256 or "": CoreMetadata(()) for f in found.files}


def held_for(resolved: closure.Closure, name: str) -> dict[str, list[str]]:
    """Each version of a project held, and the targets that need it."""
    return {
        str(version): [str(t) for t in targets]
        for (project, version), targets in resolved.targets.items()
        if project == name
    }


def on(*targets: tuple[str, str]) -> tuple[TargetEnvironment, ...]:
    return tuple(TargetEnvironment(python, parse_platform(name)) for python, name in targets)  # type: ignore[arg-type]


def test_a_release_needing_a_newer_python_is_held_beside_the_one_older_targets_install() -> None:
    """numpy's case: 2.5 needs Python >=3.12; 3.10 and 3.11 get 2.4, 3.12 and later 2.5."""
    old = make_file("numpy", "2.4.6", days_ago(60))
    new = replace(make_file("numpy", "2.5.4", days_ago(30)), requires_python=">=3.12")
    numpy = make_project("numpy", old, new)
    app = project("app")
    metadata = {
        sha(app): CoreMetadata(("numpy",)),
        **{f.sha256 or "": CoreMetadata(()) for f in numpy.files},
    }
    targets = on(("3.11", "linux"), ("3.12", "linux"), ("3.13", "windows"))
    resolved = resolve({"app": app, "numpy": numpy}, metadata, targets)
    assert held_for(resolved, "numpy") == {
        "2.4.6": ["3.11 linux"],
        "2.5.4": ["3.12 linux", "3.13 windows"],
    }


def test_a_dependency_behind_a_windows_marker_is_held_for_windows_targets_only() -> None:
    app, colorama = project("app"), project("colorama")
    metadata = {
        sha(app): CoreMetadata(('colorama; sys_platform == "win32"',)),
        sha(colorama): CoreMetadata(()),
    }
    targets = on(("3.12", "linux"), ("3.12", "windows"), ("3.12", "macos"))
    resolved = resolve({"app": app, "colorama": colorama}, metadata, targets)
    assert [str(t) for t in resolved.targets[("colorama", Version("1.0"))]] == ["3.12 windows"]
    assert len(resolved.targets[("app", Version("1.0"))]) == 3
    linux_only = resolve({"app": app, "colorama": colorama}, metadata, targets[:1])
    assert names(linux_only) == {"app"}


def test_a_target_without_a_wheel_of_the_newest_release_takes_the_newest_it_has_one_for() -> None:
    def wheel(version: str, platform: str) -> UpstreamFile:
        name = f"fast-{version}-cp312-cp312-{platform}.whl"
        return replace(
            make_file("fast", version, days_ago(60)),
            filename=name,
            url=f"https://files.example/{name}",
        )

    fast = make_project(
        "fast",
        wheel("1.0", "manylinux_2_17_x86_64"),
        wheel("1.0", "win_amd64"),
        wheel("2.0", "manylinux_2_17_x86_64"),  # no Windows wheel yet
        make_file("fast", "2.0", days_ago(60), kind="sdist"),
    )
    app = project("app")
    metadata = {
        sha(app): CoreMetadata(("fast",)),
        **{f.sha256 or "": CoreMetadata(()) for f in fast.files},
    }
    targets = on(("3.12", "linux"), ("3.12", "windows"))
    resolved = resolve({"app": app, "fast": fast}, metadata, targets)
    assert {
        str(v): [str(t) for t in found] for (n, v), found in resolved.targets.items() if n == "fast"
    } == {
        "2.0": ["3.12 linux"],
        "1.0": ["3.12 windows"],
    }


def test_each_target_gets_the_wheel_pip_would_pick_and_nothing_else_is_mirrored() -> None:
    def wheel(tag: str) -> UpstreamFile:
        name = f"numpy-2.4.6-{tag}.whl"
        return replace(make_file("numpy", "2.4.6", days_ago(60)), filename=name, url=name)

    files = [
        wheel("cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        wheel("cp312-cp312-manylinux_2_28_x86_64"),  # newer glibc than uv's `linux`
        wheel("cp312-cp312-musllinux_1_2_x86_64"),
        wheel("cp312-cp312-win_amd64"),
        wheel("cp312-cp312-win32"),
        wheel("cp313-cp313-win_amd64"),
        wheel("cp312-cp312-macosx_14_0_arm64"),  # newer than macOS 13
        wheel("cp312-cp312-macosx_11_0_arm64"),
        make_file("numpy", "2.4.6", days_ago(60), kind="sdist"),
    ]
    targets = on(("3.12", "linux"), ("3.12", "windows"), ("3.12", "macos"))
    kept = closure.mirrored_files(files, targets, WheelChoice.TARGETS)
    assert [f.filename for f in kept] == [
        "numpy-2.4.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "numpy-2.4.6-cp312-cp312-win_amd64.whl",
        "numpy-2.4.6-cp312-cp312-macosx_11_0_arm64.whl",
        "numpy-2.4.6.tar.gz",
    ]
    on_glibc_228 = on(("3.12", "x86_64-manylinux_2_28"))
    (best, _) = closure.mirrored_files(files, on_glibc_228, WheelChoice.TARGETS)
    assert best.filename == "numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl"
    assert closure.mirrored_files(files, targets, WheelChoice.ALL) == tuple(files)


def test_an_explanation_names_a_few_releases_and_counts_the_rest() -> None:
    versions = [f"1.{minor}" for minor in range(8, 0, -1)]
    app = make_project("app", *(make_file("app", v, days_ago(100)) for v in versions))
    dependency = make_project("b", make_file("b", "2.0", days_ago(2)))
    metadata = {f.sha256 or "": CoreMetadata(("b>=2",)) for f in app.files}
    blocked = resolve({"app": app, "b": dependency}, metadata).blocked[("requirements", "app")]
    assert blocked.detail.startswith("app 1.8, 1.7, 1.6, 1.5, 1.4 and 3 more → b>=2: 2.0: ")


def test_a_release_whose_own_metadata_needs_a_newer_python_gives_way_on_older_targets() -> None:
    """An index that does not serve data-requires-python: the core metadata still says."""
    app = project("app")
    lib = make_project(
        "lib", make_file("lib", "1.0", days_ago(90)), make_file("lib", "2.0", days_ago(60))
    )
    metadata = {
        sha(app): CoreMetadata(("lib",)),
        lib.files[0].sha256 or "": CoreMetadata(()),
        lib.files[1].sha256 or "": CoreMetadata((), requires_python=">=3.12"),
    }
    resolved = resolve({"app": app, "lib": lib}, metadata, on(("3.11", "linux"), ("3.12", "linux")))
    assert held_for(resolved, "lib") == {"1.0": ["3.11 linux"], "2.0": ["3.12 linux"]}
    only_new = make_project("lib", make_file("lib", "2.0", days_ago(60)))
    blocked = resolve({"app": app, "lib": only_new}, metadata, on(("3.11", "linux"))).blocked[
        ("requirements", "app")
    ]
    assert "lib 2.0 → Requires-Python >=3.12 (the target has 3.11)" in blocked.detail


def test_a_pin_on_a_release_published_only_as_an_sdist_is_built_not_refused() -> None:
    """pip and uv build lib 2.0 for `lib==2.0` though lib 1.0 has a wheel: so the mirror
    holds lib 2.0's sdist and its build requirements."""
    app = project("app")
    lib = make_project(
        "lib",
        make_file("lib", "1.0", days_ago(90)),
        make_file("lib", "2.0", days_ago(60), kind="sdist"),
    )
    tools = project("setuptools", "70.0")
    metadata = {
        sha(app): CoreMetadata(("lib==2.0",)),
        **no_dependencies(lib),
        **no_dependencies(tools),
    }
    build = {lib.files[1].sha256 or "": ("setuptools>=40.8.0",)}
    projects = {"app": app, "lib": lib, "setuptools": tools}
    resolved = resolve(projects, metadata, on(("3.12", "linux")), build)
    assert not resolved.blocked
    assert held_for(resolved, "lib") == {"2.0": ["3.12 linux"]}
    assert held_for(resolved, "setuptools") == {"70.0": ["3.12 linux"]}


def test_requirements_resolved_in_chunks_that_disagree_on_a_shared_project_are_resolved_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(closure, "CHUNK", 2)  # a, b | c
    shared = make_project(
        "shared",
        make_file("shared", "1.0", days_ago(100)),
        make_file("shared", "2.0", days_ago(100)),
    )
    projects = {"a": project("a"), "b": project("b"), "c": project("c"), "shared": shared}
    metadata = {
        sha(projects["a"]): CoreMetadata(("shared<2",)),
        sha(projects["b"]): CoreMetadata(()),
        sha(projects["c"]): CoreMetadata(("shared",)),  # alone, it would take 2.0
        **{f.sha256 or "": CoreMetadata(()) for f in shared.files},
    }
    context = policy.PolicyContext(make_config(dependencies=DependencyMode.CLOSURE), FROZEN_NOW)
    resolved = closure.resolve(
        [make_requirement(name) for name in "abc"],
        projects,
        metadata,
        frozenset(),
        context,
        {},
        {},
        LINUX_39,
        {},
    )
    assert {v for n, v in resolved.admitted if n == "shared"} == {Version("1.0")}
    assert names(resolved) == {"a", "b", "c", "shared"} and not resolved.blocked


# Chunked resolution (closure._attempt_in_chunks) against one whole resolution, on small
# graphs a fuzzer found (the review of the speed work); CHUNK lowered to make chunks of them.
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
