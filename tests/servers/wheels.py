"""Real, installable distributions built in memory, so tests can `pip install` them."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import tarfile
import zipfile


def _module(project: str) -> str:
    return re.sub(r"[-_.]+", "_", project).lower()


def make_metadata(project: str, version: str, requires: tuple[str, ...] = ()) -> bytes:
    """Core metadata (METADATA / PKG-INFO): `requires` are Requires-Dist lines, and each extra
    they name (`; extra == "x"`) gets its Provides-Extra."""
    extras = sorted(set(re.findall(r'extra\s*==\s*["\']([^"\']+)["\']', "\n".join(requires))))
    lines = ["Metadata-Version: 2.1", f"Name: {project}", f"Version: {version}"]
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    return ("\n".join(lines) + "\n").encode()


def make_wheel(
    project: str,
    version: str,
    requires: tuple[str, ...] = (),
    tag: str = "py3-none-any",
    source: bytes | None = None,
) -> tuple[str, bytes]:
    """A wheel whose module records its version (or holds `source`): pure Python
    (`py3-none-any`), or labelled with a platform `tag` (`cp312-cp312-win_amd64`) for
    resolvers to choose by."""
    module = _module(project)
    dist_info = f"{module}-{version}.dist-info"
    pure = "true" if tag.endswith("-none-any") else "false"
    files = {
        f"{module}/__init__.py": source or f'__version__ = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": make_metadata(project, version, requires),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: {pure}\nTag: {tag}\n"
        ).encode(),
    }
    record_lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{name},sha256={digest},{len(data)}")
    record_lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            archive.writestr(info, data)
    return f"{module}-{version}-{tag}.whl", buffer.getvalue()


def make_sdist(
    project: str, version: str, requires: tuple[str, ...] = (), pyproject: str | None = None
) -> tuple[str, bytes]:
    """A minimal sdist: PKG-INFO, enough to be mirrored and listed; with `pyproject`, also
    that pyproject.toml and the module, enough for its build backend to build it."""
    module = _module(project)
    base = f"{module}-{version}"
    members = {f"{base}/PKG-INFO": make_metadata(project, version, requires)}
    if pyproject is not None:
        members[f"{base}/pyproject.toml"] = pyproject.encode()
        members[f"{base}/{module}/__init__.py"] = f'__version__ = "{version}"\n'.encode()
    buffer = io.BytesIO()
    # Byte-stable: gzip's header carries a time too (mode "w:gz" would stamp the current one).
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1577836800
            archive.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", buffer.getvalue()


# A PEP 517 build backend in a few lines, for tests where pip builds an sdist from the mirror:
# it packs the sdist's module and PKG-INFO into a pure-Python wheel.
TINY_BACKEND = b'''"""tinybuild: packs an sdist's module and PKG-INFO into a wheel."""
import base64, email.parser, hashlib, os, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("PKG-INFO", "rb") as stream:
        info = stream.read()
    message = email.parser.BytesParser().parsebytes(info)
    module = message["Name"].replace("-", "_").lower()
    dist_info = module + "-" + message["Version"] + ".dist-info"
    files = {
        module + "/__init__.py": open(os.path.join(module, "__init__.py"), "rb").read(),
        dist_info + "/METADATA": info,
        dist_info + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tinybuild\\n"
        b"Root-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(name + ",sha256=" + digest.decode() + "," + str(len(data)))
    files[dist_info + "/RECORD"] = ("\\n".join(record + [dist_info + "/RECORD,,"]) + "\\n").encode()
    filename = module + "-" + message["Version"] + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return filename
'''
