"""`mirror init`: a commented starting desired state, every policy at its default."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.errors import UserError

CONFIG = """\
# The mirror's policy. Every key below is at its default; uncomment a line to change it.
# Unknown keys are refused, with their line. See the README for each one.
policy:
  min_age_days: 14               # a file is mirrored once it has been public this long
  # fix_min_age_days: 3          # a version fixing an advisory on what the mirror holds
  yanked: block                  # block | allow-pinned (a yanked pin stays, marked yanked)
  prune: true                    # delete versions nothing selects any more ...
  retain_days: 30                # ... once kept this long, yanked: pins and locks install
  max_deletions: 25              # a plan deleting more needs --allow-mass-delete
  vulnerabilities:
    services: [osv]              # osv | pypi | safety; several: the union of their findings
    ignore: []
    # ignore:
    #   - id: GHSA-xxxx-xxxx-xxxx        # matches aliases too (CVE, PYSEC)
    #     reason: "not reachable in our use"
    #     expires: 2027-03-01
  dependencies: closure          # closure: dependencies are judged and mirrored too | listed
  # environments:                # the targets (default: CPython 3.10-3.14 on
  #   - {python: "3.12", platform: x86_64-manylinux_2_28}  # x86_64-manylinux_2_28, macos,
  #   - {python: "3.12", platform: aarch64-apple-darwin}   # windows); platforms as uv's
  #                              # --python-platform names them; quote the version
  files:
    sdist: true
    wheels: targets              # the wheel each target installs | all | tag patterns, e.g.
    #                            # [manylinux*, macosx*, win_amd64, any]: only those considered
exceptions: []                   # admit one version despite maturity, yanks and advisories
# exceptions:
#   - package: foo
#     version: "1.2.3"
#     reason: "hotfix, see INC-42"
#     expires: 2026-12-31
upstream:
  index_url: https://pypi.org/simple
  json_url: https://pypi.org/pypi    # the pypi advisory service
  osv_url: https://api.osv.dev
registry:
  type: directory                # directory | gitlab (in GitLab CI)
  path: registry                 # relative to the repository (this directory's parent)
# sets:                          # several teams: one requirements file or lock each
#   web: teams/web.txt           # (default: requirements.txt is the one set)
#   svc: teams/svc/uv.lock       # uv.lock, pylock.toml: judged entry by entry, not resolved
"""

REQUIREMENTS = """\
# What developers may install from the mirror, one requirement per line (pip's format).
# A range gets the cooldown: the newest version that passes policy is mirrored, with the
# dependencies it needs. A pin is exactly that version, once it passes policy.
# requests>=2.31,<3
# packaging==24.2
"""


def write_starter(directory: Path) -> list[Path]:
    """Write `config.yaml` and `requirements.txt` into `directory` (made if missing); refuses
    to overwrite either, so nothing is written unless both are new. The paths written."""
    if directory.exists() and not directory.is_dir():
        raise UserError(
            "not a directory: mirror init writes a desired-state directory", path=directory
        )
    files = {directory / "config.yaml": CONFIG, directory / "requirements.txt": REQUIREMENTS}
    for path in files:
        if os.path.lexists(path):  # a dangling link too: writing would follow it elsewhere
            raise UserError(
                "already exists; mirror init writes only a new desired state", path=path
            )
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
