"""What one event adds to the store (pure): its effects, timeline entry, stage
candidates and the order of same-millisecond events (their stored bytes: store/codecs.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from touchpath.events import event_millis
from touchpath.identifiers import (
    CONTROL_CHARACTER,
    identifiers_of,
)
from touchpath.identity import (
    TIE_SEPARATOR,
    IdentityPolicy,
    order_key,
)
from touchpath.shapes import is_mapping
from touchpath.stages import (
    Match,
    StageModel,
    match_activity,
    purchase_revenue,
)
from touchpath.surveys import survey_answer

_KEY_PROPERTIES = (
    "path",
    "url",
    "title",
    "referrer",
    "product_id",
    "sku",
    "name",
    "category",
    "order_id",
    "revenue",
    "total",
    "currency",
    "plan",
    "score",
    "rating",
    "campaign_id",
    "email_id",
    "conversation_id",
    "machine_open",
    "link_scanner",
)
_KEY_SET = frozenset(_KEY_PROPERTIES)
FIELD_SEPARATOR = "\x1f"  # never inside messageIds or channels (the collector rejects it)
#: Event names and text property values longer than this are cut in timeline entries.
MAX_ENTRY_TEXT = 200


@dataclass(frozen=True, slots=True)
class EventEffects:
    """Everything an event adds to the store, keyed by its anchor identifier."""

    anchor: str
    message_id: str
    at_ms: int
    order: str
    channel: str
    identifiers: tuple[str, ...]
    tie: str | None
    entry: dict[str, Any]  # its timeline entry (stored by store.codecs.encode_journey_entry)
    counts: dict[str, int]
    revenue: float
    stages: dict[str, str]
    conditional: dict[str, int]
    traits: dict[str, str]
    received_ms: int
    first_touch: str
    surveys: dict[str, str] = field(default_factory=dict)
    active: bool = True  # activity for the lifecycle: any event the rules do not ignore


def effects_of(
    event: Mapping[str, Any], model: StageModel, policy: IdentityPolicy | None = None
) -> EventEffects:
    """The store contributions of one normalised event (ValueError if it has no identifier)."""
    policy = policy or IdentityPolicy()
    ids = identifiers_of(event, policy.priority, policy.phone_region)
    if not ids:
        raise ValueError("event has no usable identifier")
    keys = tuple([f"{kind}:{value}" for kind, value in ids])
    at_ms = event_millis(event)
    message_id = str(event["messageId"])
    channel = str(event.get("context", {}).get("channel") or "other")
    browser = event.get("trust") == "browser"
    tie_order = tiebreak(event)
    order = order_key(at_ms, message_id, tie_order, browser)
    match, active = match_activity(event, model)
    candidate = encode_candidate(at_ms, message_id, channel, tie_order)
    stages, conditional = stage_contributions(
        event, match, at_ms, message_id, channel, tie_order, candidate
    )
    trait_names = model.trait_names
    if trait_names:
        conditional.update(trait_history(event, trait_names, time_order(at_ms, message_id), at_ms))
    revenue = purchase_revenue(event, match, model)
    return EventEffects(
        anchor=keys[0],
        message_id=message_id,
        at_ms=at_ms,
        order=order,
        channel=channel,
        identifiers=keys,
        tie=TIE_SEPARATOR.join(keys) if len(keys) > 1 else None,  # tie_key: already sorted
        entry=journey_entry(event, at_ms, channel, tie_order, model),
        counts=_counts(event, channel, revenue is not None),
        revenue=revenue or 0.0,
        stages=stages,
        conditional=conditional,
        traits=_traits(event, ("0" if browser else "1") + order[1:]),
        received_ms=_received_ms(event, at_ms),
        first_touch=candidate + FIELD_SEPARATOR + _campaign_name(event),
        surveys=_survey(event, order, at_ms),
        active=active,
    )


#: Same-millisecond events in this order of call types (then by content: :func:`tiebreak`).
TYPE_RANKS = {"alias": "0", "identify": "1", "group": "2", "page": "3", "screen": "4", "track": "5"}
#: Account (``group``) traits are stored among a person's traits under this prefix: the
#: account's groupId, the separator, the trait's name (the name alone marks membership).
ACCOUNT_TRAIT = "\x1d"


def tiebreak(event: Mapping[str, Any]) -> str:
    """What orders events of the same millisecond, after the trust of their key: the call
    type, then a digest of what the event says (never its random messageId)."""
    get = event.get
    content = [
        get("event"),
        get("name"),
        get("userId"),
        get("anonymousId"),
        get("groupId"),
        get("traits"),
        get("properties"),
        (get("context") or {}).get("traits"),
    ]
    digest = hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=5)
    return TYPE_RANKS.get(str(event.get("type")), "9") + digest.hexdigest()


def journey_entry(
    event: Mapping[str, Any],
    at_ms: int,
    channel: str,
    tiebreak_key: str = "",
    model: StageModel | None = None,
) -> dict[str, Any]:
    """The timeline entry of an event (what the journey endpoint shows): its name and key
    properties, scalars only, text cut at :data:`MAX_ENTRY_TEXT` characters (its stored
    form: :func:`store.codecs.encode_journey_entry`).

    Two fields are for re-evaluating stages when the rules change (the API does not show
    them): ``tb``, the event's same-millisecond :func:`tiebreak`, and ``r``, the values of
    the fields the rules read that the entry does not otherwise keep (dotted path → scalar).
    """
    properties = event.get("properties") or {}
    if type(properties) is dict and len(properties) < len(_KEY_PROPERTIES):
        key_props = {
            k: _short(v)
            for k, v in properties.items()
            if k in _KEY_SET and isinstance(v, str | int | float | bool)
        }
    else:  # (stored with sorted keys: the order they are found in does not matter)
        key_props = {
            k: _short(properties[k])
            for k in _KEY_PROPERTIES
            if k in properties and isinstance(properties[k], str | int | float | bool)
        }
    campaign = (event.get("context") or {}).get("campaign")
    entry: dict[str, Any] = {
        "id": event["messageId"],
        "at": at_ms,
        "channel": channel,
        "type": event["type"],
        "source": event.get("source"),
    }
    name = event.get("event") or event.get("name")
    if name:
        entry["event"] = _short(name)
    if key_props:
        entry["properties"] = key_props
    if is_mapping(campaign) and campaign:
        entry["campaign"] = {
            k: _short(campaign[k]) for k in ("name", "source", "medium") if k in campaign
        }
    if tiebreak_key:
        entry["tb"] = tiebreak_key
    read = _rule_fields(event, model) if model else None
    if read:
        entry["r"] = read
    return entry


#: Fields every timeline entry keeps (or that rules cannot read), never repeated in ``r``.
_KEPT_PATHS = frozenset(
    {"type", "event", "name", "context.channel"} | {f"properties.{k}" for k in _KEY_PROPERTIES}
)


def _rule_fields(event: Mapping[str, Any], model: StageModel) -> dict[str, Any]:
    """The scalar values of the fields the rules read beyond what an entry keeps."""
    found: dict[str, Any] = {}
    for path, parts in _extra_paths(model.read_paths):
        value: Any = event
        for part in parts:
            value = value.get(part) if is_mapping(value) else None
        if isinstance(value, str | int | float | bool):
            found[path] = _short(value)
    return found


@lru_cache(maxsize=16)
def _extra_paths(read: frozenset[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The paths rules read that an entry does not keep, each split once (per rules, not
    per event)."""
    return tuple((path, tuple(path.split("."))) for path in sorted(read - _KEPT_PATHS))


