"""The mirror next to its peers, against one local upstream; prints a line per tool.

One fake upstream (default 300 projects x 5 versions aged 400, 200, 90, 30 and 3 days, 40 ms
latency per request, as is the fake OSV), and for each tool: wall seconds, the requests it made
to the upstream (and, for the mirror, to OSV), and its time over `mirror plan` cold:
1. `mirror plan` cold (empty MIRROR_CACHE_DIR) and warm (ETag revalidation), policy
   `min_age_days: 14`, with the dependency closure on (core metadata from PEP 658 files); the
   bound N*latency/C with C = 16;
2. `mirror apply --auto-approve` from a cold cache (plans again, downloads, places);
3. `pip download --no-deps` of the same projects (no pip configuration, no cache);
4. `bandersnatch mirror` with the allowlist plugin restricted to the same projects, installed
   from the package index into a venv of its own (its XML-RPC and project JSON API are served by
   benchmarks/peer_servers.py); `--skip-bandersnatch` leaves it out;
5. `mirror plan` cold at 10x the projects, to show growth;
6. the ratios the planner's speed goals are set in, each beside its goal: cold plan over
   `pip download`, apply over bandersnatch, the 10x plan over its bound, and its growth.

Run from the repository root:
`python benchmarks/bench_peers.py [--projects N] [--latency-ms MS] [--skip-bandersnatch]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import NOW, clean_env, mirror, write_state  # noqa: E402
from peer_servers import PeerUpstream  # noqa: E402

from tests.servers.osv import FakeOsv  # noqa: E402

AGES = (400, 200, 90, 30, 3)
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "2.0")
CONCURRENCY = 16  # the mirror's fetch concurrency, for the bound N*latency/C
BANDERSNATCH_WORKERS = 10  # bandersnatch refuses more than 10


def populate(upstream: PeerUpstream, projects: int) -> list[str]:
    names = [f"project-{i:04d}" for i in range(projects)]
    for name in names:
        for age, version in zip(AGES, VERSIONS, strict=True):
            upstream.add_release(name, version, NOW - timedelta(days=age))
    return names


@contextmanager
def world(
    projects: int, latency: float
) -> Iterator[tuple[Path, PeerUpstream, FakeOsv, list[str], Path]]:
    """A temp dir, the upstream with `projects` projects, OSV, and a desired state listing them."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        PeerUpstream(latency=latency) as upstream,
        FakeOsv(latency=latency) as osv,
    ):
        root = Path(tmp)
        names = populate(upstream, projects)
        desired = write_state(root, upstream, osv, "".join(f"{n}\n" for n in names))
        yield root, upstream, osv, names, desired


def run(command: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[float, int]:
    """(seconds, exit code) of one child; its output goes to `log`, exit -9 on timeout."""
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = -9
    return time.perf_counter() - started, code


def tail(log: Path, lines: int = 5) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def breakdown(upstream: PeerUpstream) -> str:
    """The upstream's requests since the last reset, by kind."""
    kinds: Counter[str] = Counter()
    with upstream._lock:
        requests = list(upstream.requests.items())
    for (method, path), n in requests:
        if method == "POST":
            kinds["XML-RPC"] += n
        elif path.startswith("/simple/"):
            kinds["pages"] += n
        elif path.endswith(".metadata"):
            kinds["metadata"] += n
        elif path.startswith(("/files/", "/packages/")):
            kinds["files"] += n
        elif path.startswith("/pypi/"):
            kinds["JSON API"] += n
        else:
            kinds["other"] += n
    total = sum(kinds.values())
    return f"{total} upstream requests (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")"


def osv_requests(osv: FakeOsv) -> str:
    return f"OSV {osv.count()} ({osv.count('/v1/querybatch')} querybatch)"


def line(label: str, seconds: float, base: float, detail: str) -> None:
    print(f"  {label:28} {seconds:7.2f} s  x{seconds / base:5.2f}  {detail}")


