"""config.yaml: defaults, the seed's exception format, and errors naming key and line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from packaging.version import Version

from reconciler.desired import load_desired_state
from reconciler.desired.config import load_config
from reconciler.errors import UserError
from reconciler.model import SetKind, YankedPolicy


def load(tmp_path: Path, config: str):  # type: ignore[no-untyped-def]
    directory = tmp_path / "desired-state"
    directory.mkdir(exist_ok=True)
    (directory / "requirements.txt").write_text("requests\n")
    (directory / "config.yaml").write_text(config)
    return load_desired_state(directory).config


def test_full_config(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
policy:
  min_age_days: 7
  yanked: allow-pinned
  prune: false
  max_deletions: 3
  vulnerabilities:
    services: [osv]
    ignore:
      - id: GHSA-xxxx-xxxx-xxxx
        reason: "not reachable"
        expires: 2027-03-01
  dependencies: listed
  files:
    sdist: false
    wheels: [manylinux_2_17_x86_64, any]
exceptions:
  - package: Foo_Bar
    version: 1.2.3
    reason: "hotfix, see INC-42"
    expires: 2026-12-31
  - package: baz
    version: "2.0"
    reason: "no expiry"
upstream:
  index_url: https://pypi.example/simple/
registry:
  type: directory
  path: /srv/mirror
""",
    )
    assert config.policy.min_age_days == 7
    assert config.policy.yanked is YankedPolicy.ALLOW_PINNED
    assert config.policy.prune is False
    assert config.policy.max_deletions == 3
    assert config.policy.ignore[0].expires == date(2027, 3, 1)
    assert config.policy.files.sdist is False
    assert config.policy.files.wheel_patterns == ("manylinux_2_17_x86_64", "any")
    assert config.exceptions[0].package == "foo-bar"
    assert config.exceptions[0].version == Version("1.2.3")
    assert config.exceptions[0].expires == date(2026, 12, 31)
    assert config.exceptions[1].expires is None
    assert config.upstream.index_url == "https://pypi.example/simple"
    assert config.registry.path == "/srv/mirror"


def test_defaults_when_absent(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.policy.min_age_days == 14
    assert config.policy.services == ("osv",)
    assert config.registry.path == "registry"


def test_audit_settings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "policy:\n  min_age_days: 14\n  fix_min_age_days: 3\n  vulnerabilities:\n"
        "    services: [osv, pypi, safety]\n    safety:\n      api_key_env: SAFETY_API_KEY\n",
    )
    assert config.policy.fix_age_days == 3
    assert config.policy.services == ("osv", "pypi", "safety")
    assert config.policy.safety.api_key_env == "SAFETY_API_KEY"
    assert load(tmp_path, "policy:\n  min_age_days: 9\n").policy.fix_age_days == 9


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("policy:\n  min_age_dayz: 3\n", "config.yaml:2: policy.min_age_dayz: unknown key"),
        ("polcy: {}\n", "config.yaml:1: polcy: unknown key"),
        ("policy:\n  min_age_days: soon\n", "config.yaml:2: policy.min_age_days: expected int"),
        ("policy:\n  min_age_days: -1\n", "policy.min_age_days: must be between 0 and 36500"),
        (
            "policy:\n  min_age_days: 1000000000\n",
            "policy.min_age_days: must be between 0 and 36500",
        ),
        ("policy:\n  prune: 1\n", "config.yaml:2: policy.prune: expected bool"),
        ("policy:\n  yanked: sometimes\n", "policy.yanked: must be one of block, allow-pinned"),
        (
            "policy:\n  vulnerabilities:\n    services: [nope]\n",
            "config.yaml:3: policy.vulnerabilities.services: unknown service 'nope'",
        ),
        (
            "exceptions:\n  - package: foo\n    version: 1.0.0\n",
            "config.yaml:2: exceptions[0].reason: is required",
        ),
        (
            "exceptions:\n  - package: foo\n    version: 1.0.0\n    reason: x\n"
            "    until: 2027-01-01\n",
            "config.yaml:5: exceptions[0].until: unknown key",
        ),
        (
            "exceptions:\n  - package: foo\n    version: 1.0.0\n    reason: x\n    expires: soon\n",
            "config.yaml:5: exceptions[0].expires: expected a date",
        ),
        ("upstream:\n  index_url: ftp://x/simple\n", "upstream.index_url: expected an http(s) URL"),
        (
            "upstream:\n  index_url: https://user:secret@x/simple\n",
            "credentials in URLs are refused",
        ),
        ("registry:\n  type: s3\n", "config.yaml:2: registry.type: must be one of"),
        ("policy: [1]\n", "config.yaml:1: policy: expected a mapping"),
        (
            "policy:\n  min_age_days: 7\n  fix_min_age_days: 9\n",
            "config.yaml:3: policy.fix_min_age_days: must be between 0 and min_age_days (7)",
        ),
        (
            "policy:\n  vulnerabilities:\n    services: [osv, safety]\n",
            "config.yaml:3: policy.vulnerabilities.services: the safety service needs",
        ),
        (
            "policy:\n  vulnerabilities:\n    safety:\n      database: db\n"
            "      api_key_env: KEY\n",
            "config.yaml:5: policy.vulnerabilities.safety.api_key_env: give database or",
        ),
        (
            "policy:\n  vulnerabilities:\n    safety:\n      api_key_env: sk-live-123\n",
            "policy.vulnerabilities.safety.api_key_env: expected the name of an environment",
        ),
        ("policy:\n  min_age_days: [\n", "config.yaml:3: invalid YAML"),
        ("sets:\n  web: ../teams/web.txt\n", "config.yaml:2: sets.web: expected a path inside"),
        ("sets:\n  web: /etc/web.txt\n", "config.yaml:2: sets.web: expected a path inside"),
        ("sets:\n  a: a.txt\n  Web: w.txt\n", "config.yaml:3: sets.Web: a set's name is"),
        ("sets:\n  web: web.lock\n", "config.yaml:2: sets.web: 'web.lock': expected a"),
        ("sets:\n  web:\n", "config.yaml:2: sets.web: is required"),
        ("sets: {}\n", "config.yaml:1: sets: expected at least one set"),
        ("sets: [web.txt]\n", "config.yaml:1: sets: expected a mapping"),
        ("sets:\n", "config.yaml:1: sets: expected at least one set"),
        ("sets:\n  1: a.txt\n", "config.yaml:2: sets.1: a set's name is"),
        ("sets:\n  web-: a.txt\n", "config.yaml:2: sets.web-: a set's name is"),
    ],
)
def test_errors_name_key_and_line(tmp_path: Path, config: str, expected: str) -> None:
    with pytest.raises(UserError) as caught:
        load(tmp_path, config)
    assert expected in str(caught.value)
    assert "desired-state/config.yaml" in str(caught.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "exceptions:\n  - package: foo\n    reason: x\n    version: 1.10\n",
            'config.yaml:4: exceptions[0].version: quote the version, e.g. "1.10"',
        ),
        (
            "policy:\n  environments:\n    - {python: 3.10, platform: linux}\n",
            'config.yaml:3: policy.environments[0].python: quote the version, e.g. "3.10"',
        ),
        (
            "policy:\n  environments:\n    - python: &v !!float 3.10  # anchored, tagged\n",
            'config.yaml:3: policy.environments[0].python: quote the version, e.g. "3.10"',
        ),
        (
            "policy:\n  environments:\n    - python: 3\n",
            'policy.environments[0].python: expected a version in quotes, like "3.12", got 3',
        ),
        (
            "policy:\n  environments:\n    - python: true\n",
            'policy.environments[0].python: expected a version in quotes, like "3.12", got true',
        ),
    ],
)
def test_unquoted_numeric_versions_are_quoted_as_written(
    tmp_path: Path, config: str, message: str
) -> None:
    with pytest.raises(UserError) as caught:
        load(tmp_path, config)
    assert str(caught.value).endswith(message)


