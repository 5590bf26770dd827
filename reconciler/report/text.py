"""Phrases every format shares, so the table, markdown and CI lines say the same thing."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model import Action, ActionKind, Advisory, AdvisorySource, Blocked, Plan


def summary_line(plan: Plan) -> str:
    """`Plan: 3 to upload, 1 to delete (1 quarantine), 2 blocked.`"""
    quarantines = sum(1 for a in plan.actions if a.quarantine)
    deletes = f"{plan.count(ActionKind.DELETE)} to delete"
    if quarantines:
        deletes += f" ({quarantines} quarantine)"
    return (
        f"Plan: {plan.count(ActionKind.UPLOAD)} to upload, {deletes}, {len(plan.blocked)} blocked."
    )


def action_line(action: Action) -> str:
    """The reason of an action, naming its advisories when the reason does not already."""
    unnamed = [i for i in action.advisories if i not in action.reason]
    if unnamed:
        return f"{action.reason} [{', '.join(unnamed)}]"
    return action.reason


def blocked_line(blocked: Blocked) -> str:
    """What blocks a requirement, with when it becomes eligible."""
    if blocked.eligible_at is not None:
        return f"{blocked.detail} (eligible {blocked.eligible_at:%Y-%m-%d %H:%M} UTC)"
    return blocked.detail


def advisory_line(advisory: Advisory) -> str:
    """`GHSA-… (CVE-…): summary; fixed in 2.0.1`: what a reviewer needs besides the link."""
    text = advisory.id
    if advisory.aliases:
        text += f" ({', '.join(advisory.aliases)})"
    if advisory.summary:
        text += f": {advisory.summary}"
    text += f"; fixed in {', '.join(advisory.fixed_in)}" if advisory.fixed_in else "; no fix yet"
    return text


def sources_line(sources: Sequence[AdvisorySource]) -> str:
    """Which services answered, when, from which database, and what they could not check."""
    parts = []
    for source in sources:
        part = f"{source.service.value} at {source.answered_at:%Y-%m-%d %H:%M} UTC"
        if source.database:
            part += f" ({source.database})"
        if source.unanswered:
            part += f", {source.unanswered} version(s) unknown to it"
        parts.append(part)
    return "advisories from " + "; ".join(parts) if parts else "no advisory service consulted"
