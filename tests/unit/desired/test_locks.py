"""Lockfiles read into pinned requirements: hashes, targets from the lock's own markers, and
refusals of what does not come from an index."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired import load_desired_state
from reconciler.desired.locks import read_lock
from reconciler.errors import UserError
from reconciler.model import DEFAULT_ENVIRONMENTS, SetKind

SHA = "a" * 64
WHEEL = f'{{ url = "https://x/f/a-1.0-py3-none-any.whl", hash = "sha256:{SHA}" }}'

UV_LOCK = f"""\
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "a" }},
    {{ name = "win", marker = "sys_platform == 'win32'" }},
]

[[package]]
name = "a"
version = "1.0"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [{WHEEL}]

[[package]]
name = "win"
version = "2.0"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://x/f/win-2.0.tar.gz", hash = "sha256:{"b" * 64}" }}

[[package]]
name = "orphan"
version = "3.0"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [{{ url = "https://x/f/orphan-3.0-py3-none-any.whl", hash = "sha256:{"c" * 64}" }}]
"""


def read(tmp_path: Path, text: str, name: str = "uv.lock") -> dict[str, tuple[str, ...]]:
    path = tmp_path / name
    path.write_text(text)
    kind = SetKind.UV_LOCK if name == "uv.lock" else SetKind.PYLOCK
    found = read_lock(path, kind, name, DEFAULT_ENVIRONMENTS)
    return {r.text: tuple(sorted(r.targets or ())) for r in found}


def test_a_uv_lock_needs_what_its_own_projects_reach_on_each_target(tmp_path: Path) -> None:
    found = read(tmp_path, UV_LOCK)
    later = [str(t) for t in DEFAULT_ENVIRONMENTS if t.python != "3.10"]  # requires-python
    assert found == {
        "a==1.0": tuple(sorted(later)),
        "win==2.0": tuple(sorted(t for t in later if t.endswith("windows"))),
        "orphan==3.0": (),  # nothing in the lock depends on it
    }
    (locked,) = [
        r for r in read_lock(tmp_path / "uv.lock", SetKind.UV_LOCK, "x", DEFAULT_ENVIRONMENTS)
        if r.name == "a"
    ]  # fmt: skip
    assert locked.locked and locked.hashes == {SHA}
    assert locked.locked_files == (("a-1.0-py3-none-any.whl", SHA),)
    assert locked.source.line == 13  # its [[package]] table


def test_a_pylock_package_serves_the_targets_its_marker_selects(tmp_path: Path) -> None:
    text = f"""\
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "win"
version = "2.0"
marker = "sys_platform == 'win32' and python_version >= '3.13'"
wheels = [{{ url = "https://x/f/win-2.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]
"""
    found = read(tmp_path, text, "pylock.toml")
    assert found == {"win==2.0": ("3.13 windows", "3.14 windows")}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('{ registry = "https://pypi.org/simple" }', '{ git = "https://git.example/a" }'),
            "a 1.0: a git source is refused",
        ),
        ((f"sha256:{SHA}", "md5:abc"), "a 1.0: a-1.0-py3-none-any.whl has no sha256"),
        (("version = 1\n", "version = 7\n"), "expected a uv.lock of version 1"),
        (('name = "a"', 'name = "a"\nname = "b"'), "not valid TOML"),
        (('version = "1.0"', 'version = "one"'), "a: not a valid version: 'one'"),
        (
            ('{ registry = "https://pypi.org/simple" }', '{ registry = "x", git = "https://g/a" }'),
            "a 1.0: a git, registry source is refused",
        ),
    ],
)  # fmt: skip
def test_what_no_index_serves_or_cannot_be_checked_is_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(UserError, match=message):
        read(tmp_path, UV_LOCK.replace(*change, 1))


def test_a_requirements_file_pinned_with_hashes_throughout_is_a_lock(tmp_path: Path) -> None:
    desired = tmp_path / "desired-state"
    desired.mkdir()
    (desired / "requirements.txt").write_text(
        f"a==1.0 --hash=sha256:{SHA}\nb==2.0 --hash=sha256:{'b' * 64}\n"
    )
    assert all(r.locked for r in load_desired_state(desired).requirements)
    (desired / "requirements.txt").write_text(f"a==1.0 --hash=sha256:{SHA}\nb>=2\n")
    assert not any(r.locked for r in load_desired_state(desired).requirements)


def test_a_lock_s_own_project_needs_no_version_and_lines_are_found_in_either_quote(
    tmp_path: Path,
) -> None:
    dynamic = UV_LOCK.replace('name = "app"\nversion = "0.1.0"\n', "name = 'app'\n")
    single = dynamic.replace('name = "a"\nversion = "1.0"', "name = 'a'\nversion = '1.0'")
    found = read_lock(write(tmp_path, single), SetKind.UV_LOCK, "uv.lock", DEFAULT_ENVIRONMENTS)
    (a,) = [r for r in found if r.name == "a"]
    assert a.source.line == 12 and a.targets  # reached from the versionless project


def test_an_empty_or_misspelled_lock_is_refused(tmp_path: Path) -> None:
    for text in ('lock-version = "1.0"\n', 'lock-version = "1.0"\n[[package]]\nname = "a"\n'):
        with pytest.raises(UserError, match="no \\[\\[packages\\]\\] tables"):
            read(tmp_path, text, "pylock.toml")
    with pytest.raises(UserError, match="no \\[\\[package\\]\\] tables"):
        read(tmp_path, UV_LOCK.replace("[[package]]", "[[packge]]"))


def write(tmp_path: Path, text: str, name: str = "uv.lock") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