def test_a_quoted_version_is_read_as_written(tmp_path: Path) -> None:
    config = load(tmp_path, 'exceptions:\n  - package: foo\n    reason: x\n    version: "1.10"\n')
    assert config.exceptions[0].version == Version("1.10")


def test_config_that_is_not_utf8_is_a_user_error(tmp_path: Path) -> None:
    directory = tmp_path / "desired-state"
    directory.mkdir()
    (directory / "requirements.txt").write_text("idna\n")
    (directory / "config.yaml").write_bytes(b"policy:\n  min_age_days: \xff\n")
    with pytest.raises(UserError, match="config.yaml: cannot read"):
        load_desired_state(directory)


def test_yaml_aliases_are_refused_before_anything_expands(tmp_path: Path) -> None:
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        laughs += f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]\n"
    laughs += "policy:\n  min_age_days: *h\n"
    with pytest.raises(UserError) as caught:
        load(tmp_path, laughs)
    assert str(caught.value).endswith(
        "config.yaml:2: YAML aliases (*a) are not allowed in the config; write the value"
    )


def test_a_huge_value_is_shown_short_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load(tmp_path, "policy:\n  yanked: " + "x" * 100_000 + "\n")
    assert len(str(caught.value)) < 300


def test_platforms_take_uvs_names(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "policy:\n  environments:\n"
        '    - {python: "3.12", platform: aarch64-manylinux_2_28}\n'
        '    - {python: "3.11", platform: x86_64-pc-windows-msvc}\n',
    )
    assert [str(e) for e in config.policy.environments] == [
        "3.12 aarch64-manylinux_2_28",
        "3.11 x86_64-pc-windows-msvc",
    ]
    with pytest.raises(UserError) as caught:
        load(tmp_path, 'policy:\n  environments:\n    - {python: "3.12", platform: solaris}\n')
    assert "config.yaml:3: policy.environments[0].platform: unknown platform 'solaris'" in str(
        caught.value
    )


def test_sets_take_their_kind_from_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "sets:\n  web: teams/web.txt\n  data: d/pylock.data.toml\n  svc: svc/uv.lock\n"
        "  more: more.in\n"
    )
    config = load_config(path, "config.yaml")
    assert [(s.name, s.path, s.kind, s.line) for s in config.sets] == [
        ("web", "teams/web.txt", SetKind.REQUIREMENTS, 2),
        ("data", "d/pylock.data.toml", SetKind.PYLOCK, 3),
        ("svc", "svc/uv.lock", SetKind.UV_LOCK, 4),
        ("more", "more.in", SetKind.REQUIREMENTS, 5),
    ]
    assert [s.name for s in load(tmp_path, "policy: {}\n").sets] == ["requirements"]
