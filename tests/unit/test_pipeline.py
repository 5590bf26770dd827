"""`.gitlab-ci.yml` routes each job to its pipeline: plan on MRs, apply on main, drift nightly.

A tiny evaluator of the rule expressions the file uses, with GitLab's semantics: the first
matching rule wins, `when: never` excludes, a job with rules and no match does not run, and
`workflow:rules` decides whether there is a pipeline at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ruamel.yaml import YAML

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CI_FILE = Path(__file__).resolve().parents[2] / ".gitlab-ci.yml"
MIRROR_JOBS = ("plan", "apply", "drift", "force-unlock")
TOKENS = ("CI_JOB_TOKEN", "MIRROR_NOTE_TOKEN")
# Top-level keys that are not jobs.
GLOBAL_KEYS = {"workflow", "stages", "variables", "default", "include", "image", "cache"}
GLOBAL_KEYS |= {"before_script", "after_script", "services"}

_EQUALS_LITERAL = re.compile(r'^\$(\w+)\s*==\s*"([^"]*)"$')
_EQUALS_VARIABLE = re.compile(r"^\$(\w+)\s*==\s*\$(\w+)$")
_PRESENT = re.compile(r"^\$(\w+)$")

Env = Mapping[str, str]


def load() -> dict[str, Any]:
    data = YAML(typ="safe").load(CI_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


CI = load()
JOBS = {name: job for name, job in CI.items() if name not in GLOBAL_KEYS}


def evaluate(expression: str, env: Env) -> bool:
    """The forms the file uses: `$A == "x"`, `$A == $B`, `$A` (set, non-empty), joined by &&."""
    assert "||" not in expression and "(" not in expression, f"unsupported: {expression}"
    return all(_clause(part.strip(), env) for part in expression.split("&&"))


def _clause(clause: str, env: Env) -> bool:
    if match := _EQUALS_LITERAL.match(clause):
        return env.get(match[1]) == match[2]
    if match := _EQUALS_VARIABLE.match(clause):
        return env.get(match[1]) == env.get(match[2])  # two unset variables are equal
    if match := _PRESENT.match(clause):
        return bool(env.get(match[1]))
    raise AssertionError(f"the evaluator does not know this form: {clause!r}")


def matches(rules: list[dict[str, Any]], env: Env) -> bool:
    """First matching rule wins; `when: never` excludes; no match: excluded."""
    for rule in rules:
        assert set(rule) <= {"if", "when"}, f"unsupported rule keys: {rule}"
        if "if" not in rule or evaluate(rule["if"], env):
            return rule.get("when", "on_success") != "never"
    return False


def pipeline(env: Env) -> set[str] | None:
    """The jobs a pipeline with these variables runs; None when there is no pipeline."""
    if not matches(CI["workflow"]["rules"], env):
        return None
    return {name for name, job in JOBS.items() if matches(job["rules"], env)}


def scripts(job: Mapping[str, Any]) -> Iterator[str]:
    for key in ("before_script", "script", "after_script"):
        yield from job.get(key, ())


BASE = {"CI_DEFAULT_BRANCH": "main", "CI_PROJECT_ID": "42", "CI_JOB_TOKEN": "secret"}


def env(**variables: str) -> dict[str, str]:
    return {**BASE, **variables}


MR_EVENT = env(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="7")
PUSH_MAIN = env(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="main")
PUSH_FEATURE = env(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="feature")
PUSH_FEATURE_WITH_MR = env(
    CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="feature", CI_OPEN_MERGE_REQUESTS="g/p!7"
)
SCHEDULE_MAIN = env(CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BRANCH="main")


def test_the_three_jobs_exist_and_all_have_rules() -> None:
    assert set(JOBS) == set(MIRROR_JOBS)
    for name, job in JOBS.items():
        assert job.get("rules"), f"{name} has no rules: it would run in every pipeline"


@pytest.mark.parametrize(
    ("case", "variables", "expected"),
    [
        ("merge request", MR_EVENT, {"plan"}),
        ("push to the default branch", PUSH_MAIN, {"apply"}),
        ("schedule on the default branch", SCHEDULE_MAIN, {"drift"}),
        ("push to another branch", PUSH_FEATURE, set()),
        (
            "push to main with an MR from main open",
            {**PUSH_MAIN, "CI_OPEN_MERGE_REQUESTS": "g/p!8"},
            {"apply"},
        ),
        (
            "schedule on another branch",
            env(CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BRANCH="feature"),
            set(),
        ),
        ("manual run on main", env(CI_PIPELINE_SOURCE="web", CI_COMMIT_BRANCH="main"), set()),
        (
            "manual run with a lock ID",
            env(CI_PIPELINE_SOURCE="web", CI_COMMIT_BRANCH="main", LOCK_ID="abc"),
            {"force-unlock"},
        ),
        ("api run on main", env(CI_PIPELINE_SOURCE="api", CI_COMMIT_BRANCH="main"), set()),
    ],
)
def test_rules_route_each_job_to_its_pipeline(
    case: str, variables: Env, expected: set[str]
) -> None:
    assert (pipeline(variables) or set()) == expected, case


def test_a_branch_with_an_open_merge_request_gets_no_duplicate_branch_pipeline() -> None:
    assert pipeline(PUSH_FEATURE_WITH_MR) is None


def test_a_schedule_on_main_drifts_and_does_not_apply() -> None:
    jobs = pipeline(SCHEDULE_MAIN)
    assert jobs is not None
    assert "apply" not in jobs and "drift" in jobs


def test_apply_and_drift_share_a_resource_group_and_plan_takes_none() -> None:
    group = JOBS["apply"]["resource_group"]
    assert group and JOBS["drift"]["resource_group"] == group
    assert "resource_group" not in JOBS["plan"]


def test_plan_publishes_the_merge_request_reports_always() -> None:
    artifacts = JOBS["plan"]["artifacts"]
    assert artifacts["when"] == "always"
    assert "plan.json" in artifacts["paths"]
    reports = artifacts["reports"]
    assert reports["terraform"] == "plan.tfreport.json"
    assert reports["junit"] == "plan.junit.xml"
    script = "\n".join(scripts(JOBS["plan"]))
    assert "--format terraform > plan.tfreport.json" in script
    assert "--format junit > plan.junit.xml" in script
    assert "mirror comment plan.json" in script
    # The note shows the merge's own changes against its target branch's head, fetched.
    fetch = 'git fetch --quiet $depth origin "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"'
    assert script.index(fetch) < script.index("--against FETCH_HEAD --out plan.json")


@pytest.mark.parametrize("shallow", [False, True])
def test_the_plan_job_fetches_its_target_under_sh_e_and_keeps_a_whole_clone_whole(
    tmp_path: Path, shallow: bool
) -> None:
    """GitLab runs each script line under `sh -e`: the fetch lines, as the job has them, in a
    whole clone (which must stay whole: applies place commits in it) and a shallow one."""
    identity = ["-c", "user.email=ci@example.invalid", "-c", "user.name=CI"]
    origin = tmp_path / "origin"
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    for message in ("one", "two"):
        subprocess.run(
            ["git", "-C", str(origin), *identity, "commit", "-q", "--allow-empty", "-m", message],
            check=True,
        )
    clone = tmp_path / "clone"
    depth = ["--depth=1"] if shallow else []
    subprocess.run(["git", "clone", "-q", *depth, f"file://{origin}", str(clone)], check=True)
    lines = [line for line in JOBS["plan"]["script"] if "shallow" in line or "git fetch" in line]
    env = {**os.environ, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    done = subprocess.run(
        ["sh", "-ec", "\n".join([*lines, "git rev-parse --is-shallow-repository FETCH_HEAD"])],
        cwd=clone, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer, fetched = done.stdout.split()
    assert answer == ("true" if shallow else "false") and len(fetched) == 40


def test_apply_applies_the_plan_it_just_made_and_keeps_it() -> None:
    script = list(JOBS["apply"]["script"])
    assert script[:2] == [
        "mirror plan --registry gitlab --out plan.json",
        "mirror apply plan.json --registry gitlab",
    ]
    # Then the applied plan goes to the merged merge request, without failing a done apply.
    assert "mirror comment plan.json --applied ||" in script[2]
    assert "plan.json" in JOBS["apply"]["artifacts"]["paths"]


def test_drift_found_is_a_warning_and_an_error_fails() -> None:
    drift = JOBS["drift"]
    assert drift["allow_failure"] == {"exit_codes": [2]}
    assert drift["artifacts"]["when"] == "always"
    assert "drift-report/" in drift["artifacts"]["paths"]
    assert "--report-dir drift-report" in "\n".join(scripts(drift))


def test_common_image_and_caches() -> None:
    default = CI["default"]
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", default["image"])
    assert CI["variables"]["MIRROR_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/mirror"
    prefix = "$CI_PROJECT_DIR/"
    cached = {f"{prefix}{path.rstrip('/')}" for path in default["cache"]["paths"]}
    assert CI["variables"]["MIRROR_CACHE_DIR"] in cached
    assert CI["variables"]["PIP_CACHE_DIR"] in cached
    assert default["before_script"] == [
        # git first: the slim image has none, and the desired state's history is read
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends git > /dev/null",
        "python -m pip install --require-hashes --no-deps -r ci/requirements.lock",
        "python -m pip install --no-deps --no-build-isolation .",
    ]


def test_the_tool_installs_only_what_its_lock_pins_with_hashes() -> None:
    """Every dependency of the tool (and its build backend) is pinned, with hashes, in the
    lock the pipeline installs from; a dependency added to pyproject.toml without relocking
    fails here."""
    root = CI_FILE.parent
    lock = (root / "ci" / "requirements.lock").read_text()
    pinned = {
        canonicalize_name(m[1]): m[2]
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+) ", lock, re.M)
    }
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    assert all("--hash=sha256:" in entry for entry in entries if "==" in entry)
    document = tomllib.loads((root / "pyproject.toml").read_text())
    wanted = [*document["project"]["dependencies"], *document["build-system"]["requires"]]
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(
            {"python_version": "3.11"}
        ):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in ci/requirements.lock"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]}"


def test_artifacts_expire_and_force_unlock_runs_only_on_the_default_branch() -> None:
    for name in ("plan", "apply", "drift"):
        assert JOBS[name]["artifacts"]["expire_in"], name
    feature = env(CI_PIPELINE_SOURCE="web", CI_COMMIT_BRANCH="feature", LOCK_ID="abc")
    assert "force-unlock" not in (pipeline(feature) or set())


def test_no_job_uses_a_token_in_its_script() -> None:
    """Scripts may test whether a token is set, never expand it anywhere it could be seen."""
    blocks = [CI.get("default", {}), *JOBS.values()]
    for block in blocks:
        for line in scripts(block):
            for token in TOKENS:
                unseen = line.replace(f'[ -n "${{{token}:-}}" ]', "")
                for expansion in (f"${token}", f"${{{token}"):
                    assert expansion not in unseen, f"a script expands {token}: {line}"


def test_the_evaluator_itself() -> None:
    assert evaluate('$A == "x"', {"A": "x"})
    assert not evaluate('$A == "x"', {})
    assert evaluate("$A == $B", {"A": "m", "B": "m"})
    assert not evaluate("$A == $B", {"A": "m"})
    assert evaluate("$A && $B", {"A": "1", "B": "2"})
    assert not evaluate("$A && $B", {"A": "1", "B": ""})
    assert matches([{"if": "$A", "when": "never"}, {"if": "$A"}], {"A": "1"}) is False
    assert matches([{"if": "$B"}], {"A": "1"}) is False
    with pytest.raises(AssertionError):
        evaluate('$A != "x"', {})
