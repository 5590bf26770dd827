"""JUnit XML for GitLab's `artifacts:reports:junit`: blocked requirements as failed tests.

Each action is a passing test case (classname `upload`, `delete` or `quarantine`) and each
blocked requirement a failing one (classname `blocked`), so the merge request's test widget
lists what is blocked and why. GitLab keeps only the first of several test cases with the same
name, so every name is made unique.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reconciler.model import Action, ActionKind, Plan
from reconciler.report.interface import PlanFormat
from reconciler.report.text import action_line, blocked_line, blocked_requirement

SUITE_NAME = "mirror plan"

# Characters XML 1.0 cannot carry at all, not even escaped (upstream text may hold them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class JunitFormat(PlanFormat):
    """The plan as one test suite, in the plan's order: actions, then blocked requirements."""

    def render(self, plan: Plan) -> str:
        """The XML document's text, with its declaration."""
        names = _UniqueNames()
        cases: list[ET.Element] = []
        for action in plan.actions:
            case = _case(_classname(action), names.unique(f"{action.name} {action.version}"))
            ET.SubElement(case, "system-out").text = _clean(action_line(action, plan))
            cases.append(case)
        for blocked in plan.blocked:
            case = _case("blocked", names.unique(blocked_requirement(blocked, plan)))
            failure = ET.SubElement(
                case, "failure", {"message": _clean(blocked.reason.value), "type": "blocked"}
            )
            failure.text = _clean(blocked_line(blocked))
            cases.append(case)
        root = ET.Element("testsuites", {"name": SUITE_NAME})
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": SUITE_NAME,
                "tests": str(len(cases)),
                "failures": str(len(plan.blocked)),
                "errors": "0",
                "skipped": "0",
                "timestamp": plan.evaluated_at.isoformat(),
            },
        )
        suite.extend(cases)
        if plan.warnings:
            ET.SubElement(suite, "system-err").text = _clean("\n".join(plan.warnings))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _classname(action: Action) -> str:
    if action.quarantine:
        return "quarantine"
    return "upload" if action.kind is ActionKind.UPLOAD else "delete"


def _case(classname: str, name: str) -> ET.Element:
    return ET.Element("testcase", {"classname": classname, "name": name, "time": "0"})


def _clean(text: str) -> str:
    """Text without the characters XML cannot represent; ElementTree escapes the rest."""
    return _NOT_XML.sub("\ufffd", text)


class _UniqueNames:
    """Test names, XML-clean and each made unique with ` #2`, ` #3`... (GitLab keeps the first)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def unique(self, name: str) -> str:
        name = _clean(name)
        candidate, index = name, 1
        while candidate in self._seen:
            index += 1
            candidate = f"{name} #{index}"
        self._seen.add(candidate)
        return candidate
