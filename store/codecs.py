"""The byte formats of what the store holds, each as one encoder and one typed decoder.

A funnel row (``P:funnel``: customer id → row) is stored as a JSON array, by position:
``[first channel, first campaign, [stage, entered ms - first ms, channel it was entered by,
…], short traits, revenue, first ms, null, lifecycle]`` (of :func:`touchpath.funnel_rows.
funnel_row`): each stage entry is a triple of the flat third element, its time counted from
the first ms (from 0 when there is none). Rows written by older versions hold
``{stage: entered ms}`` third and ``{stage: channel it was entered by}`` seventh, and may stop
after the short traits, the revenue, the first ms or the entry channels: the missing
trailing elements decode to their empty values.

What was announced of a customer (``P:announced``: customer id → record) is, while the
customer's profile is stored, the short form ``=`` + 8 hex digits: it stands for the
history of that profile (``{stage: [at_ms, messageId, channel]}``, the resolver stores both
in one atomic write), the digits being a CRC-32 of that record to check it against.
The full record, JSON ``{stage: [at_ms, messageId, channel]}``, is kept once the customer's
profile goes (merged away or split off, so that an id coming back is never told twice), and
is what older versions wrote; older still is the one entry last announced, JSON
``[stage, at_ms, messageId]``. All three decode (:func:`decode_announced`).

A fired trigger occurrence (``P:trg:s:<customer id>``: ``<trigger><US><firing id>`` →
firing) is a JSON array ``[since ms, due ms, cause, …]``; a cause is ``[at_ms, reason,
messageId, channel]`` (the last two only when the cause has them) or, of any other shape,
the cause's JSON object as it is. Versions before wrote ``{"since_ms", "at_ms",
"causes"}``, which decodes as well (:func:`decode_firing`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from touchpath.announcements import announced_record
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
    row = funnel_row(profile, persona)
    entered, by, first = row[2], row[6], row[5]
    base = first if type(first) is int else 0
    entries: list[Any] = []
    for stage, at_ms in entered.items():
        if type(at_ms) is not int:  # not a time: the row as older versions stored it
            return orjson.dumps(row)
        entries += (stage, at_ms - base, by.get(stage))
    row[2], row[6] = entries, None
    return orjson.dumps(row)


def decode_funnel_row(raw: bytes | str) -> StoredFunnelRow | None:
    """A stored funnel row by name (None when the bytes are not a row: not a JSON array of
    at least four elements whose third is an object or a list of stage entry triples)."""
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(row) is not list or len(row) < 4:
        return None
    size = len(row)
    traits, revenue = row[3], row[4] if size > 4 else 0.0
    first = row[5] if size > 5 else None
    first = first if type(first) is int else None
    life = row[7] if size > 7 else None
    if type(row[2]) is dict:
        entered = row[2]
        by = row[6] if size > 6 else None
        by = by if type(by) is dict else {}
    else:
        found = _entries(row[2], first or 0)
        if found is None:
            return None
        entered, by = found
    return StoredFunnelRow(
        row[0],
        row[1],
        entered,
        traits if type(traits) is dict else {},
        float(revenue) if type(revenue) in (int, float) else 0.0,
        first,
        by,
        life if type(life) is dict else {},
    )


def _entries(flat: Any, base: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``{stage: entered ms}`` and ``{stage: channel}`` of a row's flat entry triples."""
    if type(flat) is not list or len(flat) % 3:
        return None
    stages = flat[0::3]
    if not all(type(stage) is str for stage in stages):
        return None
    times = (base + t if type(t) is int else t for t in flat[1::3])
    return dict(zip(stages, times, strict=True)), dict(zip(stages, flat[2::3], strict=True))


