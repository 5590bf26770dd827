"""The plan file: round trip, and staleness that tolerates the plan's own partial work."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler import planfile, planner
from reconciler.errors import StalePlanError, UserError
from reconciler.model import ActualState, Plan, RegistryFile
from tests.conftest import (
    FROZEN_NOW,
    days_ago,
    make_desired,
    make_file,
    make_project,
    make_requirement,
)

OLD = make_file("foo", "1.0", days_ago(100))
NEW = make_file("foo", "1.1", days_ago(50))
BEFORE = ActualState((RegistryFile("foo", "1.0", OLD.filename, OLD.sha256 or ""),))
DESIRED = make_desired(make_requirement("foo>=1"))


def make_plan() -> Plan:
    return planner.plan(
        planner.PlanInputs(
            DESIRED,
            {"foo": make_project("foo", OLD, NEW)},
            {},
            BEFORE,
            FROZEN_NOW,
        )
    )


def test_round_trip(tmp_path: Path) -> None:
    plan = make_plan()
    path = tmp_path / "plan.json"
    path.write_text(planfile.to_json(plan))
    assert planfile.read_plan(path) == plan
    document = json.loads(path.read_text())
    assert document["format_version"] == 1
    assert document["summary"] == {"upload": 1, "delete": 1, "blocked": 0}
    assert set(document) >= {
        "created_at",
        "evaluated_at",
        "desired_digest",
        "actual_digest",
        "actions",
        "blocked",
        "advisory_sources",
    }


def test_fresh_before_during_and_after_apply() -> None:
    plan = make_plan()
    new_file = RegistryFile("foo", "1.1", NEW.filename, NEW.sha256 or "")
    planfile.check_fresh(plan, DESIRED, BEFORE)
    # An apply of this plan bumped the generation and recorded the plan's id, then died.
    planfile.check_fresh(plan, DESIRED, ActualState((*BEFORE.files, new_file), 1, plan.id))
    planfile.check_fresh(plan, DESIRED, ActualState((new_file,), 1, plan.id))


def test_partial_work_of_another_apply_is_stale() -> None:
    plan = make_plan()
    new_file = RegistryFile("foo", "1.1", NEW.filename, NEW.sha256 or "")
    with pytest.raises(StalePlanError, match="another apply"):
        planfile.check_fresh(plan, DESIRED, ActualState((new_file,), 1, "other-plan"))
    with pytest.raises(StalePlanError, match="the registry changed"):
        planfile.check_fresh(plan, DESIRED, ActualState((new_file,)))


def test_stale_when_desired_or_registry_changed() -> None:
    plan = make_plan()
    elsewhere = replace(DESIRED, digest="sha256:other", location="teams/web-state")
    with pytest.raises(StalePlanError, match="not made from teams/web-state as it is now"):
        planfile.check_fresh(plan, elsewhere, BEFORE)
    stranger = RegistryFile("bar", "2.0", "bar-2.0-py3-none-any.whl", "f" * 64)
    with pytest.raises(StalePlanError, match="registry changed"):
        planfile.check_fresh(plan, DESIRED, ActualState((*BEFORE.files, stranger)))
    wrong_bytes = RegistryFile("foo", "1.1", NEW.filename, "e" * 64)
    with pytest.raises(StalePlanError):
        planfile.check_fresh(plan, DESIRED, ActualState((*BEFORE.files, wrong_bytes)))


@pytest.mark.parametrize("content", ["", "{}", '{"format_version": 1}', "[1]"])
def test_malformed_plan_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(UserError, match="plan.json"):
        planfile.read_plan(path)


def _first_file(document: dict[str, Any]) -> dict[str, Any]:
    file: dict[str, Any] = document["actions"][0]["files"][0]
    return file


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(created_at=5),
        lambda d: d.update(evaluated_at="2026-11-24T12:00:00"),  # no zone
        lambda d: d.update(registry_generation="1"),
        lambda d: d["actions"][0].update(version=["1.1"]),
        lambda d: d["actions"][0].update(name=None),
        lambda d: _first_file(d).update(sha256="../../etc/passwd"),
        lambda d: _first_file(d).update(size=-1),
        lambda d: _first_file(d).update(requires_python={"x": 1}),
        lambda d: d.update(warnings="one"),
    ],
)
def test_a_plan_file_with_fields_of_the_wrong_type_is_a_user_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    document = json.loads(planfile.to_json(make_plan()))
    edit(document)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(UserError, match="malformed plan file"):
        planfile.read_plan(path)


def test_times_in_a_plan_file_are_read_as_utc(tmp_path: Path) -> None:
    """Expiry days are UTC days: an instant written with another offset must not move them."""
    document = json.loads(planfile.to_json(make_plan()))
    document["evaluated_at"] = "2026-11-23T13:04:00-23:00"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    evaluated = planfile.read_plan(path).evaluated_at
    assert evaluated.tzinfo == timezone.utc and evaluated.isoformat() == "2026-11-24T12:04:00+00:00"
