"""The byte formats of what the store holds, each as one encoder and one typed decoder.

A funnel row (``P:funnel``: customer id → row) is stored as a JSON array, by position:
``[first channel, first campaign, [stage, entered ms - first ms, channel it was entered by,
…], short traits, revenue, first ms, null, lifecycle]`` (of :func:`touchpath.funnel_rows.
funnel_row`): each stage entry is a triple of the flat third element, its time counted from
the first ms (from 0 when there is none). Rows written by older versions hold
``{stage: entered ms}`` third and ``{stage: channel it was entered by}`` seventh, and may stop
after the short traits, the revenue, the first ms or the entry channels: the missing
trailing elements decode to their empty values.

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
(a JSON object holding the same fields by name, and ``at``) decode the same; layout 4
rewrites them in this form at start-up (``migrate_layout``), so a message sent again
later moves its one entry, as on a store that never held the old form.

A profile (``P:cust``: :func:`touchpath.profiles.build_customer`) is stored as a compact JSON
object: ``id``, ``identities``, ``stage``, ``history`` and ``accounts`` keep their names (the
Lua scripts ``erase.lua`` and ``remove_customer.lua`` read them), the other fields are short,
positional or left out where decode restores them exactly:

* ``history``: ``{stage: [at_ms, messageId, channel, [type, rule, event]]}`` (the cause as a
  list, ``event`` left out when null);
* ``ft``: the first touch, ``[channel, campaign, at_ms]`` (``at_ms`` left out when it is the
  first cycle's ``since``, then ``campaign`` when null; the key left out when there is none);
* ``t``, ``sv``, ``o``, ``r``, ``rt``, ``la``, ``rv``: traits, surveys, orders, revenue,
  refused ties, last active, rules version (each but ``rv`` left out when empty, 0 or null);
* ``cy``: the cycles, each ``[number, kind, since, purchases, lapsed_at, stages]`` (the first
  cycle's ``stages`` left out when they are its history times before the next cycle, then
  ``lapsed_at`` when null); ``c``: the current cycle, left out when it is the last one's.

The compact form always holds ``rv``; a profile without it is one written before (the full
JSON), decoded as it is. A profile not of the derived shape is stored in full.

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

A de-duplication set (``P:a:<identifier>:seen``: member → receipt ms as the score) holds
for each event not its messageId but :func:`seen_member` of it: the byte ``0xff`` then the
first 11 bytes (88 bits) of the SHA-1 of the messageId's UTF-8 bytes, 12 bytes whatever the
messageId (1 to 200 characters, up to 800 bytes), so the set stays a small listpack (a
36-character UUID took 38 bytes of it, a digest takes 14). ``0xff`` never occurs in UTF-8, so
a member that is a messageId (written before layout 4, or by an older processor still
running) is told from a digest: the layout step converts only those
(``store/scripts/convert_seen_digests.lua``, with Redis's ``redis.sha1hex``: the same
function), and converting twice changes nothing. Two messageIds of one identifier sharing a
digest would make the later one count as a replay. By chance, among the n messageIds of one
identifier's window that has a probability below n**2 / 2**89: 2e-19 for n = 10,000 (a window
holds at most thousands), 2e-10 summed over a billion such identifiers. A client could find
such a pair on purpose (truncated SHA-1, ~2**44 work), but that only drops an event of an
identifier it can already send events for, with messageIds it chooses: nothing it could not
do by sending one messageId twice.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import orjson

from store.keys import ClusterFields
from touchpath.announcements import announced_record
from touchpath.cycles import LAPSED
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


#: A derived profile's fields, in the order :func:`touchpath.profiles.build_customer` makes them.
PROFILE_FIELDS = (
    "id",
    "identities",
    "stage",
    "history",
    "first_touch",
    "traits",
    "accounts",
    "surveys",
    "orders",
    "revenue",
    "refused_ties",
    "cycle",
    "cycles",
    "last_active",
    "rules_version",
)
#: The key only the compact form has (it always holds the rules version).
COMPACT_MARK = "rv"
_CAUSE = ("type", "event", "rule")
_CYCLE = ("number", "kind", "since", "purchases", "lapsed_at", "stages")
_TOUCH = ("at_ms", "channel", "campaign")
_NO_END = 1 << 62  # the end of a customer's only cycle (touchpath.cycles.add_stages)


def encode_profile(profile: Mapping[str, Any]) -> bytes:
    """The stored bytes of a profile: the compact form when it has the derived shape, else
    the full JSON (ValueError if that would read as compact: it holds ``rv``)."""
    compact = _compact(profile)
    if compact is not None:
        return orjson.dumps(compact)
    if COMPACT_MARK in profile:
        raise ValueError(f"a profile not of the derived shape cannot hold {COMPACT_MARK!r}")
    return orjson.dumps(profile)


def decode_profile(raw: bytes | str) -> dict[str, Any]:
    """The profile stored as ``raw``, in either form: the dict the profile was."""
    stored = orjson.loads(raw)
    if type(stored) is not dict or COMPACT_MARK not in stored:
        return cast(dict[str, Any], stored)
    history = {stage: _entry(packed) for stage, packed in stored["history"].items()}
    packed_cycles = stored.get("cy", [])
    cycles = [_cycle(packed, k, history, packed_cycles) for k, packed in enumerate(packed_cycles)]
    touch = stored.get("ft")
    return {
        "id": stored["id"],
        "identities": stored["identities"],
        "stage": stored.get("stage"),
        "history": history,
        "first_touch": None if touch is None else _first_touch(touch, cycles),
        "traits": stored.get("t", {}),
        "accounts": stored.get("accounts", {}),
        "surveys": stored.get("sv", []),
        "orders": stored.get("o", 0),
        "revenue": stored.get("r", 0.0),
        "refused_ties": stored.get("rt", []),
        "cycle": stored["c"] if "c" in stored else _current(cycles),
        "cycles": cycles,
        "last_active": stored.get("la"),
        "rules_version": stored[COMPACT_MARK],
    }


def _compact(profile: Mapping[str, Any]) -> dict[str, Any] | None:
    """The compact form of a profile (None when it is not of the derived shape)."""
    if tuple(profile) != PROFILE_FIELDS or type(profile["rules_version"]) is not str:
        return None
    history, cycles = profile["history"], profile["cycles"]
    if type(history) is not dict or type(cycles) is not list:
        return None
    entries = {stage: _pack_entry(entry) for stage, entry in history.items()}
    if None in entries.values():
        return None
    packed_cycles = [_pack_cycle(cycle, k, history, cycles) for k, cycle in enumerate(cycles)]
    if None in packed_cycles:
        return None
    compact: dict[str, Any] = {"id": profile["id"], "identities": profile["identities"]}
    _unless(compact, "stage", profile["stage"], None)
    compact["history"] = entries
    touch = profile["first_touch"]
    if touch is not None:
        compact["ft"] = _pack_touch(touch, cycles)
        if compact["ft"] is None:
            return None
    _unless(compact, "t", profile["traits"], {})
    _unless(compact, "accounts", profile["accounts"], {})
    _unless(compact, "sv", profile["surveys"], [])
    _unless(compact, "o", profile["orders"], 0)
    _unless(compact, "r", profile["revenue"], 0.0)
    _unless(compact, "rt", profile["refused_ties"], [])
    if not _same(profile["cycle"], _current(cycles)):
        compact["c"] = profile["cycle"]
    _unless(compact, "cy", packed_cycles, [])
    _unless(compact, "la", profile["last_active"], None)
    compact[COMPACT_MARK] = profile["rules_version"]
    return compact


def _unless(compact: dict[str, Any], key: str, value: Any, default: Any) -> None:
    """``compact[key] = value`` unless ``value`` is ``default``."""
    if not _same(value, default):
        compact[key] = value


def _same(a: Any, b: Any) -> bool:
    """Whether two values are one JSON value (not so ``1``, ``1.0`` and ``True``, nor ``0.0``
    and ``-0.0``, nor dicts in another key order)."""
    kind = a.__class__
    if kind is not b.__class__:
        return False
    if kind is str or kind is int or kind is bool or a is None:
        return bool(a == b)
    if kind is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if (kind is dict or kind is list) and not (a and b):
        return not (a or b)  # an empty one is only the other empty one
    return orjson.dumps(a) == orjson.dumps(b)


def _pack_entry(entry: Any) -> list[Any] | None:
    if type(entry) is not list or not 3 <= len(entry) <= 4 or type(entry[0]) is not int:
        return None
    if len(entry) == 3:
        return entry
    cause = entry[3]
    if type(cause) is not dict or tuple(cause) != _CAUSE:
        return None
    kind, name, rule = cause["type"], cause["event"], cause["rule"]
    return [*entry[:3], [kind, rule] if name is None else [kind, rule, name]]


def _entry(packed: list[Any]) -> list[Any]:
    if len(packed) == 3:
        return packed
    cause = packed[3]
    name = cause[2] if len(cause) > 2 else None
    return [*packed[:3], {"type": cause[0], "event": name, "rule": cause[1]}]


def _pack_cycle(
    cycle: Any, k: int, history: dict[str, list[Any]], cycles: list[Any]
) -> list[Any] | None:
    if type(cycle) is not dict or tuple(cycle) != _CYCLE:
        return None
    packed = [cycle["number"], cycle["kind"], cycle["since"], cycle["purchases"]]
    lapsed, stages = cycle["lapsed_at"], cycle["stages"]
    end = cycles[1]["since"] if len(cycles) > 1 and type(cycles[1]) is dict else _NO_END
    if k == 0 and type(end) is int and _same(stages, _first_stages(history, end)):
        return packed if lapsed is None else [*packed, lapsed]
    return [*packed, lapsed, stages]


def _cycle(packed: list[Any], k: int, history: dict[str, list[Any]], cycles: list[Any]) -> Any:
    number, kind, since, purchases = packed[:4]
    lapsed = packed[4] if len(packed) > 4 else None
    if len(packed) > 5:
        stages = packed[5]
    else:  # the first cycle's history times
        stages = _first_stages(history, cycles[1][2] if len(cycles) > 1 else _NO_END)
    return {
        "number": number,
        "kind": kind,
        "since": since,
        "purchases": purchases,
        "lapsed_at": lapsed,
        "stages": stages,
    }


def _first_stages(history: dict[str, list[Any]], end: int) -> dict[str, int]:
    """The first cycle's stages: the history entered before the next cycle began."""
    return {stage: entry[0] for stage, entry in history.items() if entry[0] < end}


