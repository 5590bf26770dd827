"""The merge-request note as GitLab shows it: rendered with a CommonMark + GFM-tables renderer
(markdown-it-py, as GitLab's own renderer reads tables and raw HTML), its structure checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from html.parser import HTMLParser

from markdown_it import MarkdownIt

from reconciler.model import (
    Action,
    ActionKind,
    Advisory,
    Baseline,
    Blocked,
    Cause,
    Plan,
    PlannedFile,
    Problem,
    Waiting,
)
from reconciler.notes import MAX_DIFFERENCES, applied_body, note_body
from reconciler.report import TableFormat
from reconciler.report.markdown import _linked, cell
from tests.conftest import FROZEN_NOW

LISTED = [f"app-{i:02d}" for i in range(20)]


def _upload(name: str, version: str, pulled_by: tuple[str, ...] = ()) -> Action:
    files = tuple(
        PlannedFile(f"{name}-{version}-{tag}.whl", "a" * 64, url=f"https://f/{name}", size=10_000)
        for tag in ("py3-none-any", "cp312-cp312-win_amd64")
    )
    cause = Cause.NEW_DEPENDENCY if pulled_by else Cause.NEW_REQUIREMENT
    parent = f"{pulled_by[0]} 1.0" if pulled_by else ""
    reason = f"new dependency of {parent}" if pulled_by else f"new requirement {name}>=1"
    return Action(ActionKind.UPLOAD, name, version, reason, files, cause=cause, pulled_by=pulled_by)


def _delete(name: str, version: str, reason: str, cause: Cause) -> Action:
    files = (PlannedFile(f"{name}-{version}.tar.gz", None, before_sha256="b" * 64),)
    return Action(ActionKind.DELETE, name, version, reason, files, cause=cause)


def realistic_plan() -> Plan:
    """~80 packages: 20 listed requirements, 60 dependencies (some shared), a quarantine, two
    blocked requirements, versions waiting to mature, a removal."""
    listed = [_upload(name, "1.0") for name in LISTED]
    dependencies = [
        _upload(f"lib-{i:02d}", "2.0", (LISTED[i % 20],) if i % 7 else (LISTED[0], LISTED[i % 20]))
        for i in range(60)
    ]
    quarantine = _delete("evil", "0.9", "has GHSA-aaaa-bbbb-cccc", Cause.ADVISORY)
    quarantine = replace(quarantine, quarantine=True, advisories=("GHSA-aaaa-bbbb-cccc",))
    removal = _delete("old", "1.0", "not desired", Cause.NOT_DESIRED)
    later = FROZEN_NOW + timedelta(days=5)
    return Plan(
        created_at=FROZEN_NOW,
        evaluated_at=FROZEN_NOW,
        desired_digest="d",
        actual_digest="a",
        actions=(quarantine, *listed, *dependencies, removal),
        blocked=(
            Blocked("young", "young>=2", Problem.IMMATURE, "2.0: 3 days old", later),
            Blocked(
                "bad",
                "bad==1.0",
                Problem.VULNERABLE,
                "1.0: has GHSA-dddd-eeee-ffff",
                None,
                advisories=("GHSA-dddd-eeee-ffff",),
            ),  # fmt: skip
        ),
        advisories=(
            Advisory("GHSA-aaaa-bbbb-cccc", link="https://osv.dev/GHSA-aaaa-bbbb-cccc"),
            Advisory("GHSA-dddd-eeee-ffff", link="https://osv.dev/GHSA-dddd-eeee-ffff"),
        ),
        waiting=tuple(
            Waiting(name, version, later + timedelta(days=day))
            for day, (name, version) in enumerate(
                [("app-01", "1.1"), ("app-01", "1.2"), ("lib-03", "2.1"), ("app-01", "1.3")]
            )
        ),
        download_bytes=80 * 20_000,
        held_bytes=80 * 20_000,
        min_age_days=14,
    )


@dataclass
class Element:
    """An HTML element as rendered: its tag, and its text and child elements in order."""

    tag: str
    parts: list[str | Element] = field(default_factory=list)
    attrs: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def children(self) -> list[Element]:
        return [part for part in self.parts if isinstance(part, Element)]

    def all_text(self) -> str:
        return "".join(p if isinstance(p, str) else p.all_text() for p in self.parts)

    def find(self, tag: str) -> list[Element]:
        found = [self] if self.tag == tag else []
        return found + [e for child in self.children for e in child.find(tag)]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Element("root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, attrs=attrs)
        self.stack[-1].parts.append(element)
        if tag not in ("br", "hr", "img"):
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1 and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def rendered(markdown: str) -> Element:
    """The note as HTML (CommonMark with GFM tables and raw HTML, as GitLab renders notes),
    parsed back into a tree."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    tree = _Tree()
    tree.feed(html)
    return tree.root


