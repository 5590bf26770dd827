"""A local upstream for the README's quick start: the example's packages, PyPI-shaped, and OSV.

`python -m tests.servers.demo` serves fake releases of every project in
`desired-state/requirements.txt` (real, installable wheels and sdists with realistic ages), an
OSV server with one advisory, and writes `demo-state/`: the example desired state pointed at
them. Its files are byte-stable and their upload times are kept in `demo-state/demo.json`, so a
restarted demo serves the same upstream (only its ports change) and a plan says "No changes".
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

from packaging.requirements import Requirement

from reconciler.clock import Clock, system_clock
from tests.servers.osv import FakeOsv
from tests.servers.upstream import FakeUpstream

# Realistic histories for the example's projects: (version, age in days).
HISTORIES = {
    "requests": [("2.31.0", 500), ("2.32.3", 180), ("2.32.4", 60), ("2.32.5", 4)],
    "urllib3": [("2.2.3", 200), ("2.3.0", 90), ("2.5.0", 9)],
    "idna": [("3.7", 300), ("3.10", 45)],
    "certifi": [("2025.8.3", 100), ("2025.10.5", 40), ("2025.11.12", 12)],
    "charset-normalizer": [("3.4.2", 150), ("3.4.3", 70), ("3.4.4", 2)],
    "packaging": [("24.1", 400), ("24.2", 365), ("25.0", 200)],
}
GENERIC = [("1.0", 90), ("1.1", 30), ("1.2", 3)]
STATE_FILE = "demo.json"  # in the demo's desired state: when the demo first started


def start_demo(
    desired_state: Path, out: Path, clock: Clock = system_clock
) -> tuple[FakeUpstream, FakeOsv]:
    """Start the demo's upstream and OSV and write `out/`, the example pointed at them.

    Ages count from the demo's first start (kept in `out/demo.json`), not from each start.
    """
    anchor = _first_start(out, clock)
    upstream, osv = FakeUpstream().start(), FakeOsv().start()
    for line in (desired_state / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name = Requirement(line).name
        for version, age in HISTORIES.get(name.lower(), GENERIC):
            upstream.add_release(name, version, anchor - timedelta(days=age), sdist=True)
    # One known advisory, so the quick start shows a range stepping around it.
    osv.add("GHSA-demo-0001", "requests", ["2.32.4"], fixed="2.32.5", summary="demo advisory")

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(desired_state, out)
    config = (out / "config.yaml").read_text()
    config = re.sub(r"index_url: .*", f"index_url: {upstream.index_url}", config)
    config = re.sub(r"osv_url: .*", f"osv_url: {osv.url}", config)
    config = re.sub(r"path: registry\b", "path: demo-registry", config)
    (out / "config.yaml").write_text(config)
    (out / STATE_FILE).write_text(json.dumps({"first_start": anchor.isoformat()}) + "\n")
    return upstream, osv


def _first_start(out: Path, clock: Clock) -> datetime:
    try:
        return datetime.fromisoformat(json.loads((out / STATE_FILE).read_text())["first_start"])
    except (OSError, ValueError, KeyError, TypeError):
        return clock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desired-state", type=Path, default=Path("desired-state"))
    parser.add_argument("--out", type=Path, default=Path("demo-state"))
    args = parser.parse_args()
    upstream, osv = start_demo(args.desired_state, args.out)
    print(f"upstream index on {upstream.index_url}, OSV on {osv.url}", flush=True)
    print(f"wrote {args.out}/ (the example desired state, pointed at them); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
