"""The plan file (JSON, `format_version: 1`): serialisation, digests and the staleness check."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from reconciler import jsondata
from reconciler.errors import StalePlanError, UserError
from reconciler.model import (
    DEFAULT_SET,
    Action,
    ActionKind,
    ActualState,
    Advisory,
    AdvisorySource,
    Baseline,
    Blocked,
    Cause,
    Coverage,
    DesiredState,
    Plan,
    PlannedFile,
    Problem,
    Retained,
    ServiceName,
    SetSummary,
    Waiting,
    is_plain_filename,
    is_sha256,
)

FORMAT_VERSION = 1
_Listing = dict[tuple[str, str], str]


def actual_digest(actual: ActualState) -> str:
    """A digest of the registry listing: every (name, filename, sha256)."""
    return _listing_digest(actual.held())


def _listing_digest(listing: _Listing) -> str:
    digest = hashlib.sha256()
    for (name, filename), sha256 in sorted(listing.items()):
        digest.update(f"{name}\0{filename}\0{sha256}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def check_fresh(plan: Plan, desired: DesiredState, actual: ActualState) -> None:
    """Refuse a plan made against other desired state or another registry.

    The registry counts the applies that changed it. At the plan's own generation the listing
    must match exactly. One generation on, and only when that apply was this very plan (killed
    half way), every file the plan touches is rolled back to its before-state when it is in its
    after-state, and the result must match. Anything else is someone else's change: stale. (A
    replayed old plan is stale too, though later applies may have undone its work.)
    """
    if desired.digest != plan.desired_digest:
        raise StalePlanError(
            f"the plan is stale: it was not made from {desired.location} as it is now (a file "
            "changed since, or another directory); run `mirror plan` again"
        )
    listing = actual.held()
    resuming = actual.generation == plan.registry_generation + 1 and actual.last_plan == plan.id
    if actual.generation != plan.registry_generation and not resuming:
        raise StalePlanError(
            "the plan is stale: another apply changed the registry since it was made; "
            "run `mirror plan` again"
        )
    for action in plan.actions if resuming else ():
        for planned in action.files:
            key = (action.name, planned.filename)
            after = planned.sha256 if action.kind is ActionKind.UPLOAD else None
            if listing.get(key) == after and after != planned.before_sha256:
                if planned.before_sha256 is None:
                    listing.pop(key, None)
                else:
                    listing[key] = planned.before_sha256
    if _listing_digest(listing) != plan.actual_digest:
        raise StalePlanError(
            "the plan is stale: the registry changed since it was made; run `mirror plan` again"
        )


def authorised_actions(
    plan: Plan, again: Plan, actual: ActualState
) -> tuple[tuple[Action, ...], int]:
    """What applying a saved plan carries out: its actions as the policy takes them now, and
    how many of its files are done already.

    `again` is the plan made now for the same instant. Every file of every saved action must
    be in `again`'s action of the same kind, project, version and quarantine flag, with the
    same bytes from the same place and the same index metadata, or be done already (a resumed
    apply); the first that is neither is named. Only `again`'s copies are carried out, and
    only their saved files (a quarantine whole): nothing else a plan file says (reasons,
    causes, quarantine records) reaches the registry, since a plan file is an input like any
    other. (`again` may do more: that waits for the next plan.)
    """
    expected: dict[tuple[object, ...], tuple[Action, PlannedFile]] = {
        (*_identity(action), planned.filename): (action, planned)
        for action in again.actions
        for planned in action.files
    }
    held = actual.held()
    chosen: dict[int, dict[str, PlannedFile]] = {}
    done = 0
    for action in plan.actions:
        if not action.files:
            raise _refused(action, "it names no files")
        for saved in action.files:
            match = expected.get((*_identity(action), saved.filename))
            if match is not None and _as_upstream_says(match[1]) == _as_upstream_says(saved):
                chosen.setdefault(id(match[0]), {})[saved.filename] = match[1]
            elif _done(action, saved, held):
                done += 1
            else:
                raise _refused(action, "it is not what the policy does now")
    authorised = tuple(
        # A quarantine goes whole, whatever files the plan names: deleting less would leave
        # a version half served and unrecorded.
        action if action.quarantine else replace(action, files=tuple(chosen[id(action)].values()))
        for action in again.actions
        if id(action) in chosen
    )
    return authorised, done


def _refused(action: Action, why: str) -> StalePlanError:
    verb = "quarantine" if action.quarantine else action.kind.value
    return StalePlanError(
        f"the plan is refused: {verb} {action.name} {action.version}: {why} (upstream's "
        "listing, the advisories, the desired state); run `mirror plan` again"
    )


def _identity(action: Action) -> tuple[object, ...]:
    """What an action does to the registry: the cause and reason are only its explanation."""
    return (action.kind, action.name, action.version, action.quarantine)


def _as_upstream_says(planned: PlannedFile) -> PlannedFile:
    """A planned file without what the registry held before it (a resumed apply changed that)."""
    return replace(planned, before_sha256=None)


def _done(action: Action, planned: PlannedFile, held: _Listing) -> bool:
    """Whether the registry already holds a file as the action leaves it (a killed apply)."""
    now = held.get((action.name, planned.filename))
    return now == planned.sha256 if action.kind is ActionKind.UPLOAD else now is None


def to_json(plan: Plan) -> str:
    """The plan file's text."""
    document = {
        "format_version": FORMAT_VERSION,
        "created_at": json_time(plan.created_at),
        "evaluated_at": json_time(plan.evaluated_at),
        "desired_digest": plan.desired_digest,
        "actual_digest": plan.actual_digest,
        "actions": [action_json(a) for a in plan.actions],
        "blocked": [blocked_json(b) for b in plan.blocked],
        "warnings": list(plan.warnings),
        "summary": {
            "upload": plan.count(ActionKind.UPLOAD),
            "delete": plan.count(ActionKind.DELETE),
            "blocked": len(plan.blocked),
        },
        "advisory_sources": [source_json(s) for s in plan.advisory_sources],
        "advisories": {a.id: advisory_json(a) for a in plan.advisories},
        "registry_generation": plan.registry_generation,
        "waiting": [
            {"name": w.name, "version": w.version, "eligible_at": json_time(w.eligible_at)}
            for w in plan.waiting
        ],
        "repairs": list(plan.repairs),
        "coverage": [
            {"target": c.target, "requirements": c.requirements, "blocked": list(c.blocked)}
            for c in plan.coverage
        ],
        "download_bytes": plan.download_bytes,
        "held_bytes": plan.held_bytes,
        "sets": [
            {"name": x.name, "source": x.source, "requirements": x.requirements, "locked": x.locked}
            for x in plan.sets
        ],
        "desired_commit": plan.desired_commit,
        "min_age_days": plan.min_age_days,
        "baseline": (
            {"ref": plan.baseline.ref, "planned": sorted(plan.baseline.planned)}
            if plan.baseline
            else None
        ),
        "retained": [
            {"name": r.name, "version": r.version, "until": r.until.isoformat()}
            for r in plan.retained
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def blocked_json(blocked: Blocked) -> dict[str, Any]:
    """A blocked requirement as the plan file (and the drift report) writes it."""
    return {
        "name": blocked.name,
        "requirement": blocked.requirement,
        "reason": blocked.reason.value,
        "detail": blocked.detail,
        "eligible_at": json_time(blocked.eligible_at),
        "advisories": list(blocked.advisories),
        "set": blocked.set_name,
        "source": blocked.source,
    }


def source_json(source: AdvisorySource) -> dict[str, Any]:
    """Which vulnerability service answered, when, and from which data."""
    return {
        "service": source.service.value,
        "answered_at": json_time(source.answered_at),
        "queried": source.queried,
        "unanswered": source.unanswered,
        "database": source.database,
    }


def advisory_json(advisory: Advisory) -> dict[str, Any]:
    """An advisory's details, keyed by its id where it is written."""
    return {
        "aliases": list(advisory.aliases),
        "summary": advisory.summary,
        "link": advisory.link,
        "fixed_in": list(advisory.fixed_in),
    }


def read_plan(path: Path) -> Plan:
    """Load a saved plan; a missing or malformed file is a user error naming it."""
    try:
        document = jsondata.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError("plan file not found", path=path) from None
    except (OSError, ValueError) as error:
        raise UserError(f"not a plan file: {error}", path=path) from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise UserError(f"not a plan file of format_version {FORMAT_VERSION}", path=path)
    try:
        return Plan(
            created_at=_parse_time(document["created_at"]),
            evaluated_at=_parse_time(document["evaluated_at"]),
            desired_digest=_text(document["desired_digest"]),
            actual_digest=_text(document["actual_digest"]),
            actions=tuple(_read_action(a) for a in document["actions"]),
            blocked=tuple(
                Blocked(
                    name=_text(b["name"]),
                    requirement=_text(b["requirement"]),
                    reason=Problem(b["reason"]),
                    detail=_text(b["detail"]),
                    eligible_at=_parse_optional_time(b.get("eligible_at")),
                    advisories=_texts(b.get("advisories", [])),
                    set_name=_text(b.get("set", DEFAULT_SET)),
                    source=_text(b.get("source", "")),
                )
                for b in document["blocked"]
            ),
            warnings=_texts(document.get("warnings", [])),
            advisory_sources=tuple(
                AdvisorySource(
                    ServiceName(s["service"]),
                    _parse_time(s["answered_at"]),
                    _count(s["queried"]),
                    database=_optional_text(s.get("database")),
                    unanswered=_count(s.get("unanswered", 0)),
                )
                for s in document.get("advisory_sources", [])
            ),
            registry_generation=_count(document["registry_generation"]),
            advisories=tuple(
                Advisory(
                    id=_text(advisory_id),
                    aliases=_texts(a["aliases"]),
                    summary=_text(a["summary"]),
                    link=_text(a["link"]),
                    fixed_in=_texts(a["fixed_in"]),
                )
                for advisory_id, a in document.get("advisories", {}).items()
            ),
            waiting=tuple(
                Waiting(_text(w["name"]), _text(w["version"]), _parse_time(w["eligible_at"]))
                for w in document.get("waiting", [])
            ),
            repairs=_texts(document.get("repairs", [])),
            coverage=tuple(
                Coverage(_text(c["target"]), _count(c["requirements"]), _texts(c["blocked"]))
                for c in document.get("coverage", [])
            ),
            download_bytes=_count(document.get("download_bytes", 0)),
            held_bytes=_optional_count(document.get("held_bytes")),
            sets=tuple(
                SetSummary(
                    _text(x["name"]),
                    _text(x["source"]),
                    _count(x["requirements"]),
                    bool(x["locked"]),
                )
                for x in document.get("sets", [])
            ),
            desired_commit=_optional_text(document.get("desired_commit")),
            min_age_days=_optional_count(document.get("min_age_days")),
            baseline=_baseline(document.get("baseline")),
            retained=tuple(
                Retained(_text(r["name"]), _text(r["version"]), date.fromisoformat(r["until"]))
                for r in document.get("retained", [])
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise UserError(f"malformed plan file ({error!r})", path=path) from None


def action_json(action: Action) -> dict[str, Any]:
    """One action as the plan file writes it."""
    data: dict[str, Any] = {
        "id": action.id,  # what the reports call it; derived, not read back
        "section": action.section.value,
        "action": action.kind.value,
        "name": action.name,
        "version": action.version,
        "reason": action.reason,
        "files": [_file(f) for f in action.files],
    }
    if action.cause is not None:
        data["cause"] = action.cause.value
    if action.required_by:
        data["required_by"] = list(action.required_by)
    if action.targets:
        data["targets"] = list(action.targets)
    if action.sets:
        data["sets"] = list(action.sets)
    if action.pulled_by:
        data["pulled_by"] = list(action.pulled_by)
    if action.quarantine:
        data["quarantine"] = True
        data["advisories"] = list(action.advisories)
    return data


def _file(planned: PlannedFile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": planned.filename,
        "sha256": planned.sha256,
        "before_sha256": planned.before_sha256,
    }
    if planned.url is not None or planned.yanked:  # a download, or a file re-marked yanked
        data.update(
            url=planned.url,
            size=planned.size,
            upload_time=json_time(planned.upload_time),
            requires_python=planned.requires_python,
            yanked=planned.yanked,
            yanked_reason=planned.yanked_reason,
        )
    return data


def _read_action(data: dict[str, Any]) -> Action:
    """One action; names and file names are checked, since they become paths in a registry."""
    name = _text(data["name"])
    names = [name, *(_text(f["filename"]) for f in data["files"])]
    if canonicalize_name(name) != name or not all(map(is_plain_filename, names)):
        raise ValueError(f"unsafe name in action {name!r}")
    return Action(
        kind=ActionKind(data["action"]),
        name=name,
        version=_text(data["version"]),
        reason=_text(data["reason"]),
        files=tuple(
            PlannedFile(
                filename=f["filename"],
                sha256=_digest(f["sha256"]),
                before_sha256=_digest(f["before_sha256"]) if f.get("before_sha256") else None,
                url=_optional_text(f.get("url")),
                size=_count(f["size"]) if f.get("size") is not None else None,
                upload_time=_parse_optional_time(f.get("upload_time")),
                requires_python=_optional_text(f.get("requires_python")),
                yanked=bool(f.get("yanked", False)),
                yanked_reason=_optional_text(f.get("yanked_reason")),
            )
            for f in data["files"]
        ),
        quarantine=bool(data.get("quarantine", False)),
        advisories=_texts(data.get("advisories", [])),
        cause=Cause(data["cause"]) if data.get("cause") else None,
        required_by=_texts(data.get("required_by", [])),
        targets=_texts(data.get("targets", [])),
        sets=_texts(data.get("sets", [])),
        pulled_by=_texts(data.get("pulled_by", [])),
    )


def _baseline(value: Any) -> Baseline | None:
    if value is None:
        return None
    return Baseline(_text(value["ref"]), frozenset(_texts(value["planned"])))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {value!r:.40}")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _texts(values: object) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise TypeError(f"expected a list of strings, not {values!r:.40}")
    return tuple(map(_text, values))


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a count, not {value!r:.40}")
    return value


def _optional_count(value: object) -> int | None:
    return None if value is None else _count(value)


def _digest(value: object) -> str:
    if not is_sha256(_text(value)):
        raise ValueError(f"not a sha256 digest: {value!r:.70}")
    return _text(value)


def json_time(moment: datetime | None) -> str | None:
    """An instant as ISO 8601 with `Z`, or None."""
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _parse_time(text: object) -> datetime:
    """An instant the plan file names: ISO 8601 with its zone (a plan is judged in UTC)."""
    moment = datetime.fromisoformat(_text(text).replace("Z", "+00:00"))
    if moment.utcoffset() is None:
        raise ValueError(f"time without a zone: {text!r:.40}")
    return moment.astimezone(timezone.utc)  # dates (expiries) are UTC days


def _parse_optional_time(text: object) -> datetime | None:
    return _parse_time(text) if text else None
