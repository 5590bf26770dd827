"""The report-format interface: a plan rendered as text; formats never print."""

from __future__ import annotations

from abc import ABC, abstractmethod

from reconciler.model import Plan


class PlanFormat(ABC):
    """Renders a plan for one audience."""

    @abstractmethod
    def render(self, plan: Plan) -> str:
        """The plan as text."""
