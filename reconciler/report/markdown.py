"""Markdown for merge-request notes and CI summaries."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model import ActionKind, Advisory, Cause, Plan
from reconciler.report.interface import PlanFormat
from reconciler.report.text import (
    action_line,
    advisory_line,
    blocked_line,
    blocked_requirement,
    footer_lines,
    headline,
    sources_line,
)


class MarkdownFormat(PlanFormat):
    """A plan as a markdown note: summary, changes, quarantines, blocked, warnings.

    `fold_after`: a section with more rows goes inside `<details>` (long plans stay readable).
    `max_rows`: rows past this are cut, with a line saying how many (notes have a size limit).
    """

    def __init__(self, fold_after: int | None = None, max_rows: int | None = None) -> None:
        self.fold_after = fold_after
        self.max_rows = max_rows

    def render(self, plan: Plan) -> str:
        """Markdown text."""
        lines = ["### Mirror plan", "", f"**{headline(plan)}**", ""]
        for line in footer_lines(plan):
            lines += [cell(line), ""]
        lines += self._section(
            f"Repair ({len(plan.repairs)})",
            "| registry out of line |",
            [f"| {cell(repair)} |" for repair in plan.repairs],
        )
        quarantines = [a for a in plan.actions if a.quarantine]
        retains = [a for a in plan.actions if a.cause is Cause.RETAINED]
        uploads = [a for a in plan.actions if a.kind is ActionKind.UPLOAD and a not in retains]
        deletes = [a for a in plan.actions if a.kind is ActionKind.DELETE and not a.quarantine]
        for title, actions in (
            ("Quarantine", quarantines),
            ("Upload", uploads),
            ("Retain, yanked, until removed", retains),
            ("Delete", deletes),
        ):
            lines += self._section(
                f"{title} ({len(actions)})",
                "| package | version | files | reason |",
                [
                    f"| {cell(a.name)} | {cell(a.version)} | {len(a.files)} | "
                    f"{cell(action_line(a, plan))} |"
                    for a in actions
                ],
            )
        lines += self._section(
            f"Blocked ({len(plan.blocked)})",
            "| requirement | reason | detail | eligible |",
            [
                f"| {cell(blocked_requirement(b, plan))} | {cell(b.reason.value)} "
                f"| {cell(blocked_line(b))} "
                f"| {f'{b.eligible_at:%Y-%m-%d}' if b.eligible_at else ''} |"
                for b in plan.blocked
            ],
        )
        lines += advisory_section(plan.advisories)
        if plan.warnings:
            lines += ["#### Warnings", ""] + [f"- {cell(w)}" for w in plan.warnings] + [""]
        lines.append(
            f"<sub>Evaluated at {plan.evaluated_at:%Y-%m-%d %H:%M} UTC; "
            f"{cell(sources_line(plan.advisory_sources))}</sub>"
        )
        return "\n".join(lines) + "\n"

    def _section(self, title: str, header: str, rows: list[str]) -> list[str]:
        """A titled table, folded and cut as configured; nothing for no rows."""
        if not rows:
            return []
        columns = header.count("|") - 1
        shown = rows if self.max_rows is None else rows[: self.max_rows]
        table = [header, "|" + " --- |" * columns, *shown]
        if len(shown) < len(rows):
            table.append(
                f"\n_{len(rows) - len(shown)} more not shown here; the full plan is the "
                "job's plan.json artifact (`mirror show plan.json`)._"
            )
        if self.fold_after is not None and len(rows) > self.fold_after:
            return [f"<details><summary>{title}</summary>", "", *table, "", "</details>", ""]
        return [f"#### {title}", "", *table, ""]


def advisory_section(advisories: Sequence[Advisory]) -> list[str]:
    """Markdown lines listing advisories, each linked, with aliases, summary and fix."""
    if not advisories:
        return []
    lines = [f"#### Advisories ({len(advisories)})", ""]
    for advisory in advisories:
        text = cell(advisory_line(advisory))
        if advisory.link.startswith(("https://", "http://")):
            text = text.replace(advisory.id, f"[{advisory.id}]({advisory.link})", 1)
        lines.append(f"- {text}")
    return [*lines, ""]


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
