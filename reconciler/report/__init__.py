"""Plan formats: table (people), json (the plan file), markdown (merge-request notes)."""

from __future__ import annotations

from enum import Enum

from reconciler.report.interface import PlanFormat
from reconciler.report.json import JsonFormat
from reconciler.report.markdown import MarkdownFormat
from reconciler.report.table import TableFormat

__all__ = ["FormatName", "JsonFormat", "MarkdownFormat", "PlanFormat", "TableFormat", "make_format"]


class FormatName(str, Enum):
    """The formats `--format` accepts."""

    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"


def make_format(name: FormatName, color: bool = False) -> PlanFormat:
    """The renderer for a format name."""
    if name is FormatName.TABLE:
        return TableFormat(color=color)
    if name is FormatName.JSON:
        return JsonFormat()
    return MarkdownFormat()
