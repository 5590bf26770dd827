"""Markdown for merge-request notes and CI summaries."""

from __future__ import annotations

from reconciler.model import ActionKind, Plan
from reconciler.report.interface import PlanFormat
from reconciler.report.text import action_line, blocked_line, summary_line


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
                    f"| {_cell(a.name)} | {_cell(a.version)} | {len(a.files)} | "
                    f"{_cell(action_line(a))} |"
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
                    f"| {_cell(b.requirement)} | {_cell(b.reason)} | {_cell(blocked_line(b))} "
                    f"| {eligible} |"
                )
            lines.append("")
        if plan.warnings:
            lines += ["#### Warnings", ""] + [f"- {_cell(w)}" for w in plan.warnings] + [""]
        sources = ", ".join(
            f"{s.service} at {s.answered_at:%Y-%m-%d %H:%M} UTC" for s in plan.advisory_sources
        )
        lines.append(
            f"<sub>Evaluated at {plan.evaluated_at:%Y-%m-%d %H:%M} UTC"
            + (f"; advisories from {sources}" if sources else "")
            + "</sub>"
        )
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