def test_the_note_leads_with_its_summary_then_what_needs_a_decision() -> None:
    root = rendered(note_body(realistic_plan()))
    top = [e for e in root.children if e.tag not in ("p",) or e.all_text().strip()]
    assert [e.tag for e in top[:3]] == ["h3", "p", "h4"]
    summary = top[1].all_text()
    assert summary.startswith("Plan: 80 to upload, 2 to delete (1 quarantine), 2 blocked.")
    assert "Downloads 1.6 MB; the registry holds 1.6 MB after." in summary
    headings = [e.all_text() for e in root.children if e.tag == "h4"]
    assert headings[:2] == ["Needs a decision (3)", "Requirements (20)"]
    decision_rows = [r.all_text() for r in top[3].find("tr")[1:]]
    assert [row.split()[:2] for row in decision_rows] == [
        ["quarantine", "evil"],
        ["blocked", "young>=2"],
        ["blocked", "bad==1.0"],
    ]
    assert "2026-11-29" in decision_rows[1]  # when the blocked one becomes eligible
    links = {a.all_text() for table in top[3].find("table") for a in table.find("a")}
    assert links == {"GHSA-aaaa-bbbb-cccc", "GHSA-dddd-eeee-ffff"}


def test_dependencies_are_folded_and_grouped_by_the_requirement_that_pulls_them_in() -> None:
    root = rendered(note_body(realistic_plan()))
    (details,) = root.find("details")
    assert details.find("summary")[0].all_text().startswith("Dependencies (60)")
    rows = [[c.all_text() for c in tr.find("td")] for tr in details.find("tr")[1:]]
    assert len(rows) == 60 and all(row[1].startswith("lib-") for row in rows)
    groups = [row[0] for row in rows if row[0]]
    assert groups == sorted(set(groups)) and "app-00" in groups and "app-00, app-07" in groups
    outside = [tr for e in root.children if e.tag != "details" for tr in e.find("tr")]
    assert not any("lib-" in tr.all_text() for tr in outside)


def test_each_version_is_named_once_and_the_policy_once() -> None:
    plan = realistic_plan()
    root = rendered(note_body(plan))
    text = root.all_text()
    rows = [[td.all_text() for td in tr.find("td")] for tr in root.find("tr")]
    for action in plan.actions:  # a package and a version cell side by side, or "verb name version"
        pair, said = [action.name, action.version], f"{action.name} {action.version}"
        named = [
            row
            for row in rows
            if any(row[i : i + 2] == pair for i in range(len(row)))
            or (row and row[0].endswith(f" {said}"))
        ]
        assert len(named) == 1, action.id
    for waiting in plan.waiting:  # its versions appear nowhere else in this plan
        assert len(re.findall(rf"(?<![\w.]){re.escape(waiting.version)}(?![\w.])", text)) == 1
    waiting_line = next(p.all_text() for p in root.find("p") if "Waiting" in p.all_text())
    assert waiting_line == (
        "Waiting to mature (policy.min_age_days: 14): "
        "app-01 1.1 (Nov 29), 1.2 (Nov 30), 1.3 (Dec 2); lib-03 2.1 (Dec 1)"
    )
    assert text.count("min_age_days") == 1


def test_a_plan_with_nothing_to_decide_starts_with_its_requirements() -> None:
    plan = replace(
        realistic_plan(),
        actions=tuple(a for a in realistic_plan().actions if not a.quarantine),
        blocked=(),
    )
    headings = [e.all_text() for e in rendered(note_body(plan)).children if e.tag == "h4"]
    assert headings[0] == "Requirements (20)" and "Needs a decision" not in " ".join(headings)


