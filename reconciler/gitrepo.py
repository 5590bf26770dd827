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

from reconciler.errors import UserError

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
    answer = _reaches(directory, older, newer)
    if answer is False and _shallow(directory):
        # A shallow history may stop short of `older`: its "no" holds only when the walk the
        # other way finds `newer` (history has no cycles), as in a forward apply.
        return False if _reaches(directory, newer, older) else None
    return answer


def _reaches(directory: Path, older: str, newer: str) -> bool | None:
    """git's own answer: whether `newer`'s history reaches `older`; None if git cannot say."""
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


def _shallow(directory: Path) -> bool:
    """Whether the clone's history is cut off (`.git/shallow`, which any git version keeps)."""
    git_dir = _git(directory, "rev-parse", "--git-dir")
    return git_dir is None or (directory / git_dir / "shallow").exists()


def export(directory: Path, ref: str, into: Path) -> tuple[str, Path | None]:
    """The commit `ref` names, and `directory` as it is in it, its files written under `into`
    (None when that commit has no such directory). UserError when `ref` is not a commit of the
    repository holding `directory`. Only regular files are written, at paths git itself keeps
    (no links)."""
    shown = _git_bytes(directory, "rev-parse", "--show-prefix")  # kept whole: " dir/" is a name
    prefix = shown.decode().removesuffix("\n") if shown is not None else None
    # A ref is never an option to git ("--output=…"), whatever a pipeline variable holds.
    verify = ("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    commit = None if ref.startswith("-") else _git(directory, *verify)
    if prefix is None or not commit:
        raise UserError(
            f"--against {ref}: not a commit of the git repository holding {directory} (a "
            "shallow clone may lack it: fetch it, or clone with GIT_DEPTH: 0)"
        )
    paths = [prefix] if prefix else []  # "": the repository's root is the desired state
    listing = _git_bytes(directory, "ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths)
    entries = [entry.split(b"\t", 1) for entry in (listing or b"").split(b"\0") if entry]
    files = [
        (meta.split()[2].decode(), path.decode())
        for meta, path in entries
        if meta.split()[0] in (b"100644", b"100755")  # regular files; links and submodules not
    ]
    if not files:
        return commit, None
    for blob, path in files:
        unsafe = ".." in Path(path).parts or Path(path).is_absolute()
        content = None if unsafe else _git_bytes(directory, "cat-file", "blob", blob)
        if content is None:
            raise UserError(f"--against {ref}: cannot read {path} from git")
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return commit, into / prefix


def _git(directory: Path, *args: str) -> str | None:
    """A git command's output, stripped, or None when it fails (no git, not a repository)."""
    output = _git_bytes(directory, *args)
    return output.decode(errors="replace").strip() if output is not None else None


def _git_bytes(directory: Path, *args: str) -> bytes | None:
    """A git command's output as it is, or None when it fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            # A path is a path, never a pathspec magic such as ":(exclude)".
            env={**os.environ, "GIT_LITERAL_PATHSPECS": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
