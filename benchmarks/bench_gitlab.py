"""How many GitLab API requests plans, drifts and applies make against a registry of 2000 packages.

A fake GitLab (tests/servers/gitlab.py) holds 2000 mirrored packages; the local upstream has
them too, plus newer versions of 50. Prints, per command, the requests by route and the time:
- `mirror plan` with nothing to change, before the mirror has recorded the registry's files
  (every package's files listed) and after a drift recorded them (the goal: at most 200);
- `mirror drift`, which lists every file and records them;
- `mirror apply` of a plan that moves 50 requirements to a newer version and drops 50 others
  (50 uploads; the 100 versions no longer wanted are retained, their yank marks kept in the
  mirror state: `policy.retain_days`), and the plan after it.

The fake enforces GitLab.com's limit for authenticated API requests, 2000 per minute per user
(`--rate-limit`, 0 for none), as Rack::Attack does: fixed one-minute windows, RateLimit headers
on every answer, 429 past the limit. Commands that need more than a window's worth (the first
plan and the drift) pace themselves by those headers; the 429 count shows whether they stayed
under the limit.

The times include the fakes' own work: the fake GitLab and the fake upstream run in this
process, in Python, and on a 2-core machine they, not the mirror, are the bottleneck. The request
counts are the figures that carry over to a real GitLab.

Run from the repository root: `python benchmarks/bench_gitlab.py [--packages N] [--latency-ms N]`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_core import NOW, clean_env, mirror, run_measured, write_state  # noqa: E402

from tests.servers.gitlab import FakeGitLab, Throttle  # noqa: E402
from tests.servers.osv import FakeOsv  # noqa: E402
from tests.servers.upstream import FakeFile, FakeUpstream  # noqa: E402

ONE_TARGET = '  environments:\n    - {python: "3.12", platform: linux}\n'
ROUTES = (
    ("package listing", r"/packages\?"),
    ("package files", r"/packages/\d+/package_files"),
    ("upload", r"/packages/pypi$"),
    ("delete", r"^DELETE .*/packages/\d+$"),
    ("lock", r"/terraform/state/[^/]+/lock"),
    ("state", r"/terraform/state/[^/?]+(\?|$)"),
)


def route(method: str, path: str) -> str:
    for label, pattern in ROUTES:
        if re.search(pattern, f"{method} {path}" if pattern.startswith("^") else path):
            return label
    return "other"


def measure(label: str, gitlab: FakeGitLab, command: list[str], env: dict[str, str]) -> None:
    start, throttled = len(gitlab.request_log), gitlab.throttled
    elapsed, _, code = run_measured(command, env)
    routes = Counter(route(m, p) for m, p in gitlab.request_log[start:])
    total = sum(routes.values())
    detail = ", ".join(f"{count} {name}" for name, count in routes.most_common())
    limited = gitlab.throttled - throttled
    print(
        f"  {label:28} {elapsed:6.2f} s  exit {code}, {total} API requests "
        f"({limited} answered 429): {detail}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=5)
    parser.add_argument("--rate-limit", type=int, default=2000, help="API requests per minute")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstream() as upstream,
        FakeOsv() as osv,
        FakeGitLab(latency=latency) as gitlab,
    ):
        root = Path(tmp)
        if args.rate_limit:
            gitlab.throttle = Throttle(limit=args.rate_limit, period=60)
        names = [f"project-{i:04d}" for i in range(args.packages)]
        for index, name in enumerate(names):
            module = name.replace("-", "_")
            filename = f"{module}-1.0-py3-none-any.whl"
            content = f"{name} 1.0".encode()
            upstream.add_file(name, FakeFile(filename, NOW - timedelta(days=100), content))
            gitlab.add_package(name, "1.0", {filename: content})
            if index < 50:
                upstream.add_file(
                    name,
                    FakeFile(f"{module}-1.1-py3-none-any.whl", NOW - timedelta(days=30), b"1.1"),
                )
        env = clean_env(root / "cache")
        env.update(
            CI_API_V4_URL=gitlab.api_url,
            CI_PROJECT_ID=gitlab.project_id,
            CI_JOB_TOKEN=gitlab.job_token,
        )
        limit = f"{args.rate_limit} per minute" if args.rate_limit else "none"
        print(
            f"GitLab registry of {args.packages} packages, {args.latency_ms:.0f} ms latency per "
            f"API request, rate limit {limit}:"
        )
        pinned = "".join(f"{name}==1.0\n" for name in names)
        # One target: the GitLab requests do not depend on how many the plan judges for.
        desired = write_state(root, upstream, osv, pinned, ONE_TARGET, registry="type: gitlab")
        plan = mirror("plan", "--desired-state", str(desired))
        measure("plan, no record yet", gitlab, plan, env)
        drift = mirror("drift", "--desired-state", str(desired), "--report-dir", str(root))
        measure("drift (records, paced)", gitlab, drift, env)
        measure("plan, recorded (goal <=200)", gitlab, plan, env)
        changed = "".join(f"{name}\n" for name in names[:50]) + "".join(
            f"{name}==1.0\n" for name in names[100:]
        )
        write_state(root, upstream, osv, changed, ONE_TARGET, registry="type: gitlab")
        measure(
            "apply, 50 up + 100 retained",
            gitlab,
            mirror("apply", "--auto-approve", "--desired-state", str(desired)),
            env,
        )
        measure("plan after that apply", gitlab, plan, env)


if __name__ == "__main__":
    main()