def test_the_terminal_shows_the_same_order_and_fits_its_width() -> None:
    plan = realistic_plan()
    for width in (100, 120, 200):
        text = TableFormat(width=width).render(plan)
        assert max(map(len, text.splitlines())) <= width
        titles = ("Needs a decision", "Requirements", "Dependencies", "Removals")
        assert [text.index(t) for t in titles] == sorted(text.index(t) for t in titles)
        assert text.startswith("Plan: 80 to upload")
        assert text.index("Waiting to mature") < text.index("Removals")
    lines = TableFormat().render(plan).splitlines()  # a CI log: plain lines
    order = [
        lines.index("Plan: 80 to upload, 2 to delete (1 quarantine), 2 blocked."),
        lines.index("! quarantine evil 0.9 (1 file)"),
        lines.index("x blocked young>=2 (immature)"),
        lines.index("+ upload app-00 1.0 (2 files)"),
        lines.index("dependencies of app-00:"),
        next(i for i, line in enumerate(lines) if line.startswith("Waiting to mature")),
        lines.index("- delete old 1.0 (1 file)"),
    ]
    assert order == sorted(order)


def test_text_from_outside_cannot_change_the_note_s_structure() -> None:
    """A yank reason (any project owner's) or a requirement's marker that closes the table and
    opens a fold of its own stays text: the sections after it are where they were."""
    hostile = "bad</td></tr></table></details><details><summary>nothing to review *here*"
    plan = realistic_plan()
    actions = (replace(plan.actions[0], reason=f"yanked upstream: {hostile}\r| x |"),)
    root = rendered(note_body(replace(plan, actions=actions + plan.actions[1:])))
    headings = [e.all_text() for e in root.children if e.tag == "h4"]
    assert headings[:2] == ["Needs a decision (3)", "Requirements (20)"]
    (details,) = root.find("details")
    assert details.find("summary")[0].all_text().startswith("Dependencies (60)")
    first_row = [td.all_text() for td in root.find("tr")[1].find("td")]
    assert first_row[1].startswith(f"yanked upstream: {hostile} | x |")  # as it was written


def test_advisories_are_linked_by_whole_id() -> None:
    plan = realistic_plan()
    advisories = (
        Advisory("PYSEC-2024-1", link="https://osv.dev/PYSEC-2024-1"),
        Advisory("PYSEC-2024-12", link="https://osv.dev/a(b)|c"),
    )
    quarantine = replace(plan.actions[0], reason="has PYSEC-2024-12 and PYSEC-2024-1")
    plan = replace(plan, actions=(quarantine,), advisories=advisories, blocked=())
    root = rendered(note_body(plan))
    links = [(a.all_text(), dict(a.attrs)["href"]) for a in root.find("tr")[1].find("a")]
    assert links == [
        ("PYSEC-2024-12", "https://osv.dev/a%28b%29%7Cc"),
        ("PYSEC-2024-1", "https://osv.dev/PYSEC-2024-1"),
    ]


def test_a_note_past_its_limit_cuts_rows_of_every_table_not_the_sections_after() -> None:
    plan = realistic_plan()
    many = tuple(
        Blocked(f"pkg-{i}", f"pkg-{i}>=1", Problem.VULNERABLE, "has an advisory " * 12)
        for i in range(6000)
    )
    body = note_body(replace(plan, blocked=many), limit=200_000)
    assert len(body) <= 200_000 and "Truncated" not in body
    headings = [e.all_text() for e in rendered(body).children if e.tag == "h4"]
    assert headings[:2] == ["Needs a decision (6001)", "Requirements (20)"]
    assert "more not shown here" in body and "Waiting to mature" in body


def test_the_hidden_changes_never_hide_the_note_and_a_quarantine_is_never_cut() -> None:
    plan = realistic_plan()
    many = tuple(_upload(f"dep-{i:05d}", "1.0", ("app-00",)) for i in range(5000))
    noisy = tuple(Advisory(f"GHSA-{i:04d}", summary="x" * 80) for i in range(2000))
    for big in (replace(plan, actions=plan.actions + many), replace(plan, advisories=noisy)):
        body = note_body(big, limit=100_000)
        assert len(body) <= 100_000 and "Truncated" not in body
        root = rendered(body)
        assert root.find("h3")[0].all_text() == "Mirror plan"  # not swallowed by a comment
        decisions = root.find("table")[0].all_text()
        assert "quarantine evil 0.9" in decisions
    assert "pypi-delayed-mirror:changes" not in note_body(
        replace(plan, actions=plan.actions + many), limit=100_000
    )  # 5,000 changes of hidden data: left out rather than cut


