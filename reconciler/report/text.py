"""Phrases every format shares, so the table, markdown and CI lines say the same thing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from string import hexdigits

from reconciler.model import (
    Action,
    ActionKind,
    Advisory,
    AdvisorySource,
    Blocked,
    Cause,
    Change,
    Coverage,
    Plan,
    Waiting,
    download_size,
)


def summary_line(plan: Plan) -> str:
    """`Plan: 3 to upload, 1 to delete (1 quarantine), 2 to retain, 2 blocked.` (and repairs,
    if any)"""
    quarantines = sum(1 for a in plan.actions if a.quarantine)
    retains = sum(1 for a in plan.actions if a.cause is Cause.RETAINED)
    deletes = f"{plan.count(ActionKind.DELETE)} to delete"
    if quarantines:
        deletes += f" ({quarantines} quarantine)"
    retained = f", {retains} to retain" if retains else ""
    repairs = f", {plural(len(plan.repairs), 'repair')}" if plan.repairs else ""
    return (
        f"Plan: {plan.count(ActionKind.UPLOAD) - retains} to upload, {deletes}{retained}"
        f"{repairs}, {len(plan.blocked)} blocked."
    )


def plural(count: int, noun: str) -> str:
    """`1 requirement`, `6 requirements`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def headline(plan: Plan) -> str:
    """What the plan changes, in a line; a plan that only blocks says so instead of
    claiming the registry matches the desired state. Of a merge request's plan (compared with
    its target's), what the merge changes, and how many more changes the target makes anyway."""
    anyway = len(plan.actions) - len(plan.own())
    if anyway:
        own = replace(plan, actions=plan.own(), baseline=None)
        besides = f"{plural(anyway, 'change')} the target branch plans anyway"
        if own.has_changes:
            return f"{summary_line(own)} Besides, {besides}."
        blocked = f"{plural(len(plan.blocked), 'requirement')} blocked; " if plan.blocked else ""
        return f"No changes of this merge's own; {blocked}{besides}."
    if plan.has_changes:
        return summary_line(plan)
    if plan.blocked:
        return f"No changes to the registry; {plural(len(plan.blocked), 'requirement')} blocked."
    return "No changes. The registry matches the desired state."


def waiting_line(plan: Plan) -> str | None:
    """`Waiting to mature (policy.min_age_days: 14): boto3 1.44.6 (Dec 2), 1.44.7 (Dec 3);
    fastapi 0.163.0 (Nov 28)`: what the next plans will take, each version once, the rule once."""
    if not plan.waiting:
        return None
    by_name: dict[str, list[Waiting]] = {}
    for waiting in sorted(plan.waiting, key=lambda w: w.name):  # stable: by eligibility within
        by_name.setdefault(waiting.name, []).append(waiting)
    rule = f" (policy.min_age_days: {plan.min_age_days})" if plan.min_age_days is not None else ""
    return f"Waiting to mature{rule}: " + "; ".join(
        f"{name} " + ", ".join(f"{w.version} ({day(w.eligible_at)})" for w in versions)
        for name, versions in by_name.items()
    )


def day(moment: datetime) -> str:
    """`Dec 2`: a day within the next weeks, as people say it."""
    return f"{moment:%b} {moment.day}"


def by_pulled_by(actions: Sequence[Action]) -> list[tuple[tuple[str, ...], list[Action]]]:
    """Dependencies grouped by the listed projects that pull them in, in name order."""
    groups: dict[tuple[str, ...], list[Action]] = {}
    for action in sorted(actions, key=lambda a: (a.pulled_by, a.name)):
        groups.setdefault(action.pulled_by, []).append(action)
    return list(groups.items())


def pulled_in_by(names: Sequence[str]) -> str:
    """`celery`, `black, celery, django and 9 more`: the listed projects a dependency serves."""
    if len(names) <= 4:
        return ", ".join(names)
    return f"{', '.join(names[:3])} and {len(names) - 3} more"


def summary_lines(plan: Plan) -> list[str]:
    """What a reader needs first: the headline, then sizes, sets and targets."""
    lines = (headline(plan), sizes_line(plan), sets_line(plan), targets_line(plan))
    return [line for line in lines if line is not None]


def later_lines(plan: Plan) -> list[str]:
    """What happens without this plan's reviewer: what the target branch plans anyway (of a
    merge request's plan), versions maturing, versions kept (yanked) until they go."""
    lines = (anyway_line(plan), waiting_line(plan), retained_line(plan))
    return [line for line in lines if line is not None]


# The changes a merge request's target plans anyway that its plan names, one line's worth.
ANYWAY_NAMED = 30


def anyway_line(plan: Plan) -> str | None:
    """`The target branch (1a2b3c4d5e6f) plans these anyway: upload boto3 1.44.4, botocore
    1.44.4; delete evil 0.9`: a merge request's plan's changes that are not its own, the first
    `ANYWAY_NAMED` of them named (a first mirror of a whole catalogue is one line too)."""
    if plan.baseline is None:
        return None
    own = {a.id for a in plan.own()}  # a quarantine both make is shown with the merge's
    anyway = [a for a in plan.actions if a.id not in own]
    if not anyway:
        return None
    by_change: dict[Change, list[str]] = {}
    for action in anyway[:ANYWAY_NAMED]:
        by_change.setdefault(action.change, []).append(f"{action.name} {action.version}")
    more = f"; and {len(anyway) - ANYWAY_NAMED} more" if len(anyway) > ANYWAY_NAMED else ""
    ref = plan.baseline.ref
    ref = ref[:12] if len(ref) >= 40 and all(c in hexdigits for c in ref) else ref
    return (
        f"The target branch ({ref}) plans these anyway: "
        + "; ".join(
            f"{change.value} {', '.join(versions)}" for change, versions in by_change.items()
        )
        + more
    )


