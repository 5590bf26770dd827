"""The plan as one merge-request note that the mirror keeps up to date (`mirror comment`).

Its own note is found by a hidden marker AND its author (the token's user), so other people's
notes, even ones quoting the marker, are never touched. The CI job token cannot write notes
(shared/reference/gitlab-api.md section 3): this uses `MIRROR_NOTE_TOKEN`, a project access
token with `api` scope.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.gitlab import Again, Credential, GitLabClient
from reconciler.model import Plan
from reconciler.report.markdown import MarkdownFormat, cell

MARKER = "<!-- pypi-delayed-mirror:plan -->"
APPLIED_MARKER = "<!-- pypi-delayed-mirror:applied -->"
NOTE_LIMIT = 1_000_000  # GitLab refuses longer note bodies
MAX_DIFFERENCES = 200  # lines of an applied note's comparison with the reviewed plan
FOLD_AFTER = 50  # rows; a longer section is folded (dependencies always are)
# The reviewed plan's changes, as data, hidden in its note: what the applied plan is compared to.
_CHANGES = re.compile(r"<!-- pypi-delayed-mirror:changes (\[.*?\]) -->")


def note_body(plan: Plan, limit: int = NOTE_LIMIT, marker: str = MARKER, head: str = "") -> str:
    """The note's markdown: the marker, the plan's changes as hidden data, `head`, then the
    plan, folded and cut until it fits (the hidden data counted: a cut inside that comment
    would hide the whole note)."""
    data = f"<!-- pypi-delayed-mirror:changes {json.dumps(changes(plan))} -->\n"
    if len(data) > limit // 4:  # tens of thousands of changes: left out, not the plan
        data = ""
    top = f"{marker}\n{data}{_cut_text(head, limit // 4)}"
    room = limit - len(top)
    body = MarkdownFormat(fold_after=FOLD_AFTER).render(plan)
    max_rows = max(len(plan.actions), len(plan.blocked), len(plan.advisories), len(plan.warnings))
    while len(body) > room and max_rows > 0:
        max_rows //= 2
        body = MarkdownFormat(fold_after=FOLD_AFTER, max_rows=max_rows).render(plan)
    return top + _cut_text(body, room)


def _cut_text(markdown: str, room: int) -> str:
    """Markdown cut to `room` characters, when it must be, with a line saying so outside any
    fold it cuts into (a `<details>` left open would hide that line and all after it)."""
    if len(markdown) <= room:
        return markdown
    said = "\n\n_Truncated: the note limit was reached; see the plan.json artifact._\n"
    kept = markdown[: max(0, room - len(said) - len("\n\n</details>") * 8)]
    unclosed = max(0, kept.count("<details>") - kept.count("</details>"))
    return kept + "\n\n</details>" * unclosed + said


def changes(plan: Plan) -> list[str]:
    """`upload foo 1.1`, `quarantine bar 2.0`, ...: each change a plan makes, in a line."""
    return [f"{a.change.value} {a.name} {a.version}" for a in plan.actions]


def applied_body(plan: Plan, reviewed: str | None, commit: str | None) -> str:
    """The note on a merged merge request: what the apply on the default branch carried out
    (it planned again), and how that differs from the plan reviewers saw (`reviewed`: the
    body of the mirror's plan note, None when there is none)."""
    where = f" at {commit[:12]}" if commit else ""
    found = _CHANGES.search(reviewed or "")
    if found is None and reviewed is not None and MARKER in reviewed:
        said = "The reviewed plan's note was too long to carry its changes; not compared."
    elif found is None:
        said = "No reviewed plan was found on this merge request to compare with."
    else:
        before, after = json.loads(found[1]), changes(plan)
        added = [c for c in after if c not in before]
        dropped = [c for c in before if c not in after]
        lines = [f"- applied, not in the reviewed plan: {cell(c)}" for c in added]
        lines += [f"- in the reviewed plan, not applied: {cell(c)}" for c in dropped]
        if len(lines) > MAX_DIFFERENCES:
            more = len(lines) - MAX_DIFFERENCES
            lines = [*lines[:MAX_DIFFERENCES], f"- and {more} more (the jobs' plan.json artifacts)"]
        said = (
            "Differences from the reviewed plan (the apply plans again: versions matured, "
            "advisories appeared, main moved on):\n" + "\n".join(lines)
            if lines
            else "Applied exactly as reviewed."
        )
    head = f"**Applied on the default branch{where}.** {said}\n\n"
    return note_body(plan, marker=APPLIED_MARKER, head=head)


def merged_request(client: GitLabClient, token: Credential, commit: str) -> str | None:
    """The iid of the merge request that a commit on the default branch merged, if any."""
    url = f"{client.project_url}/repository/commits/{commit}/merge_requests"
    found = client.paginate(
        url, {}, token.private_token_header(), f"the merge requests of {commit}"
    )
    return next((str(mr["iid"]) for mr in found if mr.get("state") == "merged"), None)


class MergeRequestNotes:
    """Create or update the mirror's note on one merge request."""

    def __init__(self, client: GitLabClient, token: Credential, merge_request_iid: str) -> None:
        self.client = client
        self.token = token
        self.notes_url = f"{client.project_url}/merge_requests/{merge_request_iid}/notes"
        self.iid = merge_request_iid

    def upsert(self, body: str, marker: str = MARKER) -> tuple[str, int]:
        """Update our earlier note with this marker, or create it; ("created" | "updated",
        note id). A create that failed may have landed, so every attempt looks first."""
        me = self._user_id()

        def attempt() -> tuple[str, int] | Again:
            ours = self._find(me, marker)
            if ours is not None:
                response = self.client.request(
                    "PUT", f"{self.notes_url}/{ours}", json={"body": body}, headers=self._headers()
                )
                self.client.check(response, f"the update of note {ours}", role="Reporter")
                return "updated", ours
            created = self.client.post(self.notes_url, json={"body": body}, headers=self._headers())
            if isinstance(created, Again):
                return created
            self.client.check(created, f"a note on merge request !{self.iid}", role="Reporter")
            return "created", self.client.created_id(created, f"a note on !{self.iid}")

        return self.client.retry(attempt, f"the note on merge request !{self.iid}")

    def _headers(self) -> dict[str, str]:
        return self.token.private_token_header()

    def _user_id(self) -> int:
        response = self.client.request(
            "GET", f"{self.client.api_url}/user", headers=self._headers()
        )
        self.client.check(response, "identifying MIRROR_NOTE_TOKEN's user")
        return self.client.created_id(response, "identifying MIRROR_NOTE_TOKEN's user")

    def body_of(self, marker: str = MARKER) -> str | None:
        """The body of our note with this marker, if there is one."""
        note = self._note(self._user_id(), marker)
        return str(note["body"]) if note is not None else None

    def _find(self, me: int, marker: str) -> int | None:
        note = self._note(me, marker)
        return int(note["id"]) if note is not None else None

    def _note(self, me: int, marker: str) -> dict[str, Any] | None:
        """Our note: written by the token's user and carrying the marker."""
        notes = self.client.paginate(
            self.notes_url, {"sort": "asc"}, self._headers(), f"the notes of !{self.iid}"
        )
        return next((n for n in notes if _is_ours(n, me, marker)), None)


def _is_ours(note: dict[str, Any], me: int, marker: str) -> bool:
    return (
        not note.get("system")
        and (note.get("author") or {}).get("id") == me
        and marker in str(note.get("body", ""))
    )
