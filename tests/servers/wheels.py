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
    project: str, version: str, requires: tuple[str, ...] = (), tag: str = "py3-none-any"
) -> tuple[str, bytes]:
    """A wheel whose module records its version: pure Python (`py3-none-any`), or labelled
    with a platform `tag` (`cp312-cp312-win_amd64`) for resolvers to choose by."""
    module = _module(project)
    dist_info = f"{module}-{version}.dist-info"
    pure = "true" if tag.endswith("-none-any") else "false"
    files = {
        f"{module}/__init__.py": f'__version__ = "{version}"\n'.encode(),
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


def make_sdist(project: str, version: str, requires: tuple[str, ...] = ()) -> tuple[str, bytes]:
    """A minimal sdist (PKG-INFO only): enough to be mirrored and listed."""
    module = _module(project)
    base = f"{module}-{version}"
    data = make_metadata(project, version, requires)
    buffer = io.BytesIO()
    # Byte-stable: gzip's header carries a time too (mode "w:gz" would stamp the current one).
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(data)
        info.mtime = 1577836800
        archive.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", buffer.getvalue()