def _current(cycles: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The current cycle of a profile's cycles (:func:`touchpath.cycles.profile_fields`)."""
    if not cycles:
        return None
    last = cycles[-1]
    if type(last) is not dict or tuple(last) != _CYCLE:
        return None
    lapsed = last["lapsed_at"]
    if lapsed is None:
        return {"number": last["number"], "state": last["kind"], "since": last["since"]}
    return {"number": last["number"], "state": LAPSED, "since": lapsed}


def _pack_touch(touch: Any, cycles: list[Any]) -> list[Any] | None:
    if type(touch) is not dict or tuple(touch) != _TOUCH:
        return None
    at, channel, campaign = touch["at_ms"], touch["channel"], touch["campaign"]
    if not cycles or not _same(at, cycles[0]["since"]):
        return [channel, campaign, at]
    return [channel] if campaign is None else [channel, campaign]


def _first_touch(packed: list[Any], cycles: list[dict[str, Any]]) -> dict[str, Any]:
    at = packed[2] if len(packed) > 2 else cycles[0]["since"]
    campaign = packed[1] if len(packed) > 1 else None
    return {"at_ms": at, "channel": packed[0], "campaign": campaign}


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


def timer_member(customer_id: str, trigger: str) -> str:
    """A trigger timer's member of ``P:trg:due``: ``<customer id><US><trigger>``."""
    return f"{customer_id}\x1f{trigger}"


def decode_timer_member(member: str) -> tuple[str, str]:
    """The customer id and trigger name of a :func:`timer_member`."""
    customer_id, trigger = member.split("\x1f", 1)
    return customer_id, trigger


def timers_of(customer_id: str) -> str:
    """The ``MATCH`` pattern of a customer's members of ``P:trg:due``."""
    return timer_member(customer_id, "*")


def firing_field(trigger: str, firing_id: str) -> str:
    """A stored firing's field of ``P:trg:s:<customer id>``: ``<trigger><US><firing id>``."""
    return f"{trigger}\x1f{firing_id}"


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


SEEN_MARK = b"\xff"  # the first byte of a seen member that is a digest (never in UTF-8)
SEEN_DIGEST_BYTES = 11


def seen_member(message_id: str) -> bytes:
    """The member standing for a messageId in a de-duplication set (12 bytes, see above)."""
    return SEEN_MARK + hashlib.sha1(message_id.encode()).digest()[:SEEN_DIGEST_BYTES]


class StoredCluster(NamedTuple):
    """A raw cluster's hash (``P:cl:<cluster>``, ``store.keys.ClusterFields``) split by kind."""

    version: int
    identifiers: dict[str, str]  # identifier → the order first seen at
    ties: dict[str, str]  # tie → earliest order
    customers: list[str]  # the customers last derived from it
    over: dict[str, str]  # tie refused because the cluster was full → order
    blocked: dict[str, str]  # identifier split off → record


def decode_cluster(fields: Mapping[str, str]) -> StoredCluster:
    """A raw cluster from its hash's fields (as read; the counts are not returned)."""
    parts: dict[str, dict[str, str]] = {kind: {} for kind in _CLUSTER_PARTS}
    for name, value in fields.items():
        part = parts.get(name[:2])
        if part is not None:
            part[name[2:]] = value
    return StoredCluster(
        int(fields.get(ClusterFields.VERSION) or 0),
        parts[ClusterFields.IDENTIFIER],
        parts[ClusterFields.TIE],
        list(parts[ClusterFields.CUSTOMER]),
        parts[ClusterFields.OVER],
        parts[ClusterFields.BLOCKED],
    )


_CLUSTER_PARTS = (
    ClusterFields.IDENTIFIER,
    ClusterFields.TIE,
    ClusterFields.CUSTOMER,
    ClusterFields.OVER,
    ClusterFields.BLOCKED,
)