def files_under(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file()) if directory.exists() else 0


def bench_bandersnatch(
    root: Path, upstream: PeerUpstream, names: list[str], base: float, timeout: float
) -> float | None:
    """bandersnatch's mirror time of the same projects (None: not measured, said why)."""
    venv = root / "bandersnatch-venv"
    python3 = shutil.which("python3") or sys.executable
    started = time.perf_counter()
    log = root / "bandersnatch-install.log"
    _, code = run([python3, "-m", "venv", str(venv)], dict(os.environ), log, 120)
    if code == 0:
        # The machine's own pip configuration: this is an ordinary install from the index.
        command = [str(venv / "bin" / "pip"), "install", "-q", "bandersnatch"]
        _, code = run(command, dict(os.environ), log, 300)
    installed = time.perf_counter() - started
    if code != 0:
        print(f"  bandersnatch: not measured: install failed (exit {code}): {tail(log)}")
        return None
    ask = "import bandersnatch; print(bandersnatch.__version__)"
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", ask], capture_output=True, text=True
    ).stdout.strip()
    packages = "".join(f"    {name}\n" for name in names)
    config = root / "bandersnatch.conf"
    config.write_text(
        "[mirror]\n"
        f"directory = {root / 'bandersnatch'}\n"
        f"master = {upstream.url}\n"
        "allow-non-https = true\n"
        f"workers = {BANDERSNATCH_WORKERS}\n"
        "json = true\n"
        "release-files = true\n"
        "hash-index = false\n"
        "stop-on-error = true\n"
        "timeout = 10\n"
        "global-timeout = 600\n"
        "\n[plugins]\nenabled =\n    allowlist_project\n"
        f"\n[allowlist]\npackages =\n{packages}"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    log = root / "bandersnatch.log"
    upstream.reset_counts()
    command = [str(venv / "bin" / "bandersnatch"), "--config", str(config), "mirror"]
    elapsed, code = run(command, env, log, timeout)
    placed = files_under(root / "bandersnatch" / "web" / "packages")
    if code != 0:
        print(f"  bandersnatch: not measured: `bandersnatch mirror` exit {code}: {tail(log)}")
        return None
    line(
        f"bandersnatch {version} mirror",
        elapsed,
        base,
        f"exit {code}, {breakdown(upstream)}; {placed} files placed; {BANDERSNATCH_WORKERS} "
        f"workers (its maximum); venv + install took {installed:.0f} s, not counted",
    )
    return elapsed


def bench(projects: int, latency: float, skip_bandersnatch: bool) -> dict[str, float | None]:
    """Each tool's seconds, by name; and the growth run's."""
    seconds: dict[str, float | None] = {"bandersnatch": None}
    with world(projects, latency) as (root, upstream, osv, names, desired):
        print(
            f"{projects} projects x {len(VERSIONS)} versions (ages {AGES} days, min_age_days 14),"
            f" {latency * 1000:.0f} ms latency per request at the upstream and OSV:"
        )
        plan = mirror("plan", "--format", "json", "--desired-state", str(desired))
        env = clean_env(root / "cache")

        upstream.reset_counts()
        osv.reset_counts()
        cold, code = run(plan, env, root / "plan-cold.log", 600)
        seconds["plan"] = cold
        cold_detail = f"exit {code}, {breakdown(upstream)}, {osv_requests(osv)}"
        line("mirror plan, cold cache", cold, cold, cold_detail)
        if code not in (0, 2):
            print(f"    {tail(root / 'plan-cold.log')}")

        upstream.reset_counts()
        osv.reset_counts()
        warm, code = run(plan, env, root / "plan-warm.log", 600)
        line(
            "mirror plan, warm cache",
            warm,
            cold,
            f"exit {code}, {breakdown(upstream)}, statuses {dict(upstream.statuses)}, "
            f"{osv_requests(osv)}",
        )
        bound = projects * latency / CONCURRENCY
        print(f"  {'bound N*latency/C (C = 16)':28} {bound:7.2f} s  (N = {projects} pages)")

        upstream.reset_counts()
        osv.reset_counts()
        apply = mirror("apply", "--auto-approve", "--desired-state", str(desired))
        log = root / "apply.log"
        elapsed, code = run(apply, clean_env(root / "apply-cache"), log, 600)
        seconds["apply"] = elapsed
        placed = sum(1 for p in (root / "registry").rglob("*.whl"))
        line(
            "mirror apply (cold cache)",
            elapsed,
            cold,
            f"exit {code}, {breakdown(upstream)}, {osv_requests(osv)}; {placed} wheels placed",
        )
        if code != 0:
            print(f"    {tail(log)}")

        (root / "reqs.txt").write_text("".join(f"{name}\n" for name in names))
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--isolated"]
        pip += ["--no-cache-dir", "--index-url", upstream.index_url, "-d", str(root / "pip")]
        pip += ["-r", str(root / "reqs.txt")]
        upstream.reset_counts()
        log = root / "pip.log"
        elapsed, code = run(pip, clean_env(root / "unused"), log, 600)
        seconds["pip"] = elapsed
        line(
            "pip download --no-deps",
            elapsed,
            cold,
            f"exit {code}, {breakdown(upstream)}; {files_under(root / 'pip')} files",
        )
        if code != 0:
            print(f"    {tail(log)}")

        if skip_bandersnatch:
            print("  bandersnatch: not measured: --skip-bandersnatch")
        else:
            try:
                seconds["bandersnatch"] = bench_bandersnatch(root, upstream, names, cold, 600)
            except Exception as error:  # the benchmark goes on: report, don't crash
                print(f"  bandersnatch: not measured: {type(error).__name__}: {error}")
    seconds["growth"], seconds["growth bound"] = bench_growth(projects * 10, latency, cold)
    return seconds


def bench_growth(projects: int, latency: float, base: float) -> tuple[float, float]:
    """A cold plan at `projects` projects: (seconds, the bound N*latency/C)."""
    with world(projects, latency) as (root, upstream, osv, names, desired):
        plan = mirror("plan", "--format", "json", "--desired-state", str(desired))
        upstream.reset_counts()
        osv.reset_counts()
        log = root / "plan.log"
        elapsed, code = run(plan, clean_env(root / "cache"), log, 600)
        bound = projects * latency / CONCURRENCY
        line(
            f"mirror plan cold, {projects} proj.",
            elapsed,
            base,
            f"exit {code}, {breakdown(upstream)}, {osv_requests(osv)}; bound {bound:.2f} s",
        )
        if code not in (0, 2):
            print(f"    {tail(log)}")
        return elapsed, bound


def ratios(seconds: dict[str, float | None], growth: int) -> None:
    """Each ratio issue 15 sets a goal for, beside it."""
    print("ratios (wall time), with their goals:")
    figures = (
        ("cold plan / pip download --no-deps", "plan", "pip", 0.05),
        ("apply / bandersnatch mirror", "apply", "bandersnatch", 0.1),
        (f"plan of {growth}x projects / its bound", "growth", "growth bound", 1.5),
        (f"growth of the cold plan, {growth}x projects", "growth", "plan", 11.0),
    )
    for label, top, bottom, goal in figures:
        a, b = seconds.get(top), seconds.get(bottom)
        if a is None or not b:
            print(f"  {label:44} not measured")
            continue
        verdict = "met" if a / b <= goal else "NOT met"
        print(f"  {label:44} {a / b:7.3f}x  goal <= {goal:g}x: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--skip-bandersnatch", action="store_true")
    args = parser.parse_args()
    print(f"{'tool':30} {'wall':>7}    {'/plan cold':>6}  requests")
    ratios(bench(args.projects, args.latency_ms / 1000, args.skip_bandersnatch), 10)


if __name__ == "__main__":
    main()
