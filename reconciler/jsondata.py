"""JSON from outside (upstream, services, GitLab, files on disk), parsed with one failure mode.

`json.loads` raises RecursionError for deeply nested input (a 200,000-deep array from a
hostile server); here every malformed document is a ValueError, which each caller turns into
its own one-line error.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes) -> Any:
    """The document; ValueError when it is not JSON or nested too deeply to parse."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
