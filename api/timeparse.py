"""Query-parameter parsing for times, durations and cursors."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from infra.problems import Problem

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def to_ms(value: str | None, default: float, name: str) -> float:
    """ISO-8601 time (or epoch ms) → epoch ms; 400 problem when unreadable."""
    if value is None or value == "":
        return default
    if value.isdigit():
        return float(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(400, "Invalid time", f"{name} must be ISO-8601, got {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000


def duration_ms(value: str, name: str) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` → milliseconds."""
    match = _DURATION.match(value.strip())
    if not match:
        raise Problem(400, "Invalid duration", f"{name} must look like 30m, 12h, 7d or 2w")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def iso(ms: float | None) -> str | None:
    """Epoch ms → ISO-8601 UTC."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def encode_cursor(*position: object) -> str:
    """An opaque cursor for the next page."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode()


def decode_cursor(cursor: str | None, default: list[Any]) -> list[Any]:
    """The position an opaque cursor stands for; 400 when tampered."""
    if not cursor:
        return default
    try:
        position = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise Problem(400, "Invalid cursor", "the cursor is not one this API issued") from None
    if not isinstance(position, list) or len(position) != len(default):
        raise Problem(400, "Invalid cursor", "the cursor is not one this API issued")
    return position
