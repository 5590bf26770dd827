"""The desired state's git history (an edge): which commit it is, and which came first.

GitLab's `resource_group` runs applies one at a time but in no set order, so an older
pipeline's apply may run after a newer one's; the registry records the commit each apply
carried out, and an apply of an ancestor of it is refused (see operations.check_order).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_TIMEOUT = 30


def head_commit(directory: Path) -> str | None:
    """The commit of the desired state: GitLab's `CI_COMMIT_SHA`, else the HEAD of the git
    repository holding `directory`; None outside git (the quick start's directory)."""
    from_ci = os.environ.get("CI_COMMIT_SHA", "").strip().lower()
    if _SHA.fullmatch(from_ci):
        return from_ci
    answer = _git(directory, "rev-parse", "HEAD")
    return answer if answer is not None and _SHA.fullmatch(answer) else None


def is_ancestor(directory: Path, older: str, newer: str) -> bool | None:
    """Whether `older` is an ancestor of `newer` (or the same commit); None when this clone
    does not hold both (a shallow clone, another repository)."""
    for commit in (older, newer):
        if _git(directory, "cat-file", "-e", f"{commit}^{{commit}}") is None:
            return None
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "merge-base", "--is-ancestor", older, newer],
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(done.returncode)


def _git(directory: Path, *args: str) -> str | None:
    """A git command's output, or None when it fails (no git, not a repository)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
