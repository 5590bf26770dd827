"""The quarantine log's JSON form, the same in every registry that keeps one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.model import Cause, QuarantineRecord, version_key


def key(name: str, version: str) -> str:
    """One entry per release, whatever its spelling (`1.0` and `1.0.0` are one)."""
    return f"{name} {version_key(version)}"


def to_json(record: QuarantineRecord) -> dict[str, Any]:
    """A record as JSON data."""
    return {
        "name": record.name,
        "version": record.version,
        "reason": record.reason,
        "advisories": list(record.advisories),
        "at": record.at.isoformat(),
        "cause": record.cause.value if record.cause else None,
        "files": [list(pair) for pair in record.files],
    }


def from_json(entries: Mapping[str, Any]) -> dict[str, QuarantineRecord]:
    """Records from JSON data; raises ValueError when it is malformed."""
    try:
        return {
            entry_key: QuarantineRecord(
                name=entry["name"],
                version=entry["version"],
                reason=entry["reason"],
                advisories=tuple(entry["advisories"]),
                at=datetime.fromisoformat(entry["at"]),
                cause=Cause(entry["cause"]) if entry.get("cause") else None,
                files=tuple((filename, sha256) for filename, sha256 in entry.get("files", [])),
            )
            for entry_key, entry in entries.items()
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"malformed quarantine log: {error!r}") from None
