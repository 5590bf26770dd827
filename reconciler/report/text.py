"""Phrases every format shares, so the table, markdown and CI lines say the same thing."""

from __future__ import annotations

from reconciler.model import Action, ActionKind, Blocked, Plan


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
    """The reason of an action, with its advisories when it quarantines."""
    if action.advisories:
        return f"{action.reason} [{', '.join(action.advisories)}]"
    return action.reason


def blocked_line(blocked: Blocked) -> str:
    """What blocks a requirement, with when it becomes eligible."""
    if blocked.eligible_at is not None:
        return f"{blocked.detail} (eligible {blocked.eligible_at:%Y-%m-%d %H:%M} UTC)"
    return blocked.detail
