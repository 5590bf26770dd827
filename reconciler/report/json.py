"""The plan file format itself, for machines."""

from __future__ import annotations

from reconciler import planfile
from reconciler.model import Plan
from reconciler.report.interface import PlanFormat


class JsonFormat(PlanFormat):
    """The contract's plan JSON (`format_version: 1`)."""

    def render(self, plan: Plan) -> str:
        """The plan file's text."""
        return planfile.to_json(plan)
