"""The mirror beside uv on a real team's requirements and a real index.

`mirror plan` of benchmarks/data/webteam.txt (20 lines; every default target, 15; the `safety`
database offline as the advisory service, since OSV is out of reach of most CI machines) cold
(empty HTTP cache) and warm, beside `uv pip compile --universal --exclude-newer <14 days ago>` of
the same file on the same index, cold (empty uv cache) and warm. Prints wall time, CPU time and
peak memory of each, then the ratios with their goals (issue 15): cold plan at most 2x uv's cold
compile, warm plan no slower than uv's warm one, peak memory under 150 MiB.

The safety database is the `safety-db` package from the same index (`--safety-db DIR` names
one already unpacked). Needs the index reachable; the mirror's other services are not asked.

Run from the repository root:
`python benchmarks/bench_uv.py [--index-url URL] [--requirements FILE] [--safety-db DIR]`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_core import NOW, clean_env, line, measured, mirror  # noqa: E402

HERE = Path(__file__).resolve().parent
GOALS = (  # (label, goal as a ratio, what the ratio is of)
    ("cold plan / uv cold compile", 2.0),
    ("warm plan / uv warm compile", 1.0),
)
MEMORY_GOAL_MIB = 150.0


def safety_db(index_url: str, into: Path) -> Path:
    """The `safety-db` package's database directory, downloaded from the index."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
         ":all:", "--index-url", index_url, "--dest", str(into), "safety-db"],
        check=True, env=clean_env(into / "pip-cache"),
    )  # fmt: skip
    wheel = next(into.glob("safety_db-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into / "unpacked")
    return into / "unpacked" / "safety_db"


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default="https://pypi.org/simple/")
    parser.add_argument("--requirements", type=Path, default=HERE / "data" / "webteam.txt")
    parser.add_argument("--safety-db", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        database = args.safety_db or safety_db(args.index_url, root / "safety")
        desired = root / "desired-state"
        desired.mkdir()
        shutil.copy(args.requirements, desired / "requirements.txt")
        (desired / "config.yaml").write_text(
            "policy:\n  min_age_days: 14\n  vulnerabilities:\n    services: [safety]\n"
            f"    safety:\n      database: {database.resolve()}\n"
            f"upstream:\n  index_url: {args.index_url}\n"
            "registry:\n  type: directory\n  path: registry\n"
        )
        env = clean_env(root / "cache")
        plan = mirror("plan", "--format", "json", "--desired-state", str(desired))
        cooldown = (NOW - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
        uv = Path(sys.executable).with_name("uv")
        uv_env = {**clean_env(root / "uv"), "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
        uv_env["UV_CACHE_DIR"] = str(root / "uv-cache")
        compile_ = [str(uv), "pip", "compile", "--universal", "--index-url", args.index_url,
                    "--exclude-newer", cooldown, "--quiet", "--output-file", str(root / "out.txt"),
                    str(args.requirements)]  # fmt: skip
        print(f"{args.requirements.name} on {args.index_url}:")
        figures = {
            "mirror plan cold": measured(plan, env),
            "mirror plan warm": measured(plan, env),
            "uv pip compile --universal cold": measured(compile_, uv_env),
            "uv pip compile --universal warm": measured(compile_, uv_env),
        }
        for label, figure in figures.items():
            print(line(label, figure))
        cold = figures["mirror plan cold"][0] / figures["uv pip compile --universal cold"][0]
        warm = figures["mirror plan warm"][0] / figures["uv pip compile --universal warm"][0]
        peak = max(figures["mirror plan cold"][2], figures["mirror plan warm"][2])
        print("ratios (wall time):")
        for (label, goal), value in zip(GOALS, (cold, warm), strict=True):
            print(f"  {label:<34} {value:6.2f}x   goal <= {goal:g}x: {verdict(value, goal)}")
        print(
            f"  {'mirror plan peak memory':<34} {peak:6.1f} MiB goal < {MEMORY_GOAL_MIB:g} MiB: "
            f"{verdict(peak, MEMORY_GOAL_MIB)}"
        )


if __name__ == "__main__":
    main()