def test_what_both_plans_make_is_said_once_a_quarantine_with_the_merge_s() -> None:
    plan = realistic_plan()
    quarantine, first, second = plan.actions[0], plan.actions[1], plan.actions[2]
    compared = replace(
        plan, baseline=Baseline("a" * 40, frozenset({quarantine.id, first.id})), blocked=()
    )
    root = rendered(note_body(compared))
    assert "Besides, 1 change the target branch plans anyway." in root.all_text()
    (anyway,) = [p.all_text() for p in root.find("p") if "anyway:" in p.all_text()]
    assert anyway == "The target branch (aaaaaaaaaaaa) plans these anyway: upload app-00 1.0"
    assert root.all_text().count("evil 0.9") == 1  # with the merge's, in Needs a decision
    assert f"| {second.name} | {second.version} |" in note_body(compared)


def test_gitlab_references_in_outside_text_stay_text() -> None:
    assert cell("ask @all about #12, !3, ~bug, %2.0, $4 & &5 <b>") == (
        "ask \\@all about \\#12, \\!3, \\~bug, \\%2.0, \\$4 \\& \\&5 \\<b\\>"
    )


def test_a_catalogue_the_target_plans_anyway_is_one_short_line() -> None:
    plan = realistic_plan()
    background = frozenset(a.id for a in plan.actions[1:61])
    text = rendered(note_body(replace(plan, baseline=Baseline("main", background)))).all_text()
    (anyway,) = [line for line in text.splitlines() if "plans these anyway" in line]
    assert anyway.startswith("The target branch (main) plans these anyway: upload app-00 1.0,")
    assert anyway.endswith("; and 30 more") and anyway.count(" 1.0") + anyway.count(" 2.0") == 30


def test_a_note_cut_to_any_limit_keeps_its_folds_closed_and_says_it_was_cut() -> None:
    plan = realistic_plan()
    quarantines = tuple(replace(plan.actions[0], name=f"evil-{i:03d}") for i in range(120))
    heavy = replace(plan, actions=quarantines + plan.actions)  # never cut: the text cut is
    for limit in (*range(2_500, 16_000, 409), *range(12_600, 12_900, 37)):
        body = note_body(heavy, limit=limit)
        assert len(body) <= limit
        assert body.count("<details>") == body.count("</details>"), limit
        root = rendered(body)
        outside = "".join(p.all_text() for p in root.children if p.tag != "details")
        assert "Truncated" in outside or "Truncated" not in body, limit


def test_an_applied_note_names_its_differences_within_bounds() -> None:
    plan = realistic_plan()
    plan = replace(plan, actions=(*plan.actions, *(_upload(f"x-{i}", "1.0") for i in range(300))))
    reviewed = note_body(replace(plan, actions=()))
    body = applied_body(plan, reviewed, "c" * 40)
    assert body.count("- applied, not in the reviewed plan:") == MAX_DIFFERENCES
    assert f"- and {len(plan.actions) - MAX_DIFFERENCES} more" in body
    without_data = reviewed.replace(reviewed.splitlines()[1], "")
    assert "too long to carry its changes; not compared" in applied_body(plan, without_data, None)


def test_outside_text_never_starts_a_list_a_rule_or_a_code_block() -> None:
    for text in ("- x", "+ x", "1. x", "2) x", "---", "=== x", "    x"):
        (item,) = rendered(f"- {cell(text)}\n").find("li")
        assert item.all_text() == text.strip() and not item.find("ul") and not item.find("ol")
        assert not item.find("hr") and not item.find("code")
    assert cell("5.2.19") == "5.2.19" and cell("12.5 MB") == "12.5 MB"


def test_an_advisory_id_inside_a_url_is_not_linked() -> None:
    advisory = Advisory("PYSEC-2024-1", link="https://osv.dev/PYSEC-2024-1")
    plan = replace(realistic_plan(), advisories=(advisory,))
    text = "see https://osv.dev/vulnerability?id=PYSEC-2024-1 and https://x/#PYSEC-2024-1"
    assert "[PYSEC" not in _linked(text, plan)
