"""`mirror serve`'s content negotiation (PEP 691) as a pure function."""

from __future__ import annotations

import pytest

from reconciler.serve import HTML_TYPE, JSON_TYPE, negotiate

PIP = f"{JSON_TYPE}, {HTML_TYPE}; q=0.1, text/html; q=0.01"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        (PIP, JSON_TYPE),
        (f"{HTML_TYPE}", HTML_TYPE),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html"),  # a browser
        ("*/*", "text/html"),
        (f"{JSON_TYPE};q=0.5, */*;q=0.9", "text/html"),
        (f"*/*;q=0.9, {JSON_TYPE}", JSON_TYPE),
        (f"application/*, {JSON_TYPE};q=0", HTML_TYPE),  # most specific range wins
        ("application/json", None),
        (f"{JSON_TYPE};q=0", None),
    ],
)
def test_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected
