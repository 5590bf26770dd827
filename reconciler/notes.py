"""The plan as one merge-request note that the mirror keeps up to date (`mirror comment`).

Its own note is found by a hidden marker AND its author (the token's user), so other people's
notes, even ones quoting the marker, are never touched. The CI job token cannot write notes
(shared/reference/gitlab-api.md section 3): this uses `MIRROR_NOTE_TOKEN`, a project access
token with `api` scope.
"""

from __future__ import annotations

from typing import Any

from reconciler.gitlab import Again, Credential, GitLabClient
from reconciler.model import Plan
from reconciler.report.markdown import MarkdownFormat

MARKER = "<!-- pypi-delayed-mirror:plan -->"
NOTE_LIMIT = 1_000_000  # GitLab refuses longer note bodies
FOLD_AFTER = 20  # rows; a longer section is folded into <details>


def note_body(plan: Plan, limit: int = NOTE_LIMIT) -> str:
    """The note's markdown: the marker, then the plan, folded and cut until it fits."""
    body = f"{MARKER}\n{MarkdownFormat(fold_after=FOLD_AFTER).render(plan)}"
    max_rows = max(len(plan.actions), len(plan.blocked))
    while len(body) > limit and max_rows > 0:
        max_rows //= 2
        body = f"{MARKER}\n{MarkdownFormat(fold_after=FOLD_AFTER, max_rows=max_rows).render(plan)}"
    if len(body) > limit:  # only the summary left and still too long: cut it with a clear line
        cut = "\n\n_Truncated: the note limit was reached; see the plan.json artifact._\n"
        body = body[: limit - len(cut)] + cut
    return body


class MergeRequestNotes:
    """Create or update the mirror's note on one merge request."""

    def __init__(self, client: GitLabClient, token: Credential, merge_request_iid: str) -> None:
        self.client = client
        self.token = token
        self.notes_url = f"{client.project_url}/merge_requests/{merge_request_iid}/notes"
        self.iid = merge_request_iid

    def upsert(self, body: str) -> tuple[str, int]:
        """Update our earlier note, or create it; ("created" | "updated", note id).

        A create that failed may have landed, so every attempt looks for our note first.
        """
        me = self._user_id()

        def attempt() -> tuple[str, int] | Again:
            ours = self._find(me)
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

    def _find(self, me: int) -> int | None:
        """Our note: written by the token's user and carrying the marker."""
        notes = self.client.paginate(
            self.notes_url, {"sort": "asc"}, self._headers(), f"the notes of !{self.iid}"
        )
        return next((int(n["id"]) for n in notes if _is_ours(n, me)), None)


def _is_ours(note: dict[str, Any], me: int) -> bool:
    return (
        not note.get("system")
        and (note.get("author") or {}).get("id") == me
        and MARKER in str(note.get("body", ""))
    )