class StoredAnnounced(NamedTuple):
    """What was announced of a customer, as stored."""

    #: ``{stage: [at_ms, messageId, channel]}``, or the one entry ``[stage, at_ms,
    #: messageId]`` of the oldest stores (:func:`touchpath.announcements.stage_changes`)
    record: Any
    short: bool  # stored in the short form, which stands for the profile's history
    #: False for a short form whose profile is missing or has another history: ``record``
    #: is then that profile's history as it is (``{}`` without a profile)
    matches: bool = True


_SHORT = b"="


def announced_digest(record: Mapping[str, Any]) -> bytes:
    """The 8 hex digits the short form of ``record`` holds (a CRC-32 of its canonical JSON:
    a check that the profile is the one it was written with, not a secret)."""
    return b"%08x" % zlib.crc32(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))


def encode_announced(record: Mapping[str, Any], *, profile_stored: bool) -> bytes:
    """The stored bytes of what was announced of a customer: the short form while the
    profile whose history ``record`` is stays stored (``profile_stored``), else the record."""
    if profile_stored:
        return _SHORT + announced_digest(record)
    return orjson.dumps(record)


def decode_announced(
    raw: bytes | str | None, profile: Mapping[str, Any] | None
) -> StoredAnnounced | None:
    """What was announced of a customer whose stored profile is ``profile`` (None when it
    has none): the short form reads as that profile's history. None when nothing usable is
    stored (absent, not JSON, neither a record nor an entry)."""
    if not raw:
        return None
    data = raw.encode() if isinstance(raw, str) else raw
    if data[:1] == _SHORT:
        if profile is None:
            return StoredAnnounced({}, short=True, matches=False)
        record = announced_record(profile)
        return StoredAnnounced(record, True, announced_digest(record) == data[1:])
    try:
        stored = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(stored) is dict:
        entries = {s: e for s, e in stored.items() if type(e) is list and len(e) >= 2}
        return StoredAnnounced(entries, short=False)
    if type(stored) is list and len(stored) >= 3 and type(stored[0]) is str:
        return StoredAnnounced(stored, short=False)
    return None


class StoredFiring(NamedTuple):
    """A fired trigger occurrence, as stored."""

    since_ms: int  # when the occurrence started (armed)
    at_ms: int  # when it was due
    causes: list[dict[str, Any]]  # what armed it (``at_ms``, ``reason``, …)


_CAUSE_KEYS = (
    ("at_ms", "reason"),
    ("at_ms", "message_id", "reason"),
    ("at_ms", "message_id", "channel", "reason"),
)


def encode_firing(since_ms: int, at_ms: int, causes: Sequence[Mapping[str, Any]]) -> bytes:
    """The stored bytes of a fired occurrence."""
    return orjson.dumps([since_ms, at_ms, *map(_encode_cause, causes)])


def _encode_cause(cause: Mapping[str, Any]) -> Any:
    if tuple(cause) not in _CAUSE_KEYS or type(cause["reason"]) is not str:
        return cause
    positional = [cause["at_ms"], cause["reason"]]
    return positional + [cause[k] for k in ("message_id", "channel") if k in cause]


def decode_firing(raw: bytes | str) -> StoredFiring | None:
    """A fired occurrence by name (None when the bytes are not one: not JSON, or without
    integer start and due times)."""
    try:
        stored = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    causes: Any
    if type(stored) is list and len(stored) >= 2:
        since, due, causes = stored[0], stored[1], stored[2:]
    elif type(stored) is dict:
        since, due, causes = stored.get("since_ms"), stored.get("at_ms"), stored.get("causes")
    else:
        return None
    if type(causes) is not list:
        causes = []
    if type(since) is not int or type(due) is not int:
        return None
    return StoredFiring(since, due, [c for c in map(_decode_cause, causes) if c is not None])


def _decode_cause(cause: Any) -> dict[str, Any] | None:
    if type(cause) is dict:
        return cause
    if type(cause) is not list or not 2 <= len(cause) <= 4:
        return None
    at_ms, reason, *rest = cause
    found = {"at_ms": at_ms, **dict(zip(("message_id", "channel"), rest, strict=False))}
    found["reason"] = reason
    return found
