"""The README's quick start: the demo upstream, plan and apply, a restart that changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import mirror_app
from reconciler.wiring import Runtime
from tests.conftest import FROZEN_NOW, fast_retries, frozen_clock
from tests.e2e.helpers import installed_version, pip_install
from tests.servers.demo import start_demo

EXAMPLE = Path(__file__).resolve().parents[2] / "desired-state"


def test_the_demo_restarted_serves_the_same_upstream_and_the_plan_says_no_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIRROR_CACHE_DIR", str(tmp_path / "cache"))
    runtime = Runtime(clock=frozen_clock, retries=fast_retries())
    state = ["--desired-state", "demo-state"]
    upstream, osv = start_demo(EXAMPLE, tmp_path / "demo-state", frozen_clock)
    try:
        applied = CliRunner().invoke(mirror_app, ["apply", "--auto-approve", *state], obj=runtime)
        assert applied.exit_code == 0, applied.output
    finally:
        upstream.stop()
        osv.stop()
    site = tmp_path / "site"
    assert pip_install(f"file://{tmp_path}/demo-registry/simple", site, "requests").returncode == 0
    assert installed_version(site, "requests") == "2.32.3"  # 2.32.5 is young, 2.32.4 vulnerable

    def a_day_later() -> datetime:
        return FROZEN_NOW + timedelta(days=1)

    upstream, osv = start_demo(EXAMPLE, tmp_path / "demo-state", a_day_later)
    try:
        again = CliRunner().invoke(mirror_app, ["plan", "--detailed-exitcode", *state], obj=runtime)
    finally:
        upstream.stop()
        osv.stop()
    assert again.exit_code == 0, again.output
    assert "No changes" in again.stdout


def test_demo_distributions_are_byte_stable_whatever_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from tests.servers.wheels import make_sdist, make_wheel

    before = make_sdist("requests", "2.32.3"), make_wheel("requests", "2.32.3")
    later = time.time() + 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert (make_sdist("requests", "2.32.3"), make_wheel("requests", "2.32.3")) == before
