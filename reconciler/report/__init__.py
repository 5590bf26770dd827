"""Plan formats: table (people), json (the plan file), markdown (merge-request notes), and
terraform and junit (GitLab's merge-request widgets, through `artifacts:reports`)."""

from __future__ import annotations

from enum import Enum

from reconciler.report.interface import PlanFormat
from reconciler.report.json import JsonFormat
from reconciler.report.junit import JunitFormat
from reconciler.report.markdown import MarkdownFormat
from reconciler.report.table import TableFormat
from reconciler.report.terraform import TerraformFormat

__all__ = [
    "FormatName",
    "JsonFormat",
    "JunitFormat",
    "MarkdownFormat",
    "PlanFormat",
    "TableFormat",
    "TerraformFormat",
    "make_format",
]


class FormatName(str, Enum):
    """The formats `--format` accepts."""

    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    TERRAFORM = "terraform"
    JUNIT = "junit"


def make_format(name: FormatName, color: bool = False, width: int | None = None) -> PlanFormat:
    """The renderer for a format name; `color` and `width` describe a terminal (table only)."""
    if name is FormatName.TABLE:
        return TableFormat(color=color, width=width)
    if name is FormatName.JSON:
        return JsonFormat()
    if name is FormatName.TERRAFORM:
        return TerraformFormat()
    if name is FormatName.JUNIT:
        return JunitFormat()
    return MarkdownFormat()
