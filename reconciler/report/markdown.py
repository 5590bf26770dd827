"""Markdown for merge-request notes and CI summaries."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model import ActionKind, Advisory, Plan
from reconciler.report.interface import PlanFormat
from reconciler.report.text import (
    action_line,
    advisory_line,
    blocked_line,
    sources_line,
    summary_line,
)


class MarkdownFormat(PlanFormat):
    """A plan as a markdown note: summary, changes, quarantines, blocked, warnings."""

    def render(self, plan: Plan) -> str:
        """Markdown text."""
        lines = ["### Mirror plan", "", f"**{summary_line(plan)}**", ""]
        quarantines = [a for a in plan.actions if a.quarantine]
        uploads = [a for a in plan.actions if a.action is ActionKind.UPLOAD]
        deletes = [a for a in plan.actions if a.action is ActionKind.DELETE and not a.quarantine]
        for title, actions in (
            ("Quarantine", quarantines),
            ("Upload", uploads),
            ("Delete", deletes),
        ):
            if actions:
                lines += [
                    f"#### {title} ({len(actions)})",
                    "",
                    "| package | version | files | reason |",
                    "| --- | --- | --- | --- |",
                ]
                lines += [
                    f"| {cell(a.name)} | {cell(a.version)} | {len(a.files)} | "
                    f"{cell(action_line(a))} |"
                    for a in actions
                ]
                lines.append("")
        if plan.blocked:
            lines += [
                f"#### Blocked ({len(plan.blocked)})",
                "",
                "| requirement | reason | detail | eligible |",
                "| --- | --- | --- | --- |",
            ]
            for b in plan.blocked:
                eligible = f"{b.eligible_at:%Y-%m-%d}" if b.eligible_at else ""
                lines.append(
                    f"| {cell(b.requirement)} | {cell(b.reason)} | {cell(blocked_line(b))} "
                    f"| {eligible} |"
                )
            lines.append("")
        lines += advisory_section(plan.advisories)
        if plan.warnings:
            lines += ["#### Warnings", ""] + [f"- {cell(w)}" for w in plan.warnings] + [""]
        lines.append(
            f"<sub>Evaluated at {plan.evaluated_at:%Y-%m-%d %H:%M} UTC; "
            f"{cell(sources_line(plan.advisory_sources))}</sub>"
        )
        return "\n".join(lines) + "\n"


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
