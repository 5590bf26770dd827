"""Formats render what upstream and users wrote literally, never as markup."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model import Action, ActionKind, Blocked, Plan, Problem, Waiting
from reconciler.report import MarkdownFormat, TableFormat
from tests.conftest import FROZEN_NOW

PLAN = Plan(
    created_at=FROZEN_NOW,
    evaluated_at=FROZEN_NOW,
    desired_digest="sha256:d",
    actual_digest="sha256:a",
    actions=(
        Action(ActionKind.UPLOAD, "requests", "2.32.3", "new requirement requests[socks]>=2", ()),
        Action(
            ActionKind.DELETE,
            "bad",
            "1.0",
            "yanked upstream: [/x] oops",
            (),
            quarantine=True,
            advisories=("GHSA-1",),
        ),
    ),
    blocked=(Blocked("foo", "foo|bar==1", Problem.IMMATURE, "1: 3 days old", FROZEN_NOW),),
    warnings=("ignore entry [bold]X[/bold] expired",),
)


def test_table_keeps_brackets_literal() -> None:
    text = TableFormat(width=200).render(PLAN)
    assert "requests[socks]>=2" in text
    assert "[/x] oops [GHSA-1]" in text
    assert "warning: ignore entry [bold]X[/bold] expired" in text
    assert "Plan: 1 to upload, 1 to delete (1 quarantine), 1 blocked." in text


def test_markdown_escapes_table_cells() -> None:
    text = MarkdownFormat().render(PLAN)
    assert "#### Needs a decision (2)" in text and "#### Requirements (1)" in text
    assert "foo\\|bar==1" in text
    assert f"| {FROZEN_NOW:%Y-%m-%d} |" in text


def test_a_plan_that_only_blocks_says_so_and_names_what_waits_to_mature() -> None:
    only_blocked = replace(
        PLAN,
        actions=(),
        blocked=(*PLAN.blocked, replace(PLAN.blocked[0], name="bar", requirement="bar>=2")),
        waiting=(Waiting("baz", "1.4", FROZEN_NOW), Waiting("qux", "2.0", FROZEN_NOW)),
    )
    for text in (TableFormat().render(only_blocked), MarkdownFormat().render(only_blocked)):
        assert "No changes to the registry; 2 requirements blocked." in text
        assert "matches the desired state" not in text
        assert "Waiting to mature: baz 1.4 (Nov 24); qux 2.0 (Nov 24)" in text
    nothing = replace(PLAN, actions=(), blocked=())
    assert "No changes. The registry matches the desired state." in TableFormat().render(nothing)
