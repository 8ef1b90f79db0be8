"""The touchpoint event model: Segment-spec validation and enrichment, as pure functions.

:func:`normalize_event` takes one raw event as a client sent it and returns the enriched event
(``messageId``, ``receivedAt``, skew-corrected ``timestamp``, ``context.channel``) or raises
:class:`InvalidEvent` with a precise reason.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from touchpath.identifiers import (
    CONTROL_CHARACTER,
    MAX_IDENTIFIER_LENGTH,
    identifiers_of,
    is_junk,
)
from touchpath.surveys import survey_answer

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
#: Segment ``context.channel`` values mapped onto touchpath channels.
CHANNEL_ALIASES = {
    "browser": "web",
    "client": "web",
    "website": "web",
    "app": "mobile",
    "ios": "mobile",
    "android": "mobile",
    "backend": "server",
}
#: The channels touchpath knows: write keys choose among them, and metrics label only these
#: (any other ``context.channel`` a client sends is stored as sent, labelled ``other``).
CHANNELS = frozenset(
    {
        "web",
        "mobile",
        "email",
        "chat",
        "ads",
        "social",
        "search",
        "store",
        "support",
        "server",
        "sms",
        "push",
        "direct",
        "referral",
        "affiliate",
        "other",
    }
)


def metric_channel(channel: str) -> str:
    """A channel as a metric label: a known channel, else ``other`` (bounded series)."""
    return channel if channel in CHANNELS else "other"


_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_STRING_FIELDS = ("event", "name", "category", "groupId", "previousId")
_MESSAGE_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
#: The accepted range of event times (after clock-skew correction), both stored and read back
#: as four-digit years; an event outside it is rejected with its reason.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
#: A browser key's event times are clamped to this window around the time it was received
#: (analytics.js keeps events of an offline visitor and sends them later).
BROWSER_MAX_AGE = timedelta(days=7)
BROWSER_MAX_AHEAD = timedelta(minutes=5)
#: Channels a browser key cannot claim.
SERVER_CHANNELS = frozenset({"server"})
#: Objects and arrays nested deeper than this in one event are rejected (the event itself is
#: level 1, so ``properties.a`` is at level 2).
MAX_NESTING = 32
#: Revenue (``revenue``, ``total`` or ``value`` of an order) beyond this magnitude is rejected:
#: sums of accepted revenue always stay finite.
MAX_REVENUE = 1e15
REVENUE_PROPERTIES = ("revenue", "total", "value")
ORDER_EVENTS = frozenset({"order completed"})
#: ISO-8601 with one-digit months, days or hours (Segment's own examples use them).
_LENIENT_TIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


class InvalidEvent(ValueError):
    """The event breaks the spec; ``str(exc)`` is the reason reported to the client.

    ``code`` is a short, low-cardinality label for metrics (``too_large``, ``bad_field``, …).
    """

    def __init__(self, reason: str, code: str = "bad_field") -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class IngestContext:
    """What the collector knows about the request an event came in."""

    source: str
    default_channel: str
    received_at: datetime
    sent_at: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    #: size of the request body; per-event size checks only run when it exceeds the limit
    body_bytes: int = 1 << 62
    #: ``received_at`` formatted once per request (set automatically)
    received_text: str = ""
    #: ``browser`` for a public write key: see :func:`_browser_rules`
    trust: str = "server"
    #: identity verification secret of the key (empty: off)
    verification_secret: str = ""

    def __post_init__(self) -> None:
        if not self.received_text:
            object.__setattr__(self, "received_text", format_time(self.received_at))


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, the form every stored timestamp takes."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(value: object, field: str, check_range: bool = True) -> datetime:
    """Parse an ISO-8601 timestamp (a naive one is taken as UTC; one-digit months, days and
    hours are accepted) within the accepted range (unless ``check_range`` is false: a browser
    key's times are clamped instead); InvalidEvent with the reason otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{field} must be an ISO-8601 string", "bad_timestamp")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        moment = _lenient_time(value, field)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return in_range(moment, field, value) if check_range else moment


def in_range(moment: datetime, field: str, value: object, sent_at: object = None) -> datetime:
    """``moment`` if it lies in the accepted range of event times, else InvalidEvent naming
    the field, its value and (for a clock-skew correction) the ``sentAt`` used."""
    if not EARLIEST_TIME <= moment < LATEST_TIME:
        what = f"{field} {str(value)[:40]!r}"
        if sent_at is not None:
            what += f" corrected by sentAt {str(sent_at)[:40]!r}"
        raise InvalidEvent(
            f"{what} is outside the accepted range {format_time(EARLIEST_TIME)} to "
            f"{format_time(LATEST_TIME)} (exclusive)",
            "bad_timestamp",
        )
    return moment


def _lenient_time(value: str, field: str) -> datetime:
    """Pad one-digit parts and parse again; InvalidEvent naming the cause otherwise."""
    match = _LENIENT_TIME.match(value.strip())
    if match is None:
        raise InvalidEvent(f"{field} is not an ISO-8601 date-time: {value[:40]!r}", "bad_timestamp")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    zone = (zone or "Z").upper().replace(":", "")
    offset = "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[3:5] or '00'}"
    text = (
        f"{year}-{int(month):02d}-{int(day):02d}T{int(hour or 0):02d}:{minute or '00'}:"
        f"{second or '00'}.{(fraction or '0')[:6].ljust(6, '0')}{offset}"
    )
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidEvent(
            f"{field} is not a valid date-time: {value[:40]!r} ({exc})", "bad_timestamp"
        ) from None


def event_millis(event: Mapping[str, Any]) -> int:
    """Event time of a normalised event in epoch milliseconds."""
    return int(parse_time(event["timestamp"], "timestamp").timestamp() * 1000)


def normalize_event(
    raw: object, ctx: IngestContext, *, forced_type: str | None = None, max_bytes: int = 32768
) -> dict[str, Any]:
    """Validate and enrich one raw event; raise InvalidEvent with the reason."""
    if not isinstance(raw, dict):
        raise InvalidEvent("event must be a JSON object", "not_object")
    if _deeper_than(raw, MAX_NESTING - 1):
        raise InvalidEvent(
            f"event nests objects or arrays deeper than {MAX_NESTING} levels", "too_deep"
        )
    if ctx.body_bytes > max_bytes:  # a smaller request cannot hold an oversized event
        size = len(orjson.dumps(raw))
        if size > max_bytes:
            raise InvalidEvent(
                f"event is {size} bytes; the limit is {max_bytes} bytes", "too_large"
            )
    event = dict(raw)
    event.pop("writeKey", None)
    event_type = forced_type or event.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise InvalidEvent(
            f"type must be one of {sorted(EVENT_TYPES)}, got {event_type!r}", "bad_type"
        )
    event["type"] = event_type
    _check_shapes(event)
    _check_identifiers(event)
    _check_type_requirements(event)
    revenue_of(event)
    for key in ("userId", "anonymousId"):
        if isinstance(event.get(key), int) and not isinstance(event.get(key), bool):
            event[key] = str(event[key])
    if not _has_identifier(event):
        raise InvalidEvent(
            "no usable identifier: userId or anonymousId is required "
            "(junk values such as 'null', 'undefined', '0' do not count)",
            "no_identifier",
        )
    _enrich(event, ctx)
    return event


def _deeper_than(value: dict[str, Any] | list[Any], budget: int) -> bool:
    """True when a container inside ``value`` lies more than ``budget`` levels below it
    (decoded JSON holds plain dicts and lists only, hence the exact type checks)."""
    for child in value.values() if isinstance(value, dict) else value:
        kind = type(child)
        if (kind is dict or kind is list) and (budget <= 0 or _deeper_than(child, budget - 1)):
            return True
    return False


def _identifier_fields(event: Mapping[str, Any]) -> Iterator[tuple[str, object, object]]:
    """Every field an identifier can be read from: (where, name, value), where + name being
    its path for a reason (left unformatted: most events never need it)."""
    for name in ("userId", "anonymousId", "previousId", "groupId"):
        yield "", name, event.get(name)
    context = event.get("context")
    context = context if type(context) is dict else {}
    for where, traits in (
        ("traits.", event.get("traits")),
        ("context.traits.", context.get("traits")),
    ):
        if type(traits) is dict:
            yield where, "email", traits.get("email")
            yield where, "phone", traits.get("phone")
    properties = event.get("properties")
    if type(properties) is dict and event.get("type") == "track":
        yield "properties.", "email", properties.get("email")
    external = context.get("externalIds")
    if type(external) is list:
        for index, item in enumerate(external[:20]):
            if type(item) is dict:
                yield "context.externalIds", index, item.get("id")
                yield "context.externalIds", index, item.get("type")


def _check_identifiers(event: Mapping[str, Any]) -> None:
    """No identifier holds a control character (the store's separators among them) or
    exceeds :data:`MAX_IDENTIFIER_LENGTH`: such a value is refused, never stored."""
    for where, name, value in _identifier_fields(event):
        if type(value) is not str or (
            len(value) <= MAX_IDENTIFIER_LENGTH and CONTROL_CHARACTER.search(value) is None
        ):
            continue
        field = f"{where}[{name}]" if type(name) is int else f"{where}{name}"
        control = CONTROL_CHARACTER.search(value)
        if control:
            raise InvalidEvent(
                f"{field} contains a control character (U+{ord(control.group()):04X})",
                "bad_identifier",
            )
        raise InvalidEvent(
            f"{field} is {len(value)} characters long; the limit is {MAX_IDENTIFIER_LENGTH}",
            "bad_identifier",
        )


def is_order(event: Mapping[str, Any]) -> bool:
    """A track call of an order event (its revenue counts)."""
    name = event.get("event")
    return event.get("type") == "track" and isinstance(name, str) and name.lower() in ORDER_EVENTS


def revenue_of(event: Mapping[str, Any]) -> float | None:
    """An order's revenue (first numeric ``revenue``/``total``/``value``, else 0), None for
    other events; InvalidEvent when it is not finite or beyond :data:`MAX_REVENUE`."""
    if not is_order(event):
        return None
    properties = event.get("properties") or {}
    for key in REVENUE_PROPERTIES:
        value = properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not (math.isfinite(value) and abs(value) <= MAX_REVENUE):
                raise InvalidEvent(f"properties.{key} is beyond ±{MAX_REVENUE:g}")
            return float(value)
    return 0.0


def _has_identifier(event: dict[str, Any]) -> bool:
    """Cheap check first (a plain userId/anonymousId), the full extraction otherwise."""
    if not is_junk(event.get("userId")) or not is_junk(event.get("anonymousId")):
        return True
    return bool(identifiers_of(event))


def _check_shapes(event: dict[str, Any]) -> None:
    for field in _OBJECT_FIELDS:
        if field in event and event[field] is not None and not isinstance(event[field], dict):
            raise InvalidEvent(f"{field} must be an object")
    for field in _STRING_FIELDS:
        if field in event and event[field] is not None and not isinstance(event[field], str):
            raise InvalidEvent(f"{field} must be a string")
    for field in ("userId", "anonymousId"):
        value = event.get(field)
        if value is not None and (not isinstance(value, str | int) or isinstance(value, bool)):
            raise InvalidEvent(f"{field} must be a string")
    message_id = event.get("messageId")
    if message_id is not None and not (
        isinstance(message_id, str) and _MESSAGE_ID.match(message_id)
    ):
        raise InvalidEvent("messageId must be 1 to 200 printable characters")


def _check_type_requirements(event: dict[str, Any]) -> None:
    event_type = event["type"]
    if event_type == "track" and not (
        isinstance(event.get("event"), str) and event["event"].strip()
    ):
        raise InvalidEvent("track needs a non-empty event name in 'event'", "missing_field")
    try:
        survey_answer(event)
    except ValueError as exc:
        raise InvalidEvent(str(exc), "bad_survey_score") from None
    if event_type == "group" and not event.get("groupId"):
        raise InvalidEvent("group needs a groupId", "missing_field")
    if event_type == "alias" and not (event.get("userId") and event.get("previousId")):
        raise InvalidEvent("alias needs userId and previousId", "missing_field")


def _enrich(event: dict[str, Any], ctx: IngestContext) -> None:
    context = dict(event.get("context") or {})
    event["context"] = context
    channel = context.get("channel") or event.pop("channel", None)  # RudderStack: top level
    if isinstance(channel, str):
        channel = CHANNEL_ALIASES.get(channel.lower(), channel.lower())
    valid = isinstance(channel, str) and _CHANNEL.match(channel)
    context["channel"] = channel if valid else ctx.default_channel
    if ctx.ip and "ip" not in context:
        context["ip"] = ctx.ip
    if ctx.user_agent and "userAgent" not in context:
        context["userAgent"] = ctx.user_agent
    event["source"] = ctx.source
    event["trust"] = ctx.trust
    event.pop("verified", None)
    if not event.get("messageId"):
        event["messageId"] = _content_id(event, ctx.source)
    event["receivedAt"] = ctx.received_text
    moment = _corrected_timestamp(event, ctx)
    if ctx.trust == "browser":
        moment = _browser_rules(event, ctx, moment)
    event["timestamp"] = format_time(moment)


def _browser_rules(event: dict[str, Any], ctx: IngestContext, moment: datetime) -> datetime:
    """What a public key may not do: claim a server channel, date an event outside
    [received - 7 days, received + 5 minutes] (clamped), or, with identity verification on,
    name a userId without its ``context.userHash`` (the event then ties nothing)."""
    context = event["context"]
    if context["channel"] in SERVER_CHANNELS:
        context["channel"] = ctx.default_channel
    if ctx.verification_secret and event.get("userId") and not _verified(event, ctx):
        if is_junk(event.get("anonymousId")):
            raise InvalidEvent(
                "identity verification failed (context.userHash does not match the userId) "
                "and the event has no anonymousId",
                "unverified",
            )
        event["verified"] = False
    earliest, latest = ctx.received_at - BROWSER_MAX_AGE, ctx.received_at + BROWSER_MAX_AHEAD
    return min(max(moment, earliest), latest)


def _verified(event: Mapping[str, Any], ctx: IngestContext) -> bool:
    """``context.userHash`` is the hex HMAC-SHA256 of the userId with the key's secret."""
    given = event["context"].get("userHash")
    expected = hmac.new(
        ctx.verification_secret.encode(), str(event["userId"]).encode(), hashlib.sha256
    ).hexdigest()
    return isinstance(given, str) and hmac.compare_digest(given.lower(), expected)


def _content_id(event: Mapping[str, Any], source: str) -> str:
    """A deterministic id for events sent without one, so a client's retry de-duplicates."""
    digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16)
    digest.update(source.encode())
    return "tp-" + digest.hexdigest()


def _corrected_timestamp(event: dict[str, Any], ctx: IngestContext) -> datetime:
    """Segment's rule: timestamp = receivedAt - (sentAt - originalTimestamp)."""
    original = event.get("timestamp") or event.get("originalTimestamp")
    if not original:
        return ctx.received_at
    checked = ctx.trust != "browser"  # a browser key's times are clamped, not refused
    original_time = parse_time(original, "timestamp", checked)
    event["originalTimestamp"] = original if isinstance(original, str) else str(original)
    sent_at = event.get("sentAt") or ctx.sent_at
    if not sent_at:
        return original_time
    skew = parse_time(sent_at, "sentAt", checked) - ctx.received_at
    try:
        corrected = original_time - skew
    except OverflowError:  # only reachable unchecked: years near 1 or 9999
        return original_time
    return in_range(corrected, "timestamp", original, sent_at) if checked else corrected
