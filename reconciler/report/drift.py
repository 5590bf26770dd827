"""The nightly drift report: what was quarantined and why, and every other drift found.

Drift is any difference between the registry and what main's desired state and today's
upstream facts call for: a version to quarantine, one that matured since the last run, a file
changed, added or removed in the registry by hand, a yank marker that changed upstream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from reconciler.applier import ApplyResult
from reconciler.model import Action, ActionKind, Advisory, Cause, Plan
from reconciler.planfile import (
    FORMAT_VERSION,
    advisory_json,
    blocked_json,
    json_time,
    source_json,
)
from reconciler.report.markdown import advisory_section, cell, link
from reconciler.report.text import blocked_line, blocked_requirement, sources_line


class Category(str, Enum):
    """How a drift is presented; every cause belongs to one."""

    QUARANTINED = "quarantined"
    REPLACED = "replaced"
    ADMITTED = "admitted"
    RESTORED = "restored"
    RETAINED = "retained"
    REMOVED = "removed"
    REGISTRY_EDITED = "registry-edited"
    UPSTREAM_CHANGED = "upstream-changed"


TITLES = {
    Category.QUARANTINED: "Quarantined",
    Category.REPLACED: "In place of quarantined versions",
    Category.ADMITTED: "Admitted since the last run: matured, or newly selected",
    Category.RESTORED: "Restored: the cause of an earlier quarantine no longer applies",
    Category.RETAINED: "Retained: no longer desired, yanked until they are removed",
    Category.REMOVED: "Removed: superseded, or no longer needed",
    Category.REGISTRY_EDITED: "Registry changed outside the mirror (repaired)",
    Category.UPSTREAM_CHANGED: "Changed upstream",
}

_CATEGORY_OF = {
    Cause.ADVISORY: Category.QUARANTINED,
    Cause.YANKED: Category.QUARANTINED,
    Cause.VANISHED: Category.QUARANTINED,
    Cause.UPSTREAM_QUARANTINED: Category.QUARANTINED,
    Cause.REPLACEMENT: Category.REPLACED,
    Cause.NEW_REQUIREMENT: Category.ADMITTED,
    Cause.NEW_VERSION: Category.ADMITTED,
    Cause.NEW_DEPENDENCY: Category.ADMITTED,
    Cause.RESTORED: Category.RESTORED,
    Cause.RETAINED: Category.RETAINED,
    Cause.SUPERSEDED: Category.REMOVED,
    Cause.NOT_DESIRED: Category.REMOVED,
    Cause.NOT_ADMITTED: Category.REMOVED,
    Cause.MISSING_FROM_REGISTRY: Category.REGISTRY_EDITED,
    Cause.CHANGED_IN_REGISTRY: Category.REGISTRY_EDITED,
    Cause.YANK_CHANGED: Category.UPSTREAM_CHANGED,
    Cause.UPSTREAM_CHANGED: Category.UPSTREAM_CHANGED,
}


class Mode(str, Enum):
    """What the drift run did about what it found."""

    APPLIED = "applied"
    INTERRUPTED = "interrupted"  # Ctrl-C: applied in part, the rest left undone
    REPORT_ONLY = "report-only"
    REFUSED = "refused"  # too many deletions: nothing applied, a person must look


def category(action: Action) -> Category:
    """The report section an action belongs to."""
    if action.quarantine:
        return Category.QUARANTINED
    if action.cause is None:  # a plan saved before causes were recorded
        return Category.REMOVED if action.kind is ActionKind.DELETE else Category.ADMITTED
    return _CATEGORY_OF[action.cause]


@dataclass(frozen=True)
class DriftReport:
    """A drift run: its plan, what it did, and why nothing was done when it refused."""

    plan: Plan
    mode: Mode
    result: ApplyResult | None = None
    refusal: str | None = None

    @property
    def drifted(self) -> bool:
        """Whether anything differed from what the desired state calls for."""
        return self.plan.has_changes

    def to_json(self) -> str:
        """The report for machines (`drift-report.json`)."""
        plan = self.plan
        document: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "kind": "drift-report",
            "evaluated_at": json_time(plan.evaluated_at),
            "created_at": json_time(plan.created_at),
            "plan_id": plan.id,
            "drifted": self.drifted,
            "mode": self.mode.value,
            "refusal": self.refusal,
            "quarantined": [
                {
                    **_action_summary(a),
                    "advisories": [
                        {"id": advisory.id, **advisory_json(advisory)}
                        for advisory in _advisories(plan, a)
                    ],
                }
                for a in plan.actions
                if a.quarantine
            ],
            "drift": [
                {"category": category(a).value, **_action_summary(a)}
                for a in plan.actions
                if not a.quarantine
            ],
            "repairs": list(plan.repairs),
            "blocked": [blocked_json(b) for b in plan.blocked],
            "warnings": list(plan.warnings),
            "advisory_sources": [source_json(s) for s in plan.advisory_sources],
            "apply": None
            if self.result is None
            else {
                "uploaded": self.result.uploaded,
                "deleted": self.result.deleted,
                "skipped": self.result.skipped,
                "errors": list(self.result.errors),
                "undone": list(self.result.undone),
            },
        }
        return json.dumps(document, indent=2) + "\n"

    def to_markdown(self) -> str:
        """The report for people (`drift-report.md`, a CI summary or an issue)."""
        plan = self.plan
        lines = [f"### Mirror drift, {plan.evaluated_at:%Y-%m-%d %H:%M} UTC", ""]
        lines += [f"**{cell(self._headline())}**", ""]
        quarantined = [a for a in plan.actions if a.quarantine]
        if quarantined:
            lines += [
                f"#### {TITLES[Category.QUARANTINED]} ({len(quarantined)})",
                "",
                "| package | version | cause | advisories |",
                "| --- | --- | --- | --- |",
            ]
            for action in quarantined:
                linked = ", ".join(_linked(a) for a in _advisories(plan, action))
                lines.append(
                    f"| {cell(action.name)} | {cell(action.version)} | "
                    f"{cell(action.reason)} | {linked} |"
                )
            lines.append("")
        if plan.repairs:
            lines += [f"#### Registry pages and files repaired ({len(plan.repairs)})", ""]
            lines += [f"- {cell(repair)}" for repair in plan.repairs] + [""]
        for section in (c for c in Category if c is not Category.QUARANTINED):
            actions = [a for a in plan.actions if not a.quarantine and category(a) is section]
            if actions:
                lines += [
                    f"#### {TITLES[section]} ({len(actions)})",
                    "",
                    "| change | package | version | reason |",
                    "| --- | --- | --- | --- |",
                ]
                lines += [
                    f"| {a.kind.value} | {cell(a.name)} | {cell(a.version)} | {cell(a.reason)} |"
                    for a in actions
                ]
                lines.append("")
        lines += advisory_section(plan.advisories)
        if plan.blocked:
            lines += [f"#### Blocked requirements ({len(plan.blocked)})", ""]
            lines += [
                f"- {cell(blocked_requirement(b, plan))}: {cell(blocked_line(b))}"
                for b in plan.blocked
            ]
            lines.append("")
        problems = [*plan.warnings, *(self.result.errors if self.result else [])]
        if problems:
            lines += ["#### Warnings and errors", ""] + [f"- {cell(p)}" for p in problems] + [""]
        lines.append(f"<sub>{cell(sources_line(plan.advisory_sources))}</sub>")
        return "\n".join(lines) + "\n"

    def _headline(self) -> str:
        if not self.drifted:
            return "No drift: the registry matches the desired state."
        count = len(self.plan.actions) + len(self.plan.repairs)
        quarantines = sum(1 for a in self.plan.actions if a.quarantine)
        found = f"Drift found: {count} change(s), {quarantines} quarantine(s)"
        if self.mode is Mode.REPORT_ONLY:
            return f"{found}; report only, nothing changed."
        if self.mode is Mode.REFUSED:
            return f"{found}; NOT applied: {self.refusal}"
        if self.mode is Mode.INTERRUPTED and self.result is not None:
            return f"{found}; interrupted, left undone: {', '.join(self.result.undone)}."
        failed = len(self.result.errors) if self.result else 0
        return f"{found}; applied" + (f" with {failed} failure(s)." if failed else ".")


def _action_summary(action: Action) -> dict[str, Any]:
    return {
        "action": action.kind.value,
        "name": action.name,
        "version": action.version,
        "cause": action.cause.value if action.cause else None,
        "reason": action.reason,
        "files": [f.filename for f in action.files],
    }


def _advisories(plan: Plan, action: Action) -> list[Advisory]:
    """The details of an action's advisories (an id the plan lacks details for, bare)."""
    return [plan.advisory(i) or Advisory(i) for i in action.advisories]


def _linked(advisory: Advisory) -> str:
    fixed = f" (fixed in {', '.join(advisory.fixed_in)})" if advisory.fixed_in else ""
    if advisory.link.startswith(("https://", "http://")):
        return f"{link(advisory.id, advisory.link)}{cell(fixed)}"
    return cell(advisory.id + fixed)
