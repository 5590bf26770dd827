"""Markdown for merge-request notes and CI summaries, in the order a reviewer decides.

A summary paragraph first (what changes, what is blocked, bytes, targets); then what needs a
decision (repairs, quarantines, blocked requirements); then what the listed requirements and
lockfile entries change; then their dependencies, folded and grouped by the listed project that
pulls them in; then what the next plans will do on their own (versions maturing, one line), what
leaves, advisories and warnings. Each version has one row; each waiting version is named once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from reconciler.model import Action, Advisory, Plan, Section
from reconciler.report.interface import PlanFormat
from reconciler.report.text import (
    action_line,
    advisory_line,
    blocked_requirement,
    by_pulled_by,
    later_lines,
    pulled_in_by,
    size,
    sources_line,
    summary_lines,
)

_CHANGE_HEADER = "| package | version | files | size | why |"
# Backslash-escaped in text from outside (CommonMark 2.4: any ASCII punctuation may be): markdown's
# own, HTML's `<` and `&`, and GitLab's reference sigils (@user, #issue, !MR, ~label, %milestone,
# $snippet, &epic, ^alert), which GitLab leaves alone once escaped.
_MARKUP = re.compile(r"[\\`*_\[\]|~#!<>&@%$^]")
_BULLET = re.compile(r"^[-+=]")
_ORDERED = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")
# What a link target keeps as it is: none of the characters that end it or a table cell.
_URL_SAFE = ":/?#@!$&'*+,;=%~.-_"
NBSP = "\u00a0"  # `29.0 MB` stays on one line in a narrow column


class MarkdownFormat(PlanFormat):
    """A plan as a markdown note.

    `fold_after`: a section (but what needs a decision) with more rows goes inside `<details>`;
    dependencies are always folded. `max_rows`: rows past this are cut, with a line saying how
    many (notes have a size limit).
    """

    def __init__(self, fold_after: int | None = None, max_rows: int | None = None) -> None:
        self.fold_after = fold_after
        self.max_rows = max_rows

    def render(self, plan: Plan) -> str:
        """Markdown text."""
        first, *rest = summary_lines(plan)
        lines = ["### Mirror plan", "", " ".join([f"**{first}**", *map(cell, rest)]), ""]
        own = plan.own()  # a merge request's: not what its target plans anyway
        in_section = {section: [a for a in own if a.section is section] for section in Section}
        lines += self._decisions(plan, in_section[Section.DECISION])
        lines += self._section(
            f"Requirements ({len(in_section[Section.REQUIREMENTS])})",
            _CHANGE_HEADER,
            [_change_row(a, plan) for a in in_section[Section.REQUIREMENTS]],
        )
        lines += self._dependencies(in_section[Section.DEPENDENCIES], plan)
        for line in later_lines(plan):
            lines += [cell(line), ""]
        lines += self._section(
            f"Removals ({len(in_section[Section.REMOVALS])})",
            _CHANGE_HEADER,
            [_change_row(a, plan) for a in in_section[Section.REMOVALS]],
        )
        lines += advisory_section(plan.advisories, self.max_rows)
        if plan.warnings:
            warnings = [f"- {cell(w)}" for w in plan.warnings]
            lines += ["#### Warnings", "", *_cut(warnings, self.max_rows), ""]
        lines.append(
            f"<sub>Evaluated at {plan.evaluated_at:%Y-%m-%d %H:%M} UTC; "
            f"{cell(sources_line(plan.advisory_sources))}</sub>"
        )
        return "\n".join(lines) + "\n"

    def _decisions(self, plan: Plan, quarantines: Sequence[Action]) -> list[str]:
        """Repairs, quarantines and blocked requirements: never folded; repairs and
        quarantines never cut (blocked rows are, as every table's, to fit a note)."""
        kept = [f"| repair | {cell(repair)} | |" for repair in plan.repairs]
        kept += [
            f"| quarantine **{cell(a.name)} {cell(a.version)}** "
            f"| {_linked(action_line(a, plan), plan)} | |"
            for a in quarantines
        ]
        rows = [
            f"| blocked {cell(blocked_requirement(b, plan))} "
            f"| {_linked(b.detail, plan)} "  # when it becomes eligible: its own column
            f"| {f'{b.eligible_at:%Y-%m-%d}' if b.eligible_at else ''} |"
            for b in plan.blocked
        ]
        if not kept and not rows:
            return []
        table = self._table("| what | why | eligible |", rows, kept)
        return [f"#### Needs a decision ({len(kept) + len(rows)})", "", *table, ""]

    def _dependencies(self, actions: Sequence[Action], plan: Plan) -> list[str]:
        """The dependencies' changes, folded, grouped by the listed projects that pull them
        in (the group named on its first row)."""
        if not actions:
            return []
        rows = [
            f"| {cell(pulled_in_by(pulled_by) if index == 0 else '')} |"
            f"{_change_row(action, plan)[1:]}"
            for pulled_by, group in by_pulled_by(actions)
            for index, action in enumerate(group)
        ]
        table = self._table("| pulled in by " + _CHANGE_HEADER, rows)
        title = f"Dependencies ({len(actions)}), by the listed requirement that pulls them in"
        return _folded(title, table)

    def _section(self, title: str, header: str, rows: list[str]) -> list[str]:
        """A titled table, folded and cut as configured; nothing for no rows."""
        if not rows:
            return []
        table = self._table(header, rows)
        if self.fold_after is not None and len(rows) > self.fold_after:
            return _folded(title, table)
        return [f"#### {title}", "", *table, ""]

    def _table(self, header: str, rows: list[str], kept: Sequence[str] = ()) -> list[str]:
        """A table with its header: the `kept` rows, then `rows` cut at `max_rows` with a line
        saying how many are left."""
        columns = header.count("|") - 1
        return [header, "|" + " --- |" * columns, *kept, *_cut(rows, self.max_rows)]


def _folded(title: str, table: list[str]) -> list[str]:
    """A table inside `<details>`, its title the summary (blank lines around it: CommonMark
    reads the table as markdown inside an HTML block only so)."""
    return [f"<details><summary>{title}</summary>", "", *table, "", "</details>", ""]


def _cut(lines: Sequence[str], max_rows: int | None) -> list[str]:
    """The first `max_rows` lines, and a line saying how many more there are."""
    if max_rows is None or len(lines) <= max_rows:
        return list(lines)
    return [
        *lines[:max_rows],
        f"\n_{len(lines) - max_rows} more not shown here; the full plan is the job's plan.json "
        "artifact (`mirror show plan.json`)._",
    ]


def _change_row(action: Action, plan: Plan) -> str:
    """`| django | 5.2.19 | 2 | 8.1 MB | new requirement django>=4.2 |`"""
    bytes_ = sum(f.size or 0 for f in action.files if f.url is not None)
    return (
        f"| {cell(action.name)} | {cell(action.version)} | {len(action.files)} "
        f"| {size(bytes_).replace(' ', NBSP) if bytes_ else ''} "
        f"| {_linked(action_line(action, plan), plan)} |"
    )


def _linked(text: str, plan: Plan) -> str:
    """Cell text with each advisory the plan names linked where it is named, as a whole id
    (`PYSEC-2024-1` is not inside `PYSEC-2024-12`)."""
    return _with_links(text, plan.advisories)


def _with_links(text: str, advisories: Sequence[Advisory]) -> str:
    links = {
        a.id: a.link for a in advisories if a.id and a.link.startswith(("https://", "http://"))
    }
    if not links:
        return cell(text)
    ids = "|".join(map(re.escape, sorted(links, key=len, reverse=True)))
    parts, done = [], 0
    for found in re.finditer(rf"(?<![\w./=#:?&-])({ids})(?![\w-])", text):  # not inside a URL
        parts += [cell(text[done : found.start()]), link(found[1], links[found[1]])]
        done = found.end()
    return "".join([*parts, cell(text[done:])])


def link(text: str, url: str) -> str:
    """`[text](url)`, the URL quoted so that nothing in it ends the link or a table cell."""
    return f"[{cell(text)}]({quote(url, safe=_URL_SAFE)})"


def advisory_section(advisories: Sequence[Advisory], max_rows: int | None = None) -> list[str]:
    """Markdown lines listing advisories, each linked, with aliases, summary and fix."""
    if not advisories:
        return []
    listed = [f"- {_with_links(advisory_line(a), [a])}" for a in advisories]
    return [f"#### Advisories ({len(advisories)})", "", *_cut(listed, max_rows), ""]


def cell(text: str) -> str:
    """Text from outside (a yank reason, a requirement's marker, an advisory's summary) as
    literal text in a table cell: no HTML (it could close the table or a `<details>` and
    hide what follows), no emphasis or code, no line break, no cell break."""
    text = _MARKUP.sub(r"\\\g<0>", text.replace("\r", " ").replace("\n", " ").lstrip())
    # Nor a list item, a code block or a rule where it starts a line (`- x`, `1. x`, `---`).
    return _ORDERED.sub(r"\1\\\2", _BULLET.sub(r"\\\g<0>", text))