def _short(value: Any) -> Any:
    """Text cut to :data:`MAX_ENTRY_TEXT` characters; other scalars as they are."""
    return value[:MAX_ENTRY_TEXT] if isinstance(value, str) else value


def stage_contributions(
    event: Mapping[str, Any],
    match: Match,
    at_ms: int,
    message_id: str,
    channel: str,
    tiebreak: str = "",
    candidate: str = "",
) -> tuple[dict[str, str], dict[str, int]]:
    """Earliest-wins candidates (``s:<stage>``: time, messageId, channel, cause) and gated
    ones (after a stage and/or on traits), stored as members of the anchor's ``cond`` set:
    ``stage<US>after<US>messageId<US>channel<US>cause[<US>trait conditions]`` → time
    (``candidate``: :func:`encode_candidate` of the event, when the caller has it)."""
    unconditional: dict[str, str] = {}
    conditional: dict[str, int] = {}
    if not match.stages and not match.gates:
        return unconditional, conditional
    for stage, after in match.stages.items():
        cause = _cause(event, match.rules.get(stage, -1))
        if after is None:
            if not candidate:
                candidate = encode_candidate(at_ms, message_id, channel, tiebreak)
            unconditional[stage] = candidate + FIELD_SEPARATOR + cause
        else:
            conditional[FIELD_SEPARATOR.join((stage, after, message_id, channel, cause))] = at_ms
    for gate in match.gates:
        cause = _cause(event, gate.rule)
        member = (gate.stage, gate.after or "", message_id, channel, cause, gate.conditions)
        conditional[FIELD_SEPARATOR.join(member)] = at_ms
    return unconditional, conditional


def _cause(event: Mapping[str, Any], rule: int) -> str:
    """What caused a stage candidate, as JSON: ``[type, event or page name, rule number]``
    (remembered for text types and names: see :data:`CAUSES_CACHE_SIZE`)."""
    name = event.get("event") or event.get("name")
    kind = event.get("type")
    if type(kind) is not str or (name and type(name) is not str):
        return orjson.dumps([kind, _short(name) if name else None, rule]).decode()
    key = (kind, name or None, rule)
    found = _causes.get(key)
    if found is None:
        found = orjson.dumps([kind, _short(name) if name else None, rule]).decode()
        if len(_causes) >= CAUSES_CACHE_SIZE:
            _causes.clear()
        _causes[key] = found
    return found


