"""Query-parameter parsing of times and durations, and ISO-8601 rendering."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from infra.problems import Problem

_DURATION = re.compile(r"^(\d{1,9})([smhdw])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
DAY_MS = 86_400_000
FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z, the earliest ISO-8601 time
FOREVER_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the latest


def to_ms(value: str | None, default: int, name: str) -> int:
    """An ISO-8601 time (``2026-03-01``, ``2026-03-01T10:00:00Z``) or epoch milliseconds as
    epoch ms; ``default`` when absent; a 400 problem naming ``name`` when unreadable."""
    if value is None or value == "":
        return default
    text = value.strip()
    if text.isdigit():
        return min(int(text), FOREVER_MS)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(FIRST_MS, min(FOREVER_MS, round(moment.timestamp() * 1000)))
    except (ValueError, OverflowError):
        raise Problem(
            400,
            "Bad Request",
            f"{name} must be an ISO-8601 time (e.g. 2026-03-01T00:00:00Z) or epoch "
            f"milliseconds, got {value!r}",
        ) from None


def window(
    since: str | None, until: str | None, default_until: int, lookback_ms: int | None = None
) -> tuple[int, int]:
    """The query's window ``[since, until]`` in epoch ms, both ends included: ``until``
    defaults to ``default_until``, ``since`` to the beginning (or ``lookback_ms`` before
    ``until``); a 400 problem when ``since`` is after ``until`` (equal is one instant)."""
    high = to_ms(until, default_until, "until")
    low = to_ms(since, 0 if lookback_ms is None else high - lookback_ms, "since")
    if low > high:
        raise Problem(400, "Bad Request", "since must not be after until")
    return low, high


def duration_ms(value: str, name: str) -> int:
    """``30m``, ``12h``, ``7d``, ``2w`` (also ``90s``) as milliseconds; 400 otherwise."""
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise Problem(
            400, "Bad Request", f"{name} must look like 30m, 12h, 7d or 2w, got {value!r}"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def iso(ms: float | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision (``…T10:00:00.000Z``),
    clamped to the years 1 to 9999."""
    if ms is None:
        return None
    moment = _EPOCH + timedelta(milliseconds=max(FIRST_MS, min(FOREVER_MS, ms)))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
