"""Benchmarks of the reconciler core against a local upstream; prints its figures.

1. Peak RSS of `mirror apply` mirroring one 200 MB file (goal: under 100 MB), next to the
   peak RSS of `mirror --help` (the interpreter and imports alone).
2. `mirror plan` over 300 projects (5 versions each) with 40 ms latency per request: cold (empty
   HTTP cache) and warm (ETag revalidation), next to `pip download --no-deps` of the same set.

Run from the repository root: `python benchmarks/bench_core.py [--projects N] [--size-mb N]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers.osv import FakeOsv  # noqa: E402
from tests.servers.upstream import FakeFile, FakeUpstream  # noqa: E402

NOW = datetime.now(timezone.utc)


def clean_env(cache: Path) -> dict[str, str]:
    """No pip configuration from this machine; the mirror's cache where we say."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, MIRROR_CACHE_DIR=str(cache))
    return env


def write_state(
    root: Path,
    upstream: FakeUpstream,
    osv: FakeOsv,
    requirements: str,
    policy: str = "",
    registry: str = "path: registry",
) -> Path:
    """`root/desired-state/` pointing at the local fakes; `policy` lines are added to the
    policy section, `registry` is the registry section's body (a path relative to `root`)."""
    desired = root / "desired-state"
    desired.mkdir(parents=True, exist_ok=True)
    (desired / "requirements.txt").write_text(requirements)
    (desired / "config.yaml").write_text(
        "policy:\n  min_age_days: 14\n  max_deletions: 1000\n"
        + policy
        + f"upstream:\n  index_url: {upstream.index_url}\n  osv_url: {osv.url}\n"
        f"  json_url: {upstream.url}/pypi\n"
        f"registry:\n  {registry}\n"
    )
    return desired


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of one child process, via wait4's rusage."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    # ru_maxrss is in KiB on Linux.
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, exit code) of one child process (wait4's rusage)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    return (
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        os.waitstatus_to_exitcode(status),
    )


def line(label: str, figures: tuple[float, float, float, int]) -> str:
    wall, cpu, peak, code = figures
    return f"  {label:<34} {wall:6.2f} s wall  {cpu:6.2f} s CPU  {peak:6.1f} MiB  (exit {code})"


def mirror(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def bench_memory(size_mb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as upstream, FakeOsv() as osv:
        root = Path(tmp)
        upstream.add_file(
            "big",
            FakeFile("big-1.0-py3-none-any.whl", NOW - timedelta(days=30), size=size_mb << 20),
        )
        desired = write_state(root, upstream, osv, "big==1.0\n")
        env = clean_env(root / "cache")
        _, baseline, _ = run_measured(mirror("--help"), env)
        elapsed, peak, code = run_measured(
            mirror("apply", "--auto-approve", "--desired-state", str(desired)), env
        )
        placed = (root / "registry" / "files" / "big" / "big-1.0-py3-none-any.whl").stat().st_size
        print(
            f"apply of one {size_mb} MB file: exit {code}, {elapsed:.1f} s, "
            f"peak RSS {peak:.1f} MiB (goal < 100 MiB); `mirror --help` alone: {baseline:.1f} MiB;"
            f" placed {placed >> 20} MB"
        )


def bench_plan(projects: int, latency: float) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstream(latency=latency) as upstream,
        FakeOsv(latency=latency) as osv,
    ):
        root = Path(tmp)
        names = [f"project-{i:04d}" for i in range(projects)]
        for name in names:
            for age, version in zip(
                (400, 200, 90, 30, 3), ("1.0", "1.1", "1.2", "1.3", "2.0"), strict=True
            ):
                upstream.add_release(name, version, NOW - timedelta(days=age))
        requirements = "".join(f"{name}\n" for name in names)
        desired = write_state(root, upstream, osv, requirements)
        env = clean_env(root / "cache")
        plan = mirror("plan", "--format", "json", "--desired-state", str(desired))

        upstream.reset_counts()
        cold, _, code = run_measured(plan, env)
        cold_requests = upstream.count()
        upstream.reset_counts()
        warm, _, _ = run_measured(plan, env)
        warm_statuses = dict(upstream.statuses)

        (root / "reqs.txt").write_text(requirements)
        upstream.reset_counts()
        pip, _, pip_code = run_measured(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--isolated",
                "--no-cache-dir",
                "--index-url",
                upstream.index_url,
                "-d",
                str(root / "pip"),
                "-r",
                str(root / "reqs.txt"),
            ],
            env,
        )
        pip_requests = upstream.count()
        bound = projects * latency / 16
        print(f"plan over {projects} projects, {latency * 1000:.0f} ms latency per request:")
        print(
            f"  mirror plan, cold cache: {cold:6.2f} s  (exit {code}, {cold_requests} upstream "
            f"requests; bound N*latency/C = {bound:.2f} s with C = 16)"
        )
        print(f"  mirror plan, warm cache: {warm:6.2f} s  (upstream statuses {warm_statuses})")
        print(
            f"  pip download --no-deps:  {pip:6.2f} s  (exit {pip_code}, {pip_requests} upstream "
            "requests, downloads included)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()
    bench_memory(args.size_mb)
    bench_plan(args.projects, args.latency_ms / 1000)


if __name__ == "__main__":
    main()
