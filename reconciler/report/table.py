"""A rich table for people at a terminal (the only module that renders with rich)."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler.model import ActionKind, Plan
from reconciler.report.interface import PlanFormat
from reconciler.report.text import (
    action_line,
    advisory_line,
    blocked_line,
    sources_line,
    summary_line,
)


class TableFormat(PlanFormat):
    """Actions, blocked requirements and warnings as tables; colour only for a terminal."""

    def __init__(self, color: bool = False, width: int = 120) -> None:
        self.color = color
        self.width = width

    def render(self, plan: Plan) -> str:
        """The tables as text (with ANSI colour when `color`)."""
        buffer = StringIO()
        console = Console(
            file=buffer, force_terminal=self.color, no_color=not self.color, width=self.width
        )
        if plan.actions:
            table = Table(title="Changes", show_lines=False)
            for column in ("", "package", "version", "files", "reason"):
                table.add_column(column, overflow="fold")
            for action in plan.actions:
                if action.quarantine:
                    sign = "[bold red]! quarantine[/]"
                elif action.kind is ActionKind.UPLOAD:
                    sign = "[green]+ upload[/]"
                else:
                    sign = "[red]- delete[/]"
                table.add_row(
                    sign,
                    escape(action.name),
                    escape(action.version),
                    str(len(action.files)),
                    escape(action_line(action)),
                )
            console.print(table)
        else:
            console.print("No changes. The registry matches the desired state.")
        if plan.blocked:
            table = Table(title="Blocked")
            for column in ("requirement", "reason", "detail"):
                table.add_column(column, overflow="fold")
            for blocked in plan.blocked:
                table.add_row(
                    escape(blocked.requirement),
                    escape(blocked.reason.value),
                    escape(blocked_line(blocked)),
                )
            console.print(table)
        if plan.advisories:
            table = Table(title="Advisories")
            for column in ("advisory", "link"):
                table.add_column(column, overflow="fold")
            for advisory in plan.advisories:
                table.add_row(escape(advisory_line(advisory)), escape(advisory.link))
            console.print(table)
        for warning in plan.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        console.print(summary_line(plan), highlight=False)
        if plan.advisory_sources:
            console.print(escape(sources_line(plan.advisory_sources)), highlight=False)
        return buffer.getvalue()