#: :func:`_cause` remembers this many (type, name, rule) causes, then starts over (event
#: names come from clients, but a model's rules match few of them).
CAUSES_CACHE_SIZE = 4096
_causes: dict[tuple[str, str | None, int], str] = {}


TRAIT_MARK = "~t"  # cond members holding a trait's value from an event (stage names are slugs)


def trait_history(
    event: Mapping[str, Any], names: frozenset[str], order: str, at_ms: int
) -> dict[str, int]:
    """The values an event gives the traits some rule reads (``context.traits`` then its own
    ``traits``), kept in the anchor's ``cond`` set as ``~t<US>name<US>order<US>value``."""
    given: dict[str, Any] = {}
    for source in ((event.get("context") or {}).get("traits"), event.get("traits")):
        if is_mapping(source):
            given.update((k, v) for k, v in source.items() if k in names)
    found = {}
    for name, value in given.items():
        encoded = orjson.dumps(value).decode()
        if len(encoded) <= MAX_ENTRY_TEXT:
            found[FIELD_SEPARATOR.join((TRAIT_MARK, name, order, encoded))] = at_ms
    return found


def encode_candidate(at_ms: int, message_id: str, channel: str, tiebreak: str = "") -> str:
    """A stage candidate as a string whose lexicographic order is (time, tiebreak,
    messageId); the first 15 characters are the time."""
    return FIELD_SEPARATOR.join((f"{max(at_ms, 0):015d}{tiebreak}", message_id, channel))


def time_order(at_ms: int, message_id: str) -> str:
    """Event time then messageId: orders trait values against the events they gate."""
    return f"{max(at_ms, 0):015d}\x1f{message_id}"


def _counts(event: Mapping[str, Any], channel: str, is_order: bool) -> dict[str, int]:
    counts = {"events": 1, f"channel:{channel}": 1, f"type:{event['type']}": 1}
    if is_order:
        counts["orders"] = 1
    return counts


def _traits(event: Mapping[str, Any], order: str) -> dict[str, str]:
    """The person's traits (``context.traits``, then ``traits`` except on a ``group`` call),
    and a ``group`` call's account traits under :data:`ACCOUNT_TRAIT`, each encoded as
    ``order<US>json`` (latest wins). Control characters in names become spaces."""
    traits: dict[str, Any] = {}
    context_traits = (event.get("context") or {}).get("traits")
    if is_mapping(context_traits):
        traits.update(context_traits)
    own = event.get("traits")
    group = event.get("type") == "group"
    if is_mapping(own) and not group:
        traits.update(own)
    if not traits and not group:
        return {}
    encoded = {
        _name(k): order + FIELD_SEPARATOR + orjson.dumps(v).decode()
        for k, v in list(traits.items())[:100]
    }
    group_id = event.get("groupId")
    if group and isinstance(group_id, str) and group_id:
        account = ACCOUNT_TRAIT + group_id
        encoded[account] = order + FIELD_SEPARATOR + "true"
        for k, v in list(own.items())[:100] if is_mapping(own) else ():
            encoded[account + FIELD_SEPARATOR + _name(k)] = (
                order + FIELD_SEPARATOR + orjson.dumps(v).decode()
            )
    return encoded


def _name(key: object) -> str:
    if type(key) is str and len(key) <= 128 and key.isprintable():  # nothing to replace
        return key
    return CONTROL_CHARACTER.sub(" ", str(key)[:128])


def _survey(event: Mapping[str, Any], order: str, at_ms: int) -> dict[str, str]:
    """A survey answer stored under its event's order key: ``kind<US>score<US>at_ms``."""
    answer = survey_answer(event)
    if answer is None:
        return {}
    return {order: FIELD_SEPARATOR.join((answer[0], str(answer[1]), str(at_ms)))}


def _campaign_name(event: Mapping[str, Any]) -> str:
    campaign = (event.get("context") or {}).get("campaign")
    name = campaign.get("name") if is_mapping(campaign) else None
    return str(name)[:100].replace(FIELD_SEPARATOR, " ") if name else ""


def _received_ms(event: Mapping[str, Any], fallback: int) -> int:
    """The receipt time (``fallback``, the event time, when there is none); a request's
    events share it, so it is remembered (:data:`RECEIPTS_CACHE_SIZE`)."""
    received = event.get("receivedAt")
    if not isinstance(received, str):
        return fallback
    if received == event.get("timestamp"):  # ``fallback`` was read from the same text
        return fallback
    found = _receipts.get(received)
    if found is None:
        found = event_millis({"timestamp": received})
        if len(_receipts) >= RECEIPTS_CACHE_SIZE:
            _receipts.clear()
        _receipts[received] = found
    return found


#: :func:`_received_ms` remembers this many receipt times (text → ms), then starts over.
RECEIPTS_CACHE_SIZE = 1024
_receipts: dict[str, int] = {}
