"""GitLab's `artifacts:reports:terraform` JSON, which feeds the merge request's plan widget."""

from __future__ import annotations

import json

from reconciler.model import ActionKind, Plan
from reconciler.report.interface import PlanFormat

# GitLab's parser (lib/gitlab/ci/parsers/terraform/tfplan.rb) caps every count at this.
MAX_COUNT = 999_999


class TerraformFormat(PlanFormat):
    """`{"create": uploads, "update": repairs, "delete": deletes}`: all three keys, as GitLab
    needs.

    Quarantines are deletes. The report is visible to Guests, so it holds counts only.
    """

    def render(self, plan: Plan) -> str:
        """The report's JSON text, one line."""
        counts = {
            "create": plan.count(ActionKind.UPLOAD),
            "update": len(plan.repairs),
            "delete": plan.count(ActionKind.DELETE),
        }
        return json.dumps({key: min(value, MAX_COUNT) for key, value in counts.items()}) + "\n"
