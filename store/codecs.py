"""The byte formats of what the store holds, each as one encoder and one typed decoder.

A funnel row (``P:funnel``: customer id → row) is stored as a JSON array, by position:
``[first channel, first campaign, {stage: entered ms}, short traits, revenue, first ms,
{stage: channel it was entered by}, lifecycle]`` (:func:`touchpath.funnel_rows.funnel_row`
builds it). Rows written by older versions stop after the short traits, the revenue, the
first ms or the entry channels: the missing trailing elements decode to their empty values.

A timeline entry (``P:a:<identifier>:journey``: member → event time ms as the score) is a
JSON array, by position, its time only in the score::

    [1, id, channel, type, tb, source, event, properties, campaign, r]

``1`` marks the format; ``id`` is the messageId (what keeps the member unique per event);
``channel`` and ``type`` are small integers for the values of :data:`JOURNEY_CHANNELS` and
:data:`JOURNEY_TYPES` (their index: the tuples only ever grow at the end), else the text as
sent; ``tb`` the same-millisecond tiebreak and ``r`` the other fields the rules read (both for
re-evaluation, not shown by the API); ``source``, ``event`` (the event or page name, cut),
``properties`` and ``campaign`` as :func:`touchpath.effects.journey_entry` builds them (objects
with sorted keys, so an entry always has the same bytes). A field the entry lacks is ``null``,
and trailing nulls are dropped, e.g.
``[1,"c6e8…a7",0,0,"54290ac6487","bench","Product List Viewed"]``. Entries written before
(a JSON object holding the same fields by name, and ``at``) decode the same: no migration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from touchpath.funnel_rows import funnel_row


class StoredFunnelRow(NamedTuple):
    """One customer's funnel row as stored, by name."""

    channel: Any  # first-touch channel (a string, or None)
    campaign: Any  # first-touch UTM campaign (a string, or None)
    entered: dict[str, Any]  # stage → entered ms
    traits: dict[str, Any]  # short traits ({} when the stored value is not an object)
    revenue: float  # revenue of the customer's order events (0.0 when absent)
    first_ms: int | None  # first touch ms (None when absent)
    entered_by: dict[str, Any]  # stage → channel of the event that entered it ({} when absent)
    lifecycle: dict[str, Any]  # touchpath.cycles.journey_times ({} when absent)


def encode_funnel_row(profile: Mapping[str, Any], persona: Sequence[str] = ()) -> bytes:
    """The stored bytes of a profile's funnel row (``persona``: traits kept first)."""
    return orjson.dumps(funnel_row(profile, persona))


def decode_funnel_row(raw: bytes | str) -> StoredFunnelRow | None:
    """A stored funnel row by name (None when the bytes are not a row: not a JSON array of
    at least four elements whose third is an object)."""
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(row) is not list or len(row) < 4 or type(row[2]) is not dict:
        return None
    size = len(row)
    traits, revenue = row[3], row[4] if size > 4 else 0.0
    first = row[5] if size > 5 else None
    by = row[6] if size > 6 else None
    life = row[7] if size > 7 else None
    return StoredFunnelRow(
        row[0],
        row[1],
        row[2],
        traits if type(traits) is dict else {},
        float(revenue) if type(revenue) in (int, float) else 0.0,
        first if type(first) is int else None,
        by if type(by) is dict else {},
        life if type(life) is dict else {},
    )


#: ``channel`` codes of timeline entries: the index of a known channel (append only).
JOURNEY_CHANNELS = (
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
)
#: ``type`` codes of timeline entries: the index of an event type (append only).
JOURNEY_TYPES = ("track", "page", "identify", "screen", "group", "alias")
JOURNEY_FORMAT = 1  # the leading element of a positional entry
_CHANNEL_CODES = {name: code for code, name in enumerate(JOURNEY_CHANNELS)}
_TYPE_CODES = {name: code for code, name in enumerate(JOURNEY_TYPES)}
#: the optional fields of an entry, in their positions after ``id``, ``channel`` and ``type``
_OPTIONAL = ("tb", "source", "event", "properties", "campaign", "r")


def encode_journey_entry(entry: Mapping[str, Any]) -> bytes:
    """The stored member of a timeline entry (its ``at`` is the score, not in the member)."""
    get = entry.get
    channel, kind = get("channel"), get("type")
    row = [
        JOURNEY_FORMAT,
        entry["id"],
        _CHANNEL_CODES.get(channel, channel) if type(channel) is str else channel,
        _TYPE_CODES.get(kind, kind) if type(kind) is str else kind,
        get("tb"),
        get("source"),
        get("event"),
        get("properties"),
        get("campaign"),
        get("r"),
    ]
    while row[-1] is None:
        row.pop()
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)  # the same bytes for the same entry


def decode_journey_entry(member: bytes | str, score: float) -> dict[str, Any]:
    """A stored timeline entry by name, ``at`` (epoch ms) from its score; an entry of the
    format before (a JSON object) as it was written. ValueError when it is neither."""
    found = orjson.loads(member)
    if type(found) is dict:
        found["at"] = int(score)
        return found
    if type(found) is not list or len(found) < 4 or found[0] != JOURNEY_FORMAT:
        raise ValueError(f"not a timeline entry: {member!r:.80}")
    entry = {
        "id": found[1],
        "at": int(score),
        "channel": _named(JOURNEY_CHANNELS, found[2]),
        "type": _named(JOURNEY_TYPES, found[3]),
        "source": found[5] if len(found) > 5 else None,
    }
    for name, value in zip(_OPTIONAL, found[4:], strict=False):
        if value is not None and name != "source":
            entry[name] = value
    return entry


def _named(names: tuple[str, ...], value: Any) -> Any:
    """The value a code stands for (text stays as it is)."""
    if type(value) is not int:
        return value
    if not 0 <= value < len(names):
        raise ValueError(f"unknown timeline entry code {value}")
    return names[value]


def decode_journey(pairs: Iterable[tuple[bytes | str, float]]) -> list[dict[str, Any]]:
    """Stored timeline entries (member, score), each by name (:func:`decode_journey_entry`)."""
    return [decode_journey_entry(member, score) for member, score in pairs]