def sets_line(plan: Plan) -> str | None:
    """`Sets: web (teams/web.txt, 12 requirements, 1 blocked), svc (teams/svc/uv.lock, 40
    locked)`, when the desired state has several."""
    if len(plan.sets) < 2:
        return None
    said = []
    for summary in plan.sets:
        count = summary.requirements
        what = f"{count} locked" if summary.locked else plural(count, "requirement")
        blocked = sum(1 for b in plan.blocked if b.set_name == summary.name)
        stopped = f", {blocked} blocked" if blocked else ""
        said.append(f"{summary.name} ({summary.source}, {what}{stopped})")
    return "Sets: " + ", ".join(said) + "."


def retained_line(plan: Plan) -> str | None:
    """`Kept, yanked, until removed: requests 2.32.3 (2027-01-05), ...`: no longer desired,
    still installable by exact pins and lockfiles (those this plan starts to keep are its
    retain changes, and said there)."""
    starting = {(a.name, a.version) for a in plan.actions if a.change is Change.RETAIN}
    kept = [r for r in plan.retained if (r.name, r.version) not in starting]
    if not kept:
        return None
    return "Kept, yanked, until removed: " + ", ".join(
        f"{r.name} {r.version} ({r.until:%Y-%m-%d})" for r in kept
    )


def targets_line(plan: Plan) -> str | None:
    """`Targets: 15 (CPython 3.10, ... on linux, macos, windows); every requirement installs on
    each.`, or which requirements are blocked on which targets."""
    if not plan.coverage:
        return None
    head = f"Targets: {len(plan.coverage)} ({_targets(plan.coverage)})"
    where: dict[tuple[str, ...], list[str]] = {}
    for coverage in plan.coverage:
        if coverage.blocked:
            where.setdefault(coverage.blocked, []).append(coverage.target)
    if not where:
        return f"{head}; every requirement installs on each."
    said = "; ".join(
        f"{', '.join(names)} blocked on {', '.join(targets)}" for names, targets in where.items()
    )
    return f"{head}; {said}."


def _targets(coverage: Sequence[Coverage]) -> str:
    """`CPython 3.10, 3.11 on linux, windows` when the targets are every such pair."""
    pairs = [c.target.split(" ", 1) for c in coverage]
    pythons = list(dict.fromkeys(python for python, _ in pairs))
    platforms = list(dict.fromkeys(platform for _, platform in pairs))
    if len(pairs) == len(pythons) * len(platforms):
        return f"CPython {', '.join(pythons)} on {', '.join(platforms)}"
    return ", ".join(c.target for c in coverage)


def sizes_line(plan: Plan) -> str | None:
    """`Downloads 12.3 MB; the registry holds 456.7 MB after.` (`holds 456.7 MB.` when the
    plan changes nothing)"""
    said = []
    if plan.download_bytes:
        said.append(f"Downloads {size(plan.download_bytes)}")
        if len(own := plan.own()) < len(plan.actions):  # a merge request's, with a baseline
            said[-1] += f" ({size(download_size(own))} for this merge's own changes)"
    if plan.held_bytes is not None:
        after = " after" if plan.has_changes else ""
        said.append(f"the registry holds {size(plan.held_bytes)}{after}")
    if not said:
        return None
    text = "; ".join(said)
    return f"{text[0].upper()}{text[1:]}."


def size(count: int) -> str:
    """Bytes as people read them (decimal units, as PyPI shows sizes)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def change_heading(action: Action) -> str:
    """`+ upload foo 1.1 (2 files)`, `- delete ...`, `! quarantine ...`, `~ retain ...`."""
    files = plural(len(action.files), "file")
    return f"{_SIGNS[action.change]} {action.change.value} {action.name} {action.version} ({files})"


_SIGNS = {Change.QUARANTINE: "!", Change.RETAIN: "~", Change.UPLOAD: "+", Change.DELETE: "-"}


def action_line(action: Action, plan: Plan) -> str:
    """The reason of an action, naming its advisories when the reason does not already, and
    the sets that need an upload when the desired state has several."""
    unnamed = [i for i in action.advisories if i not in action.reason]
    line = f"{action.reason} [{', '.join(unnamed)}]" if unnamed else action.reason
    if action.sets and len(plan.sets) > 1:  # one set: it is every upload's
        line += f" (for {', '.join(action.sets)})"
    return line


def blocked_requirement(blocked: Blocked, plan: Plan) -> str:
    """The blocked line and where it is: `web: django==4.2.17 (teams/web.txt:3)`, its set
    named when the desired state has several."""
    text = f"{blocked.requirement} ({blocked.source})" if blocked.source else blocked.requirement
    return f"{blocked.set_name}: {text}" if len(plan.sets) > 1 else text


def blocked_line(blocked: Blocked) -> str:
    """What blocks a requirement, with when it becomes eligible (unless the detail says)."""
    if blocked.eligible_at is not None:
        stamp = f"{blocked.eligible_at:%Y-%m-%d %H:%M} UTC"
        if stamp not in blocked.detail:
            return f"{blocked.detail} (eligible {stamp})"
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
