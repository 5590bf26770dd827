"""Benchmark of the audit: `mirror plan` over a registry holding 3000 mirrored versions.

Every plan re-checks everything the registry holds. This prints how long a plan takes when the
registry holds N versions (default 600 projects x 5 versions = 3000), with 40 ms latency per
request at the fake upstream and the fake OSV, and how many requests each service cost:
- OSV alone, cold cache (every advisory record fetched) and warm (records unchanged: batches
  only);
- OSV and PyPI's JSON API together (PyPI needs one request per version).

Run from the repository root: `python benchmarks/bench_audit.py [--projects N] [--versions N]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_core import NOW, clean_env, mirror, run_measured, write_state  # noqa: E402

from reconciler.model import PlannedFile  # noqa: E402
from reconciler.registry import DirectoryRegistry  # noqa: E402
from tests.servers.osv import FakeOsv  # noqa: E402
from tests.servers.upstream import FakeFile, FakeUpstream  # noqa: E402


def build(root: Path, upstream: FakeUpstream, projects: int, versions: int) -> list[str]:
    """Upstream releases, and a directory registry already holding every one of them."""
    registry = DirectoryRegistry(root / "registry")
    names = [f"project-{i:04d}" for i in range(projects)]
    with registry.staging() as staging:
        for name in names:
            module = name.replace("-", "_")
            for v in range(versions):
                version = f"1.{v}"
                fake = upstream.add_file(
                    name,
                    FakeFile(
                        f"{module}-{version}-py3-none-any.whl",
                        NOW - timedelta(days=400 - v),
                        f"{name} {version}".encode(),
                    ),
                )
                local = staging / fake.filename
                local.write_bytes(fake.content or b"")
                registry.upload(name, version, PlannedFile(fake.filename, fake.sha256), local)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=600)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=40)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstream(latency=latency) as upstream,
        FakeOsv(latency=latency) as osv,
    ):
        root = Path(tmp)
        names = build(root, upstream, args.projects, args.versions)
        held = args.projects * args.versions
        for i in range(0, args.projects, 20):  # one advisory per 20 projects, on an old version
            osv.add(f"GHSA-bench-{i:04d}", names[i], ["1.0"], fixed="1.1")
        print(
            f"plan auditing {held} mirrored versions ({args.projects} projects x "
            f"{args.versions}), {args.latency_ms:.0f} ms latency per request:"
        )
        env = clean_env(root / "cache")
        for label, services in (
            ("osv, cold cache", "osv"),
            ("osv, warm cache", "osv"),
            ("osv + pypi, warm", "osv, pypi"),
        ):
            desired = write_state(
                root / f"desired-{services.replace(', ', '-')}",
                upstream,
                osv,
                "".join(f"{name}\n" for name in names),
                policy=f"  prune: false\n  vulnerabilities:\n    services: [{services}]\n",
                registry=f"path: {root / 'registry'}",
            )
            upstream.reset_counts()
            osv.reset_counts()
            command = mirror("plan", "--format", "json", "--desired-state", str(desired))
            elapsed, peak, code = run_measured(command, env)
            print(
                f"  {label:17} {elapsed:6.2f} s  exit {code}, peak RSS {peak:.0f} MiB; "
                f"OSV: {osv.count('/v1/querybatch')} querybatch + {osv.count('/v1/vulns/')} "
                f"records; upstream: {upstream.count('/simple/')} pages, "
                f"{upstream.count('/pypi/')} JSON API"
            )


if __name__ == "__main__":
    main()
