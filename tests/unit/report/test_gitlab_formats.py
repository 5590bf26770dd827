"""The formats for GitLab's merge-request widgets: terraform counts and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from reconciler import planfile
from reconciler.cli import mirror_app
from reconciler.model import Action, ActionKind, Blocked, Plan, PlannedFile, Problem
from reconciler.report import FormatName, JunitFormat, TerraformFormat, make_format
from reconciler.report.terraform import MAX_COUNT
from tests.conftest import FROZEN_NOW

WHEEL = PlannedFile("requests-2.32.3-py3-none-any.whl", "a" * 64)


def upload(name: str, version: str, reason: str = "new requirement") -> Action:
    return Action(ActionKind.UPLOAD, name, version, reason, (WHEEL,))


def delete(name: str, version: str, quarantine: bool = False) -> Action:
    reason = "has GHSA-1" if quarantine else "no longer desired"
    advisories = ("GHSA-1",) if quarantine else ()
    return Action(
        ActionKind.DELETE, name, version, reason, (), quarantine=quarantine, advisories=advisories
    )


def make_plan(actions: tuple[Action, ...] = (), blocked: tuple[Blocked, ...] = ()) -> Plan:
    return Plan(
        created_at=FROZEN_NOW,
        evaluated_at=FROZEN_NOW,
        desired_digest="sha256:d",
        actual_digest="sha256:a",
        actions=actions,
        blocked=blocked,
    )


PLAN = make_plan(
    actions=(
        upload("requests", "2.32.3"),
        upload("urllib3", "2.2.1"),
        delete("old", "0.1"),
        delete("bad", "1.0", quarantine=True),
    ),
    blocked=(
        Blocked("foo", "foo>=2", Problem.IMMATURE, "foo 2.1 is 3 days old", FROZEN_NOW),
        Blocked(
            "bar", "bar==1.0", Problem.VULNERABLE, "bar 1.0 has GHSA-2", advisories=("GHSA-2",)
        ),
    ),
)


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(text.encode("utf-8"))


def cases(root: ET.Element) -> list[ET.Element]:
    return root.findall("./testsuite/testcase")


# terraform


def test_terraform_counts_uploads_and_deletes_including_quarantines() -> None:
    text = TerraformFormat().render(PLAN)
    assert text.endswith("}\n")
    assert json.loads(text) == {"create": 2, "update": 0, "delete": 2}


def test_terraform_has_all_three_keys_when_nothing_changes() -> None:
    assert json.loads(TerraformFormat().render(make_plan())) == {
        "create": 0,
        "update": 0,
        "delete": 0,
    }


def test_terraform_caps_counts_like_gitlab() -> None:
    many = (upload("p", "1"),) * (MAX_COUNT + 2)
    assert json.loads(TerraformFormat().render(make_plan(many)))["create"] == 999_999


# junit


def test_junit_suite_counts_and_plan_order() -> None:
    root = parse(JunitFormat().render(PLAN))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "mirror plan"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "2", "0")
    assert [(c.get("classname"), c.get("name")) for c in cases(root)] == [
        ("upload", "requests 2.32.3"),
        ("upload", "urllib3 2.2.1"),
        ("delete", "old 0.1"),
        ("quarantine", "bad 1.0"),
        ("blocked", "foo>=2"),
        ("blocked", "bar==1.0"),
    ]


def test_junit_one_failure_per_blocked_requirement_with_reason_and_detail() -> None:
    root = parse(JunitFormat().render(PLAN))
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == 2
    immature, advisory = failures
    assert immature.get("message") == "immature"
    assert immature.text == f"foo 2.1 is 3 days old (eligible {FROZEN_NOW:%Y-%m-%d %H:%M} UTC)"
    assert advisory.get("message") == "vulnerable"
    assert advisory.text == "bar 1.0 has GHSA-2"


def test_junit_actions_pass_with_their_reason() -> None:
    by_name = {c.get("name"): c for c in cases(parse(JunitFormat().render(PLAN)))}
    for name in ("requests 2.32.3", "old 0.1", "bad 1.0"):
        assert by_name[name].find("failure") is None
    assert by_name["requests 2.32.3"].findtext("system-out") == "new requirement"
    assert by_name["bad 1.0"].findtext("system-out") == "has GHSA-1"


def test_junit_escapes_markup_in_names_messages_and_text() -> None:
    nasty = '<b>&"x"</b>'
    plan = make_plan(
        actions=(upload("pkg", "1.0", reason=f"new requirement {nasty}"),),
        blocked=(Blocked("a", f"a{nasty}", Problem.IMMATURE, f"detail {nasty}\x01"),),
    )
    text = JunitFormat().render(plan)
    assert "<b>" not in text
    root = parse(text)
    blocked = cases(root)[1]
    assert blocked.get("name") == f"a{nasty}"
    failure = blocked.find("failure")
    assert failure is not None
    assert failure.get("message") == "immature"
    assert failure.text == f"detail {nasty}\ufffd"  # a control character XML cannot hold
    assert cases(root)[0].findtext("system-out") == f"new requirement {nasty}"


def test_junit_names_are_unique() -> None:
    plan = make_plan(
        actions=(upload("pkg", "1.0"), delete("pkg", "1.0"), upload("pkg", "1.0 #2")),
        blocked=(
            Blocked("foo", "foo>=2", Problem.IMMATURE, "a"),
            Blocked("foo", "foo>=2", Problem.VULNERABLE, "b"),
        ),
    )
    names = [c.get("name") for c in cases(parse(JunitFormat().render(plan)))]
    assert len(set(names)) == len(names) == 5
    assert names[:2] == ["pkg 1.0", "pkg 1.0 #2"]
    assert names[3:] == ["foo>=2", "foo>=2 #2"]


def test_junit_with_nothing_to_do_is_an_empty_suite() -> None:
    suite = parse(JunitFormat().render(make_plan())).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), len(suite)) == ("0", "0", 0)


def test_junit_is_deterministic() -> None:
    assert JunitFormat().render(PLAN) == JunitFormat().render(PLAN)


# registration and the CLI


def test_make_format_knows_the_gitlab_formats() -> None:
    assert isinstance(make_format(FormatName("terraform")), TerraformFormat)
    assert isinstance(make_format(FormatName("junit")), JunitFormat)


def test_mirror_show_renders_a_saved_plan_in_the_gitlab_formats(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    saved.write_text(planfile.to_json(PLAN), encoding="utf-8")
    runner = CliRunner()
    terraform = runner.invoke(mirror_app, ["show", str(saved), "--format", "terraform"])
    assert terraform.exit_code == 0, terraform.output
    assert json.loads(terraform.stdout) == {"create": 2, "update": 0, "delete": 2}
    junit = runner.invoke(mirror_app, ["show", str(saved), "--format", "junit"])
    assert junit.exit_code == 0, junit.output
    assert len(parse(junit.stdout).findall("./testsuite/testcase/failure")) == 2
