"""requirements.txt: what is allowed, and every refusal naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired import load_desired_state
from reconciler.errors import UserError

HASH = "a" * 64


def desired(tmp_path: Path, text: str, extra_files: dict[str, str] | None = None) -> Path:
    directory = tmp_path / "desired-state"
    directory.mkdir(parents=True)
    (directory / "requirements.txt").write_text(text)
    for name, content in (extra_files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(content)
    return directory


def test_allowed_forms_are_parsed(tmp_path: Path) -> None:
    directory = desired(
        tmp_path,
        "# comment\n"
        "requests>=2.31,<3\n"
        "Foo_Bar[socks]==1.0 ; python_version >= '3.10'\n"
        f"idna==3.7 --hash=sha256:{HASH}\n"
        "-r more.txt\n",
        {"more.txt": "certifi\n"},
    )
    state = load_desired_state(directory)
    by_name = {r.name: r for r in state.requirements}
    assert set(by_name) == {"requests", "foo-bar", "idna", "certifi"}
    assert str(by_name["requests"].specifier) == "<3,>=2.31"
    assert by_name["foo-bar"].extras == {"socks"}
    assert by_name["foo-bar"].marker == 'python_version >= "3.10"'
    assert by_name["idna"].hashes == {HASH}
    assert by_name["idna"].source.line == 4
    assert by_name["certifi"].source.path == "desired-state/more.txt"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-e git+https://example.com/x.git#egg=x", "editable installs are refused"),
        ("git+https://example.com/x.git#egg=x", "VCS references are refused"),
        ("x @ https://example.com/x-1.0-py3-none-any.whl", "URLs are refused"),
        ("./local-package", "local paths are refused"),
        ("--index-url https://evil.example/simple", "--index-url is refused"),
        ("-i https://evil.example/simple", "--index-url is refused"),
        ("--extra-index-url https://evil.example/simple", "--extra-index-url is refused"),
        ("--find-links https://evil.example/links", "--find-links is refused"),
        ("--trusted-host evil.example", "--trusted-host is refused"),
        ("-r ../outside.txt", "includes outside"),
        ("-r https://example.com/r.txt", "remote includes are refused"),
        ("requests --hash=md5:abc", "only sha256 hashes"),
        (
            "requests --hash=sha256:deadbeef",
            "--hash=sha256:deadbeef: not a sha256 digest: expected 64 hexadecimal characters",
        ),
        ("not a requirement ===", "desired-state/requirements.txt:2:"),
        (
            "requests>=",
            ":2: not a valid requirement 'requests>=': Expected semicolon (after name with no "
            "version specifier) or end",
        ),
    ],
)
def test_refusals_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "outside.txt").write_text("requests\n")
    directory = desired(tmp_path, f"certifi\n{line}\n")
    with pytest.raises(UserError) as caught:
        load_desired_state(directory)
    assert str(caught.value).startswith("desired-state/requirements.txt:2: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [("requests==2.31.0", "Requests==2.32.0"), ("requests==2.31.0", "requests>=2.32")],
)
def test_conflicting_lines_are_refused_naming_both(tmp_path: Path, first: str, second: str) -> None:
    directory = desired(tmp_path, f"{first}\nidna\n{second}\n")
    with pytest.raises(UserError) as caught:
        load_desired_state(directory)
    assert str(caught.value) == (
        f"desired-state/requirements.txt:3: conflicting requirements for requests: {first} "
        f"(at desired-state/requirements.txt:1) and {second}; no version satisfies both, and "
        "both serve 3.10 x86_64-manylinux_2_28 (split them by markers to serve different targets)"
    )


def test_lines_split_by_markers_serve_their_own_targets(tmp_path: Path) -> None:
    text = (
        'numpy==2.4.6 ; python_version < "3.12"\n'
        'numpy==2.5.4 ; python_version >= "3.12"\n'
        "numpy>=2\n"
        "requests>=2\nrequests<3\n"
    )
    state = load_desired_state(desired(tmp_path, text))
    older, newer, requests = state.requirements
    assert (str(older.specifier), str(newer.specifier)) == ("==2.4.6,>=2", "==2.5.4,>=2")
    assert older.targets == {f"{v} {p}" for v in ("3.10", "3.11") for p in PLATFORMS}
    assert newer.targets == {f"{v} {p}" for v in ("3.12", "3.13", "3.14") for p in PLATFORMS}
    assert requests.targets is None and str(requests.specifier) == "<3,>=2"
    pins = 'numpy==2.4.6 ; python_version < "3.12"\nnumpy==2.5.4 ; python_version >= "3.11"\n'
    with pytest.raises(UserError, match="both serve 3.11 x86_64-manylinux_2_28"):
        load_desired_state(desired(tmp_path / "overlap", pins))


PLATFORMS = ("x86_64-manylinux_2_28", "macos", "windows")


def test_a_line_whose_marker_fits_no_target_is_left_out_before_it_can_conflict(
    tmp_path: Path,
) -> None:
    text = 'requests\npywin32 ; sys_platform == "win32"\nuvloop ; os_name == "x"\n'
    text += 'pkg==1.0\npkg==0.9 ; python_version < "3.0"\n'
    state = load_desired_state(desired(tmp_path, text))
    assert [r.name for r in state.requirements] == ["requests", "pywin32", "pkg"]
    assert [r.source.line for r in state.for_no_target] == [3, 5]
    pins = load_desired_state(
        desired(
            tmp_path / "two",
            'foo==1 ; sys_platform == "win32"\nfoo>=1 ; sys_platform == "linux"\n',
        )
    )
    served = {
        (str(r.specifier), *{t.split()[1] for t in r.targets or ()}) for r in pins.requirements
    }
    assert served == {
        ("==1", "windows"),
        (">=1", "x86_64-manylinux_2_28"),
    }  # each serves its own targets
    same = 'foo==1 ; python_version >= "3.10"\nfoo>=1 ; sys_platform != "cygwin"\n'
    (merged,) = load_desired_state(desired(tmp_path / "same", same)).requirements
    assert merged.marker == '(python_version >= "3.10") or (sys_platform != "cygwin")'
    assert merged.targets is None and str(merged.specifier) == "==1,>=1"


def test_compatible_duplicates_merge(tmp_path: Path) -> None:
    state = load_desired_state(desired(tmp_path, "requests>=2\nrequests<3\nrequests>=2\n"))
    (requirement,) = state.requirements
    assert str(requirement.specifier) == "<3,>=2"


def test_refusal_inside_an_include_names_the_included_file(tmp_path: Path) -> None:
    directory = desired(tmp_path, "-r sub/more.txt\n", {"sub/more.txt": "ok\n--find-links /x\n"})
    with pytest.raises(UserError, match=r"^desired-state/sub/more.txt:2: --find-links"):
        load_desired_state(directory)


def test_digest_changes_with_any_file(tmp_path: Path) -> None:
    directory = desired(tmp_path, "-r more.txt\n", {"more.txt": "certifi\n"})
    before = load_desired_state(directory).digest
    (directory / "more.txt").write_text("certifi>=2024\n")
    assert load_desired_state(directory).digest != before


def test_missing_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "desired-state").mkdir()
    with pytest.raises(UserError, match="requirements file not found"):
        load_desired_state(tmp_path / "desired-state")


def test_requirement_text_keeps_the_users_spelling_without_hashes(tmp_path: Path) -> None:
    state = load_desired_state(
        desired(tmp_path, f"requests>=2.31,<3  # why\nidna==3.7 \\\n    --hash=sha256:{HASH}\n")
    )
    assert [r.text for r in state.requirements] == ["requests>=2.31,<3", "idna==3.7"]


def test_shared_include_is_not_a_cycle_but_a_cycle_is(tmp_path: Path) -> None:
    files = {"a.txt": "-r c.txt\n", "b.txt": "-r c.txt\n", "c.txt": "certifi\n"}
    state = load_desired_state(desired(tmp_path, "-r a.txt\n-r b.txt\n", files))
    assert [r.name for r in state.requirements] == ["certifi"]
    (tmp_path / "loop").mkdir()
    loop = desired(tmp_path / "loop", "-r a.txt\n", {"a.txt": "idna\n-r requirements.txt\n"})
    with pytest.raises(
        UserError, match=r"desired-state/a.txt:2: -r requirements.txt: include cycle"
    ):
        load_desired_state(loop)


def test_missing_include_names_the_including_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"requirements.txt:2: -r nope.txt: file not found"):
        load_desired_state(desired(tmp_path, "idna\n-r nope.txt\n"))


def test_hash_must_be_hex(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a sha256 digest: expected 64 hexadecimal characters"):
        load_desired_state(desired(tmp_path, f"idna --hash=sha256:{'z' * 64}\n"))


def test_an_include_through_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    directory = desired(tmp_path, "idna\n-r loop.txt\n")
    (directory / "loop.txt").symlink_to(directory / "loop.txt")
    with pytest.raises(UserError) as caught:
        load_desired_state(directory)
    assert str(caught.value) == "desired-state/requirements.txt:2: -r loop.txt: a symlink loop"


def test_an_absurdly_long_line_is_refused_before_parsing(tmp_path: Path) -> None:
    directory = desired(tmp_path, "idna\nrequests" + ">=1," * 50_000 + "\n")
    with pytest.raises(UserError) as caught:
        load_desired_state(directory)
    assert str(caught.value) == (
        "desired-state/requirements.txt:2: a line of 200009 bytes, more than 16384: "
        "not a requirement"
    )
