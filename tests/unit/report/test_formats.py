"""Formats render what upstream and users wrote literally, never as markup."""

from __future__ import annotations

from reconciler.model import Action, ActionKind, Blocked, Plan, Problem
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
    assert "#### Quarantine (1)" in text and "#### Upload (1)" in text
    assert "foo\\|bar==1" in text
    assert f"| {FROZEN_NOW:%Y-%m-%d} |" in text
