"""The directory registry: what it lists is what is on disk, byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from reconciler.errors import UserError
from reconciler.model import PlannedFile
from reconciler.registry import DirectoryRegistry, RegistryError
from reconciler.registry.simple_pages import render_project_html

CONTENT = b"wheel bytes"
SHA = hashlib.sha256(CONTENT).hexdigest()
PLANNED = PlannedFile("foo-1.0-py3-none-any.whl", SHA, requires_python=">=3.9")


def place(registry: DirectoryRegistry, tmp_path: Path) -> None:
    local = tmp_path / "staged"
    local.write_bytes(CONTENT)
    registry.upload("foo", "1.0", PLANNED, local)


def test_upload_lists_file_with_its_real_hash(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    assert registry.list_actual().files == ()
    place(registry, tmp_path)
    (held,) = registry.list_actual().files
    assert (held.name, held.version, held.sha256) == ("foo", "1.0", SHA)
    assert "foo/" in (tmp_path / "reg" / "simple" / "index.html").read_text()


def test_tampered_or_missing_bytes_show_in_the_listing(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    assert registry.list_actual().files[0].sha256 == SHA  # fills the hash cache
    path = tmp_path / "reg" / "files" / "foo" / PLANNED.filename
    stat = path.stat()
    forged = b"WHEEL BYTES"  # same size; the mtime is put back as it was
    path.write_bytes(forged)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (held,) = registry.list_actual().files
    assert held.sha256 == hashlib.sha256(forged).hexdigest()
    path.unlink()
    assert registry.list_actual().files == ()


def test_generation_counts_applies_and_resumes_do_not(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    assert registry.list_actual().generation == 0
    registry.begin_apply("plan-a", None)
    registry.begin_apply("plan-a", None)
    state = registry.list_actual()
    assert (state.generation, state.last_plan, state.applied_commit) == (1, "plan-a", None)
    registry.begin_apply("plan-b", "c" * 40)
    state = registry.list_actual()
    assert (state.generation, state.applied_commit) == (2, "c" * 40)


@pytest.mark.parametrize("entry", [5, {}, [1, 2], [1, 2, 3, 4, 5], [True, 0, 0, 0, SHA], None])
def test_a_malformed_hash_cache_entry_is_hashed_again(tmp_path: Path, entry: object) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    cache = tmp_path / "reg" / ".mirror" / "hashes.json"
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps({f"foo/{PLANNED.filename}": entry}))
    (held,) = registry.list_actual().files
    assert held.sha256 == SHA


@pytest.mark.parametrize(
    "document", ['{"generation": "x"}', "[]", '{"generation": 1e400}', '{"generation": -1}', "1"]
)
def test_a_malformed_generation_file_is_a_registry_error(tmp_path: Path, document: str) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    (tmp_path / "reg" / ".mirror").mkdir(exist_ok=True)
    (tmp_path / "reg" / ".mirror" / "generation.json").write_text(document)
    with pytest.raises(RegistryError, match="generation.json"):
        registry.list_actual()


def test_delete_unlists_and_removes_the_project(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    registry.delete("foo", "1.0", [PLANNED.filename])
    registry.delete("foo", "1.0", [PLANNED.filename])  # idempotent
    assert registry.list_actual().files == ()
    assert not (tmp_path / "reg" / "simple" / "foo").exists()
    assert not (tmp_path / "reg" / "files" / "foo").exists()


def test_force_unlock_needs_a_lock_and_its_id(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    with pytest.raises(UserError, match="is not locked"):
        registry.force_unlock("x")


def test_project_page_escapes_and_marks_yanks() -> None:
    page = render_project_html(
        "foo",
        [
            PlannedFile(
                "foo-1.0.tar.gz",
                SHA,
                requires_python="<4,>=3.9",
                yanked=True,
                yanked_reason='bad "build"',
            )
        ],
        "../../files/foo/",
    )
    assert f'href="../../files/foo/foo-1.0.tar.gz#sha256={SHA}"' in page
    assert 'data-requires-python="&lt;4,&gt;=3.9"' in page
    assert 'data-yanked="bad &quot;build&quot;"' in page


def test_a_wheel_whose_metadata_inflates_past_the_cap_gets_no_pep658_file(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("foo-1.0.dist-info/METADATA", b"Name: foo\nSummary: " + b"a" * (8 << 20))
    local = tmp_path / "staged"
    local.write_bytes(buffer.getvalue())
    planned = PlannedFile("foo-1.0-py3-none-any.whl", hashlib.sha256(buffer.getvalue()).hexdigest())
    registry = DirectoryRegistry(tmp_path / "reg")
    registry.upload("foo", "1.0", planned, local)
    assert not (tmp_path / "reg" / "files" / "foo" / f"{planned.filename}.metadata").exists()
    assert "core-metadata" not in (tmp_path / "reg" / "simple" / "foo" / "index.json").read_text()


def test_what_is_served_but_not_recorded_is_held_or_repaired(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    root = tmp_path / "reg"
    (root / "files" / "foo" / "foo-0.9.tar.gz").write_bytes(b"placed by hand")  # an orphan
    (root / "files" / "foo" / "notes.txt").write_text("not a distribution")
    (root / "files" / "leak").symlink_to(tmp_path)
    html = root / "simple" / "foo" / "index.html"
    html.write_text(html.read_text().replace(PLANNED.filename, "other.whl"))
    actual = registry.list_actual()
    orphan = next(f for f in actual.files if f.filename == "foo-0.9.tar.gz")
    assert (orphan.version, orphan.listed, orphan.recorded_sha256) == ("0.9", False, None)
    assert set(actual.repairs) == {
        "files/leak is not something the mirror placed",
        "files/foo/notes.txt is not something the mirror placed",
        "simple/foo/index.html is out of date",
    }
    registry.begin_apply("plan-x", None)  # repairs come first
    assert registry.list_actual().repairs == ()
    assert (
        not (root / "files" / "leak").exists()
        and not (root / "files" / "foo" / "notes.txt").exists()
    )
    assert PLANNED.filename in html.read_text()
    assert (root / "files" / "foo" / "foo-0.9.tar.gz").exists()  # held: the plan decides


@pytest.mark.parametrize("top", ["files", "simple"])
def test_a_registry_directory_that_is_a_link_is_refused(tmp_path: Path, top: str) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "reg" / top).rename(elsewhere)
    (elsewhere / "precious.txt").write_text("not the mirror's")
    (tmp_path / "reg" / top).symlink_to(elsewhere)
    with pytest.raises(RegistryError, match=f"{top} is a symbolic link"):
        registry.list_actual()
    with pytest.raises(RegistryError):
        registry.begin_apply("plan-x", None)
    assert (elsewhere / "precious.txt").exists()


def test_a_page_that_is_a_link_is_replaced_by_the_mirrors_own(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    place(registry, tmp_path)
    page = tmp_path / "reg" / "simple" / "foo" / "index.html"
    target = tmp_path / "page.html"
    target.write_bytes(page.read_bytes())
    page.unlink()
    page.symlink_to(target)
    assert "simple/foo/index.html is not something the mirror placed" in (
        registry.list_actual().repairs
    )
    registry.begin_apply("plan-x", None)
    assert not page.is_symlink() and PLANNED.filename in page.read_text()
    assert target.exists() and registry.list_actual().repairs == ()
