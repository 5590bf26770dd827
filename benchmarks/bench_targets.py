"""Benchmark of a many-target plan: one target against the 15 default ones, next to uv.

A synthetic graph on the fake upstream, shaped like a web/data team's: N applications, each
needing a few of M libraries; a numpy-like library whose newest release needs Python 3.12 (and
has native wheels per Python and platform), a library only Windows needs, a backport only old
Pythons need, and `botolike`, which every application needs, with a PEP 691 page the size of
botocore's (2,000 versions, `--big-page N`). For `mirror plan` with one target (`3.12 linux`)
and with the default 15, cold (empty HTTP cache) and warm (ETag revalidation), it prints wall
time, CPU time and peak RSS, beside `uv pip compile --universal` on the same requirements and
index (uv's resolution forks by markers, the nearest peer to a per-target plan).

Run from the repository root:
`python benchmarks/bench_targets.py [--apps N] [--libraries N] [--big-page N]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_core import NOW, clean_env, line, measured, mirror, write_state  # noqa: E402

from tests.servers.osv import FakeOsv  # noqa: E402
from tests.servers.upstream import FakeUpstream  # noqa: E402

PLATFORMS = ("manylinux_2_17_x86_64.manylinux2014_x86_64", "macosx_11_0_arm64", "win_amd64")
ONE_TARGET = '  environments:\n    - {python: "3.12", platform: linux}\n'


def native(*pythons: str) -> tuple[str, ...]:
    return tuple(f"cp{p}-cp{p}-{platform}" for p in pythons for platform in PLATFORMS)


def build(upstream: FakeUpstream, apps: int, libraries: int, big: int) -> str:
    """The upstream graph; returns the requirements text. `big`: the versions of `botolike`,
    a project every application needs whose page is the size of botocore's (a wheel and an
    sdist per version, one a day)."""
    for day in range(big):
        uploaded = NOW - timedelta(days=big + 3 - day)
        upstream.add_release("botolike", f"1.{day // 100}.{day % 100}", uploaded, sdist=True)
    every = native("310", "311", "312", "313", "314")
    upstream.add_release("numlike", "2.4.6", NOW - timedelta(days=90), wheel_tags=every)
    newer = native("312", "313", "314")
    upstream.add_release(
        "numlike", "2.5.4", NOW - timedelta(days=30), wheel_tags=newer, requires_python=">=3.12"
    )
    upstream.add_release("winonly", "1.0", NOW - timedelta(days=90))
    upstream.add_release("backport", "1.0", NOW - timedelta(days=90))
    for index in range(libraries):
        for age, version in zip(
            (400, 200, 90, 30, 3), ("1.0", "1.1", "1.2", "1.3", "2.0"), strict=True
        ):
            upstream.add_release(f"lib-{index:03d}", version, NOW - timedelta(days=age))
    for index in range(apps):
        needs = [f"lib-{(index * 7 + k) % libraries:03d}>=1.1" for k in range(4)]
        needs += [
            *(["botolike"] if big else []),
            "numlike>=2",
            'winonly; sys_platform == "win32"',
            'backport; python_version < "3.11"',
        ]
        upstream.add_release(
            f"app-{index:03d}", "1.0", NOW - timedelta(days=60), requires=tuple(needs)
        )
    return "".join(f"app-{index:03d}\n" for index in range(apps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--libraries", type=int, default=60)
    parser.add_argument("--big-page", type=int, default=2000, help="versions of botolike")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstream(latency=args.latency) as upstream,
        FakeOsv(latency=args.latency) as osv,
    ):
        root = Path(tmp)
        requirements = build(upstream, args.apps, args.libraries, args.big_page)
        print(f"{args.apps} applications, {args.libraries + 3} libraries, a page of "
              f"{args.big_page} versions, {args.latency * 1000:.0f} ms per request")  # fmt: skip
        for label, policy in (("1 target (3.12 linux)", ONE_TARGET), ("15 default targets", "")):
            desired = write_state(root / label.split()[0], upstream, osv, requirements, policy)
            env = clean_env(root / label.split()[0] / "cache")
            plan = mirror("plan", "--format", "json", "--desired-state", str(desired))
            print(f"mirror plan, {label}:")
            print(line("cold", measured(plan, env)))
            print(line("warm", measured(plan, env)))
        (root / "requirements.in").write_text(requirements)
        uv = Path(sys.executable).with_name("uv")
        env = {**clean_env(root / "uv"), "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
        env["UV_CACHE_DIR"] = str(root / "uv-cache")
        compile_ = [str(uv), "pip", "compile", "--universal", "--index-url", upstream.index_url,
                    "--exclude-newer", (NOW - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    str(root / "requirements.in")]  # fmt: skip
        print("uv pip compile --universal (14-day cooldown):")
        print(line("cold", measured(compile_, env)))
        print(line("warm", measured(compile_, env)))


if __name__ == "__main__":
    main()
