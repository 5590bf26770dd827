"""The plan for people at a terminal (the only module that renders with rich), and for logs.

At a terminal the plan follows its width: rich tables where they fit, wrapped lines where a
table would split words. Anywhere else (a CI log, a pipe) it is plain lines, one per change.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from io import StringIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reconciler.model import Action, ActionKind, Plan, Section
from reconciler.report.interface import PlanFormat
from reconciler.report.text import (
    action_line,
    advisory_line,
    blocked_line,
    blocked_requirement,
    by_pulled_by,
    change_heading,
    later_lines,
    pulled_in_by,
    sources_line,
    summary_lines,
)

# Below this many columns a five-column table splits words: wrapped lines instead.
MIN_TABLE_WIDTH = 100
_INDENT = "    "
_STYLES = {ActionKind.UPLOAD: "green", ActionKind.DELETE: "red"}


class TableFormat(PlanFormat):
    """Changes, blocked requirements, advisories and warnings.

    `width`: the terminal's columns, or None when not writing to a terminal (plain lines,
    unwrapped: a CI log wraps them itself). `color`: ANSI colour, for a terminal.
    """

    def __init__(self, color: bool = False, width: int | None = None) -> None:
        self.color = color
        self.width = width

    def render(self, plan: Plan) -> str:
        """The plan as text."""
        if self.width is not None and self.width >= MIN_TABLE_WIDTH:
            return self._tables(plan, self.width)
        lines = list(_plain_lines(plan))
        if self.width is None:
            return "\n".join(line for line, _ in lines) + "\n"
        return "".join(_wrapped(line, indent, self.width) for line, indent in lines)

    def _tables(self, plan: Plan, width: int) -> str:
        buffer = StringIO()
        console = Console(
            file=buffer, force_terminal=self.color, no_color=not self.color, width=width
        )
        first, *rest = summary_lines(plan)
        console.print(Text(first, style="bold"), highlight=False)
        for line in rest:
            console.print(escape(line), highlight=False)
        for table in _decision_tables(plan, width):
            console.print(table)
        for line in later_lines(plan):
            console.print(escape(line), highlight=False)
        for table in _later_tables(plan, width):
            console.print(table)
        for warning in plan.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        if sources := _sources(plan):
            console.print(escape(sources), highlight=False)
        return buffer.getvalue()


def _decision_tables(plan: Plan, width: int) -> Iterator[Table]:
    """What needs a decision (repairs, quarantines, blocked requirements), the listed
    requirements' changes, then their dependencies' by the listed projects that pull them in;
    each a table when there are any."""
    decisions = [(Text("~ repair", "yellow"), Text(repair)) for repair in plan.repairs]
    decisions += [
        (Text(change_heading(a), "bold red"), Text(action_line(a, plan)))
        for a in _in(plan, Section.DECISION)
    ]
    decisions += [
        (Text(f"x blocked {blocked_requirement(b, plan)}", "red"), Text(blocked_line(b)))
        for b in plan.blocked
    ]
    if decisions:
        yield _table("Needs a decision", width, ("what", "why"), decisions)
    yield from _changes("Requirements", width, _in(plan, Section.REQUIREMENTS), plan)
    dependencies = [
        (Text(pulled_in_by(pulled_by) if index == 0 else ""), *_change_cells(action, plan))
        for pulled_by, actions in by_pulled_by(_in(plan, Section.DEPENDENCIES))
        for index, action in enumerate(actions)
    ]
    if dependencies:
        header = ("pulled in by", "change", "why")
        yield _table("Dependencies", width, header, dependencies)


def _later_tables(plan: Plan, width: int) -> Iterator[Table]:
    """What leaves the registry, and the advisories the plan names."""
    yield from _changes("Removals", width, _in(plan, Section.REMOVALS), plan)
    if plan.advisories:
        advisories = [(Text(advisory_line(a)), Text(a.link)) for a in plan.advisories]
        yield _table("Advisories", width, ("advisory", "link"), advisories)


def _changes(title: str, width: int, actions: Sequence[Action], plan: Plan) -> Iterator[Table]:
    if actions:
        rows = [_change_cells(a, plan) for a in actions]
        yield _table(title, width, ("change", "why"), rows)


def _change_cells(action: Action, plan: Plan) -> tuple[Text, Text]:
    return Text(change_heading(action), _STYLES[action.kind]), Text(action_line(action, plan))


def _in(plan: Plan, section: Section) -> list[Action]:
    """The plan's own actions (a merge request's: not what its target plans anyway) shown in
    a section."""
    return [a for a in plan.own() if a.section is section]


def _table(
    title: str, width: int, header: tuple[str, ...], rows: Sequence[tuple[Text, ...]]
) -> Table:
    """A table whose columns are at least as wide as their longest word (as far as the width
    allows), so that rich wraps between words instead of splitting a name or a link."""
    table = Table(title=title)
    room = width - 3 * len(header) - 1  # borders and padding aside
    columns = [[row[index].plain for row in rows] for index in range(len(header))]
    longest_word = [max([len(n), *(len(w) for c in cells for w in c.split())])
                    for n, cells in zip(header, columns, strict=True)]  # fmt: skip
    natural = [max([len(n), *map(len, cells)]) for n, cells in zip(header, columns, strict=True)]
    first = _shares(longest_word, room)
    extra = _shares([n - f for n, f in zip(natural, first, strict=True)], room - sum(first))
    for name, *parts in zip(header, first, extra, strict=True):
        table.add_column(name, overflow="fold", width=sum(parts))
    for row in rows:
        table.add_row(*row)
    return table


def _shares(wanted: list[int], room: int) -> list[int]:
    """Widths for columns wanting `wanted`, within `room`: the modest ones get all they want,
    the rest share what is left evenly (water-filling)."""
    given = [0] * len(wanted)
    left = room
    for count, index in enumerate(sorted(range(len(wanted)), key=lambda i: wanted[i])):
        given[index] = min(wanted[index], left // (len(wanted) - count))
        left -= given[index]
    return given


def _plain_lines(plan: Plan) -> Iterator[tuple[str, str]]:
    """(line, indent for its continuation lines), in the order the tables show them."""
    first, *rest = summary_lines(plan)
    yield first, ""
    for line in rest:
        yield line, _INDENT
    for repair in plan.repairs:
        yield f"~ repair {repair}", _INDENT
    yield from _plain_changes(_in(plan, Section.DECISION), plan)
    for blocked in plan.blocked:
        yield f"x blocked {blocked_requirement(blocked, plan)} ({blocked.reason.value})", _INDENT
        yield _INDENT + blocked_line(blocked), _INDENT
    yield from _plain_changes(_in(plan, Section.REQUIREMENTS), plan)
    for pulled_by, actions in by_pulled_by(_in(plan, Section.DEPENDENCIES)):
        yield f"dependencies of {pulled_in_by(pulled_by)}:", _INDENT
        yield from _plain_changes(actions, plan)
    for line in later_lines(plan):
        yield line, _INDENT
    yield from _plain_changes(_in(plan, Section.REMOVALS), plan)
    for advisory in plan.advisories:
        yield f"advisory {advisory_line(advisory)}", _INDENT
        if advisory.link:
            yield _INDENT + advisory.link, _INDENT
    for warning in plan.warnings:
        yield f"warning: {warning}", _INDENT
    if sources := _sources(plan):
        yield sources, _INDENT


def _plain_changes(actions: Sequence[Action], plan: Plan) -> Iterator[tuple[str, str]]:
    for action in actions:
        yield change_heading(action), _INDENT
        yield _INDENT + action_line(action, plan), _INDENT


def _sources(plan: Plan) -> str | None:
    return sources_line(plan.advisory_sources) if plan.advisory_sources else None


def _wrapped(line: str, indent: str, width: int) -> str:
    """A line wrapped at spaces to the width; only a word longer than a line is cut."""
    first_indent = line[: len(line) - len(line.lstrip())]
    return (
        textwrap.fill(
            line.strip(),
            width=width,
            initial_indent=first_indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,  # a word longer than the line (a URL) stays whole
        )
        + "\n"
    )
