"""What every channel adapter shares: building a Segment ``track`` touchpoint, and the result.

Adapters are pure: they turn a tool's own (already verified) payload into Segment-shaped
events that the collector then validates and writes like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from touchpath.events import format_time


class PayloadError(ValueError):
    """The payload is not the shape the tool documents (answer 400 with this reason)."""


@dataclass(slots=True)
class Translation:
    """Touchpoints made from a payload, and the items skipped with their reason."""

    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, index: int, reason: str) -> None:
        self.skipped.append({"index": index, "reason": reason})


@dataclass(frozen=True, slots=True)
class Who:
    """The identifiers a tool tells us about a person."""

    email: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    external: tuple[tuple[str, str], ...] = ()


def touchpoint(
    name: str,
    who: Who,
    at: datetime,
    channel: str,
    message_id: str,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Segment ``track`` event for one touchpoint of a channel tool."""
    props = {k: v for k, v in (properties or {}).items() if v is not None}
    context: dict[str, Any] = {"channel": channel}
    if who.email:
        props.setdefault("email", who.email)
        context["traits"] = {"email": who.email}
    if who.external:
        context["externalIds"] = [
            {"type": kind, "id": value, "collection": "users"} for kind, value in who.external
        ]
    event: dict[str, Any] = {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "timestamp": format_time(at),
        "properties": props,
        "context": context,
    }
    if who.user_id:
        event["userId"] = who.user_id
    if who.anonymous_id:
        event["anonymousId"] = who.anonymous_id
    return event


def content_id(prefix: str, payload: Mapping[str, Any], leave_out: tuple[str, ...] = ()) -> str:
    """A stable id from a payload's content (minus fields a tool changes on retries)."""
    kept = {k: v for k, v in payload.items() if k not in leave_out}
    digest = hashlib.blake2b(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return f"{prefix}-{digest.hexdigest()}"


def epoch_time(value: object) -> datetime | None:
    """A Unix time in seconds (int, float or numeric text) as a UTC datetime; None if not one."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not 0 < seconds < 1e11:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def text(value: object, limit: int = 256) -> str | None:
    """A non-empty string of at most ``limit`` characters, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}
