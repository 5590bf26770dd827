"""Target platforms: uv's names, marker values, and which wheels a target installs (pip's order)."""

from __future__ import annotations

import pytest

from reconciler.targets import OperatingSystem, TargetEnvironment, parse_platform


def target(python: str, platform: str) -> TargetEnvironment:
    found = parse_platform(platform)
    assert found is not None
    return TargetEnvironment(python, found)


@pytest.mark.parametrize(
    ("name", "system", "machine", "baseline", "musl"),
    [
        ("linux", OperatingSystem.LINUX, "x86_64", (2, 17), False),
        ("x86_64-unknown-linux-gnu", OperatingSystem.LINUX, "x86_64", (2, 17), False),
        ("aarch64-manylinux_2_28", OperatingSystem.LINUX, "aarch64", (2, 28), False),
        ("x86_64-manylinux2014", OperatingSystem.LINUX, "x86_64", (2, 17), False),
        ("x86_64-musllinux_1_2", OperatingSystem.LINUX, "x86_64", (1, 2), True),
        ("aarch64-unknown-linux-musl", OperatingSystem.LINUX, "aarch64", (1, 2), True),
        ("macos", OperatingSystem.MACOS, "aarch64", (13, 0), False),
        ("x86_64-apple-darwin", OperatingSystem.MACOS, "x86_64", (13, 0), False),
        ("windows", OperatingSystem.WINDOWS, "x86_64", (0, 0), False),
        ("aarch64-pc-windows-msvc", OperatingSystem.WINDOWS, "aarch64", (0, 0), False),
    ],
)
def test_uv_platform_names_mean_what_uv_means(
    name: str, system: OperatingSystem, machine: str, baseline: tuple[int, int], musl: bool
) -> None:
    platform = parse_platform(name)
    assert platform is not None and platform.name == name
    assert (platform.system, platform.machine, platform.baseline, platform.musl) == (
        system,
        machine,
        baseline,
        musl,
    )


@pytest.mark.parametrize("name", ["solaris", "x86_64-manylinux_2_4", "arm-apple-darwin", ""])
def test_unknown_platform_names_are_none(name: str) -> None:
    assert parse_platform(name) is None


def test_marker_values_are_cpythons_own() -> None:
    assert target("3.12", "windows").markers()["platform_machine"] == "AMD64"
    assert target("3.12", "macos").markers()["platform_machine"] == "arm64"
    linux = target("3.11", "aarch64-manylinux_2_28").markers()
    assert (linux["sys_platform"], linux["platform_machine"], linux["python_full_version"]) == (
        "linux",
        "aarch64",
        "3.11.0",
    )


def test_wheels_are_ranked_as_pip_ranks_them_and_foreign_ones_refused() -> None:
    linux = target("3.11", "x86_64-manylinux_2_28")
    native = "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    older = "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    abi3 = "cryptography-46.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
    pure = "requests-2.32.5-py3-none-any.whl"
    ranks = [linux.wheel_rank(name) for name in (native, older, abi3, pure)]
    assert all(rank is not None for rank in ranks)
    assert ranks == sorted(ranks)  # exact interpreter, older glibc, stable ABI, pure Python
    assert linux.wheel_rank("numpy-2.4.6-cp312-cp312-manylinux_2_17_x86_64.whl") is None
    assert linux.wheel_rank("numpy-2.4.6-cp311-cp311-musllinux_1_2_x86_64.whl") is None
    assert linux.wheel_rank("numpy-2.4.6-cp311-cp311-manylinux_2_34_x86_64.whl") is None
    assert linux.wheel_rank("numpy-2.4.6.tar.gz") is None
    mac = target("3.12", "macos")
    assert mac.wheel_rank("numpy-2.4.6-cp312-cp312-macosx_14_0_arm64.whl") is None  # too new
    assert mac.wheel_rank("numpy-2.4.6-cp312-cp312-macosx_11_0_arm64.whl") is not None
    assert mac.wheel_rank("numpy-2.4.6-cp312-cp312-macosx_10_13_x86_64.whl") is None


def test_requires_python_is_judged_for_the_targets_interpreter() -> None:
    assert not target("3.11", "linux").allows(">=3.12")
    assert target("3.12", "linux").allows(">=3.12")
    assert target("3.10", "linux").allows(None) and target("3.10", "linux").allows("garbage")
