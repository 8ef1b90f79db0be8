"""What one event contributes to its customer, and how a customer's profile is derived.

:func:`effects_of` turns a normalised event into :class:`EventEffects`: commutative,
idempotent contributions (a journey entry, counters, earliest stage candidates, latest
traits) stored under the event's *anchor* identifier. :func:`build_customer` folds the
contributions of every identifier of a resolved customer into a profile, and
:func:`stage_changes` compares the history announced with the new one to announce every
stage entry, and every correction of one, exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from touchpath.events import event_millis
from touchpath.identifiers import (
    CONTROL_CHARACTER,
    Identifier,
    identifiers_of,
    sort_by_priority,
)
from touchpath.identity import (
    TIE_SEPARATOR,
    IdentityPolicy,
    RefusedTie,
    customer_id,
    order_key,
    resolve,
)
from touchpath.stages import (
    Match,
    StageCandidate,
    StageEntry,
    StageModel,
    current_stage,
    gate_passes,
    match_event,
    purchase_revenue,
    stage_history,
)
from touchpath.surveys import stage_at, survey_answer

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
FIELD_SEPARATOR = "\x1f"  # never inside messageIds or channels (the collector rejects it)
#: A profile lists at most this many refused ties (the earliest); the metric counts them all.
MAX_REFUSED_TIES = 20
#: A profile shows at most this many traits (the most recently set); each identifier keeps at
#: most ``TOUCHPATH_MAX_TRAITS`` distinct ones.
MAX_PROFILE_TRAITS = 200
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
    entry: bytes
    counts: dict[str, int]
    revenue: float
    stages: dict[str, str]
    conditional: dict[str, int]
    traits: dict[str, str]
    received_ms: int
    first_touch: str
    surveys: dict[str, str] = field(default_factory=dict)


def effects_of(
    event: Mapping[str, Any], model: StageModel, policy: IdentityPolicy | None = None
) -> EventEffects:
    """The store contributions of one normalised event (ValueError if it has no identifier)."""
    policy = policy or IdentityPolicy()
    ids = identifiers_of(event, policy.priority, policy.phone_region)
    if not ids:
        raise ValueError("event has no usable identifier")
    keys = tuple(i.key() for i in ids)
    at_ms = event_millis(event)
    message_id = str(event["messageId"])
    channel = str(event.get("context", {}).get("channel") or "other")
    browser = event.get("trust") == "browser"
    tie_order = tiebreak(event)
    order = order_key(at_ms, message_id, tie_order, browser)
    match = match_event(event, model)
    stages, conditional = stage_contributions(event, match, at_ms, message_id, channel, tie_order)
    if model.trait_names:
        conditional.update(
            trait_history(event, model.trait_names, time_order(at_ms, message_id), at_ms)
        )
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
        first_touch=FIELD_SEPARATOR.join(
            (encode_candidate(at_ms, message_id, channel, tie_order), _campaign_name(event))
        ),
        surveys=_survey(event, order, at_ms),
    )


#: Same-millisecond events in this order of call types (then by content: :func:`tiebreak`).
TYPE_RANKS = {"alias": "0", "identify": "1", "group": "2", "page": "3", "screen": "4", "track": "5"}
#: Account (``group``) traits are stored among a person's traits under this prefix: the
#: account's groupId, the separator, the trait's name (the name alone marks membership).
ACCOUNT_TRAIT = "\x1d"


def tiebreak(event: Mapping[str, Any]) -> str:
    """What orders events of the same millisecond, after the trust of their key: the call
    type, then a digest of what the event says (never its random messageId)."""
    content = [event.get(name) for name in ("event", "name", "userId", "anonymousId", "groupId")]
    content += [
        event.get("traits"),
        event.get("properties"),
        (event.get("context") or {}).get("traits"),
    ]
    digest = hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=5)
    return TYPE_RANKS.get(str(event.get("type")), "9") + digest.hexdigest()


def journey_entry(
    event: Mapping[str, Any],
    at_ms: int,
    channel: str,
    tiebreak_key: str = "",
    model: StageModel | None = None,
) -> bytes:
    """The compact timeline entry of an event (what the journey endpoint shows): its name and
    key properties, scalars only, text cut at :data:`MAX_ENTRY_TEXT` characters.

    Two fields are for re-evaluating stages when the rules change (the API does not show
    them): ``tb``, the event's same-millisecond :func:`tiebreak`, and ``r``, the values of
    the fields the rules read that the entry does not otherwise keep (dotted path → scalar).
    """
    properties = event.get("properties") or {}
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
    if isinstance(campaign, Mapping) and campaign:
        entry["campaign"] = {
            k: _short(campaign[k]) for k in ("name", "source", "medium") if k in campaign
        }
    if tiebreak_key:
        entry["tb"] = tiebreak_key
    read = _rule_fields(event, model) if model else None
    if read:
        entry["r"] = read
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


#: Fields every timeline entry keeps (or that rules cannot read), never repeated in ``r``.
_KEPT_PATHS = frozenset(
    {"type", "event", "name", "context.channel"} | {f"properties.{k}" for k in _KEY_PROPERTIES}
)


def _rule_fields(event: Mapping[str, Any], model: StageModel) -> dict[str, Any]:
    """The scalar values of the fields the rules read beyond what an entry keeps."""
    found: dict[str, Any] = {}
    for path in model.read_paths - _KEPT_PATHS:
        value: Any = event
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str | int | float | bool):
            found[path] = _short(value)
    return found


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
) -> tuple[dict[str, str], dict[str, int]]:
    """Earliest-wins candidates (``s:<stage>``: time, messageId, channel, cause) and gated
    ones (after a stage and/or on traits), stored as members of the anchor's ``cond`` set:
    ``stage<US>after<US>messageId<US>channel<US>cause[<US>trait conditions]`` → time."""
    unconditional: dict[str, str] = {}
    conditional: dict[str, int] = {}
    for stage, after in match.stages.items():
        cause = _cause(event, match.rules.get(stage, -1))
        if after is None:
            unconditional[stage] = FIELD_SEPARATOR.join(
                (encode_candidate(at_ms, message_id, channel, tiebreak), cause)
            )
        else:
            conditional[FIELD_SEPARATOR.join((stage, after, message_id, channel, cause))] = at_ms
    for gate in match.gates:
        cause = _cause(event, gate.rule)
        member = (gate.stage, gate.after or "", message_id, channel, cause, gate.conditions)
        conditional[FIELD_SEPARATOR.join(member)] = at_ms
    return unconditional, conditional


def _cause(event: Mapping[str, Any], rule: int) -> str:
    """What caused a stage candidate, as JSON: ``[type, event or page name, rule number]``."""
    name = event.get("event") or event.get("name")
    return orjson.dumps([event.get("type"), _short(name) if name else None, rule]).decode()


TRAIT_MARK = "~t"  # cond members holding a trait's value from an event (stage names are slugs)


def trait_history(
    event: Mapping[str, Any], names: frozenset[str], order: str, at_ms: int
) -> dict[str, int]:
    """The values an event gives the traits some rule reads (``context.traits`` then its own
    ``traits``), kept in the anchor's ``cond`` set as ``~t<US>name<US>order<US>value``."""
    given: dict[str, Any] = {}
    for source in ((event.get("context") or {}).get("traits"), event.get("traits")):
        if isinstance(source, Mapping):
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
    if isinstance(context_traits, Mapping):
        traits.update(context_traits)
    own = event.get("traits")
    group = event.get("type") == "group"
    if isinstance(own, Mapping) and not group:
        traits.update(own)
    encoded = {
        _name(k): order + FIELD_SEPARATOR + orjson.dumps(v).decode()
        for k, v in list(traits.items())[:100]
    }
    group_id = event.get("groupId")
    if group and isinstance(group_id, str) and group_id:
        account = ACCOUNT_TRAIT + group_id
        encoded[account] = order + FIELD_SEPARATOR + "true"
        for k, v in list(own.items())[:100] if isinstance(own, Mapping) else ():
            encoded[account + FIELD_SEPARATOR + _name(k)] = (
                order + FIELD_SEPARATOR + orjson.dumps(v).decode()
            )
    return encoded


def _name(key: object) -> str:
    return CONTROL_CHARACTER.sub(" ", str(key)[:128])


def _survey(event: Mapping[str, Any], order: str, at_ms: int) -> dict[str, str]:
    """A survey answer stored under its event's order key: ``kind<US>score<US>at_ms``."""
    answer = survey_answer(event)
    if answer is None:
        return {}
    return {order: FIELD_SEPARATOR.join((answer[0], str(answer[1]), str(at_ms)))}


def _campaign_name(event: Mapping[str, Any]) -> str:
    campaign = (event.get("context") or {}).get("campaign")
    name = campaign.get("name") if isinstance(campaign, Mapping) else None
    return str(name)[:100].replace(FIELD_SEPARATOR, " ") if name else ""


def _received_ms(event: Mapping[str, Any], fallback: int) -> int:
    received = event.get("receivedAt")
    if not isinstance(received, str):
        return fallback
    return event_millis({"timestamp": received})


@dataclass(slots=True)
class AnchorData:
    """What the store holds under one identifier (empty when it never anchored an event)."""

    stages: dict[str, str] = field(default_factory=dict)
    conditional: list[tuple[str, int]] = field(default_factory=list)
    counts: dict[str, str] = field(default_factory=dict)
    traits: dict[str, str] = field(default_factory=dict)
    first_touch: str = ""
    surveys: list[str] = field(default_factory=list)
    rules_version: str = ""  # the rules its candidates follow ("" if stored before versions)


def anchor_data(fields: Mapping[str, str]) -> AnchorData:
    """Decode the stored hash of an anchor (``s:``/``c:``/``t:`` prefixed fields)."""
    data = AnchorData()
    for name, value in fields.items():
        kind, _, rest = name.partition(":")
        if kind == "s":
            data.stages[rest] = value
        elif kind == "c":
            data.counts[rest] = value
        elif kind == "t":
            data.traits[rest] = value
        elif kind == "v":
            data.surveys.append(value)
        elif name == "ft":
            data.first_touch = value
        elif name == "rv":
            data.rules_version = value
        elif name in ("first", "last", "cond"):
            data.counts[name] = value
    return data


def _candidates(data: Sequence[AnchorData]) -> list[tuple[str, StageCandidate]]:
    """Every stage candidate of a customer's anchors; a candidate gated on traits only when
    the customer's traits in force at its event's time meet the conditions."""
    values = _trait_values(data)
    found: list[tuple[str, StageCandidate]] = []
    for anchor in data:
        for stage, encoded in anchor.stages.items():
            at, message_id, rest = encoded.split(FIELD_SEPARATOR, 2)
            channel, _, cause = rest.partition(FIELD_SEPARATOR)
            found.append((stage, StageCandidate(int(at[:15]), message_id, channel, None, cause)))
        for member, at_ms in anchor.conditional:
            if member.startswith(TRAIT_MARK):
                continue
            stage, after, message_id, channel, *more = member.split(FIELD_SEPARATOR, 5)
            cause, gate = [*more, "", ""][:2]
            if gate and not gate_passes(gate, _traits_at(values, time_order(at_ms, message_id))):
                continue
            found.append(
                (stage, StageCandidate(int(at_ms), message_id, channel, after or None, cause))
            )
    return found


def _trait_values(data: Iterable[AnchorData]) -> dict[str, list[tuple[str, Any]]]:
    """Each trait some rule reads: its values over time, ``(order, value)`` sorted."""
    values: dict[str, list[tuple[str, Any]]] = {}
    for anchor in data:
        for member, _ in anchor.conditional:
            if member.startswith(TRAIT_MARK):
                _, name, rest = member.split(FIELD_SEPARATOR, 2)
                order, encoded = rest.rsplit(FIELD_SEPARATOR, 1)  # the order key holds one
                values.setdefault(name, []).append((order, orjson.loads(encoded)))
    for changes in values.values():
        changes.sort(key=lambda change: change[0])
    return values


def _traits_at(values: Mapping[str, list[tuple[str, Any]]], order: str) -> dict[str, Any]:
    """The traits in force at an event (its own included): the latest value set no later."""
    now = {}
    for name, changes in values.items():
        set_by = [value for at, value in changes if at <= order]
        if set_by:
            now[name] = set_by[-1]
    return now


def history_entry(entry: StageEntry) -> list[Any]:
    """A profile's history entry: ``[at_ms, messageId, channel]`` and, when known, what
    caused it ``{type, event, rule}`` (the event's type and name, the rule's number)."""
    found: list[Any] = [entry.at_ms, entry.message_id, entry.channel]
    if entry.cause:
        kind, name, rule = orjson.loads(entry.cause)
        found.append({"type": kind, "event": name, "rule": rule})
    return found


def build_customer(
    identities: Iterable[str],
    anchors: Mapping[str, AnchorData],
    first_seen: Mapping[str, str],
    refused: Sequence[RefusedTie],
    model: StageModel,
    policy: IdentityPolicy,
) -> dict[str, Any]:
    """A customer's stage profile, a pure function of its identities and their candidates."""
    keys = [
        i.key()
        for i in sort_by_priority((Identifier.parse(k) for k in identities), policy.priority)
    ]
    data = [anchors[k] for k in keys if k in anchors]
    history = stage_history(_candidates(data), model)
    totals = sum_counts(data)
    mine = set(keys)
    return {
        "id": customer_id(keys, first_seen, policy.priority),
        "identities": keys,
        "stage": current_stage(history, model),
        "history": {s: history_entry(e) for s, e in history.items()},
        "first_touch": first_touch(data),
        "traits": latest_traits(data),
        "accounts": accounts_of(data),
        "surveys": survey_answers(data, history, model),
        "orders": int(totals.get("orders", 0)),
        "revenue": totals.get("revenue", 0.0),
        "refused_ties": [
            {"identifiers": list(r.identifiers), "reason": r.reason, "kind": r.kind}
            for r in sorted(refused, key=lambda r: (r.order, r.identifiers))
            if r.identifiers[0] in mine or r.identifiers[1] in mine
        ][:MAX_REFUSED_TIES],
        "rules_version": model.version,
    }


def survey_answers(
    data: Iterable[AnchorData], history: Mapping[str, StageEntry], model: StageModel
) -> list[list[Any]]:
    """Every survey answer of a customer as ``[kind, score, at_ms, stage then]``, in time order."""
    entered = {stage: [entry.at_ms] for stage, entry in history.items()}
    answers = []
    for anchor in data:
        for encoded in anchor.surveys:
            kind, score, at_ms = encoded.split(FIELD_SEPARATOR)
            at = int(at_ms)
            answers.append([kind, int(score), at, stage_at(entered, at, model.stages)])
    return sorted(answers, key=lambda a: (a[2], a[0], a[1]))


def derive_profiles(
    first_seen: Mapping[str, str],
    ties: Mapping[str, str],
    anchors: Mapping[str, AnchorData],
    model: StageModel,
    policy: IdentityPolicy,
    over: Mapping[str, str] | None = None,
    blocked: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every customer profile of a raw cluster, keyed by customer id; ``over`` holds the ties
    the store refused because the raw cluster was full (tie → order); ``blocked`` the
    identifiers an admin split off (identifier → ``{"by", "at_ms"}`` JSON): no tie naming one
    is made, whatever events arrive later."""
    kept, split = _without_blocked(ties, blocked or {})
    resolution = resolve(first_seen, kept, policy)
    refused = (
        list(resolution.refused)
        + [
            RefusedTie(order, _pair(tie), "the identity cluster is full", "cluster")
            for tie, order in (over or {}).items()
        ]
        + split
    )
    profiles = (
        build_customer(c, anchors, first_seen, refused, model, policy) for c in resolution.customers
    )
    return {p["id"]: p for p in profiles}


def _without_blocked(
    ties: Mapping[str, str], blocked: Mapping[str, str]
) -> tuple[dict[str, str], list[RefusedTie]]:
    """The ties naming no blocked identifier, and the others as refused ties."""
    if not blocked:
        return dict(ties), []
    kept, split = {}, []
    for tie, order in ties.items():
        members = tie.split(TIE_SEPARATOR)
        named = next((m for m in members if m in blocked), None)
        if named is None:
            kept[tie] = order
            continue
        record = orjson.loads(blocked[named])
        other = next(m for m in members if m != named)
        reason = f"split off by {record.get('by', 'an admin')} at {record.get('at', '?')}"
        split.append(RefusedTie(order, (named, other), reason, "split"))
    return kept, split


def _pair(tie: str) -> tuple[str, str]:
    members = tie.split(TIE_SEPARATOR)
    return members[0], members[-1]


def first_touch(data: Iterable[AnchorData]) -> dict[str, Any] | None:
    """The customer's earliest touchpoint: time, channel and UTM campaign name."""
    earliest = min((d.first_touch for d in data if d.first_touch), default="")
    if not earliest:
        return None
    at, _, channel, campaign = earliest.split(FIELD_SEPARATOR, 3)
    return {"at_ms": int(at[:15]), "channel": channel, "campaign": campaign or None}


def sum_counts(data: Iterable[AnchorData]) -> dict[str, float]:
    """Counters of several anchors added up (first/last seen as min/max)."""
    total: dict[str, float] = {}
    for anchor in data:
        for name, value in anchor.counts.items():
            if name == "cond":
                continue
            number = float(value)
            if name == "first":
                total[name] = min(total.get(name, number), number)
            elif name == "last":
                total[name] = max(total.get(name, number), number)
            else:
                total[name] = total.get(name, 0.0) + number
    return {k: (round(v, 2) if k == "revenue" else int(v)) for k, v in sorted(total.items())}


def latest_traits(data: Iterable[AnchorData]) -> dict[str, Any]:
    """Each person trait's most recent value across anchors (a server key's over a browser
    key's, then by event time and order); at most :data:`MAX_PROFILE_TRAITS` of them, the most
    recently set."""
    latest = {n: e for n, e in _latest(data).items() if not n.startswith(ACCOUNT_TRAIT)}
    if len(latest) > MAX_PROFILE_TRAITS:
        kept = sorted(latest.items(), key=lambda item: (item[1], item[0]))[-MAX_PROFILE_TRAITS:]
        latest = dict(kept)
    return {name: _value(encoded) for name, encoded in sorted(latest.items())}


def accounts_of(data: Iterable[AnchorData]) -> dict[str, dict[str, Any]]:
    """The accounts (``group`` calls' groupIds) a customer belongs to, each with its traits as
    this customer's events last set them and when (``updated`` is the order key)."""
    accounts: dict[str, dict[str, Any]] = {}
    for name, encoded in sorted(_latest(data).items()):
        if not name.startswith(ACCOUNT_TRAIT):
            continue
        group_id, _, trait = name[1:].partition(FIELD_SEPARATOR)
        account = accounts.setdefault(group_id, {"traits": {}, "updated": ""})
        if trait:
            account["traits"][trait] = _value(encoded)
        else:
            account["updated"] = encoded.rpartition(FIELD_SEPARATOR)[0]
    return accounts


def _latest(data: Iterable[AnchorData]) -> dict[str, str]:
    latest: dict[str, str] = {}
    for anchor in data:
        for name, encoded in anchor.traits.items():
            if encoded > latest.get(name, ""):
                latest[name] = encoded
    return latest


def _value(encoded: str) -> Any:
    return orjson.loads(encoded.split(FIELD_SEPARATOR, 2)[2])


def funnel_row(profile: Mapping[str, Any]) -> list[Any]:
    """The compact row the funnel reads per customer.

    ``[first channel, first campaign, {stage: entered ms}, short traits, revenue, first ms,
    {stage: channel it was entered by}]``
    """
    touch = profile.get("first_touch") or {}
    traits = {
        k: v
        for k, v in profile.get("traits", {}).items()
        if isinstance(v, str | int | float | bool) and len(str(v)) <= 64
    }
    return [
        touch.get("channel"),
        touch.get("campaign"),
        {stage: entry[0] for stage, entry in profile["history"].items()},
        dict(list(traits.items())[:20]),
        profile.get("revenue", 0.0),
        touch.get("at_ms"),
        {stage: entry[2] for stage, entry in profile["history"].items()},
    ]


def current_entry(profile: Mapping[str, Any]) -> tuple[str, int, str] | None:
    """(stage, entered at ms, messageId) of a profile's current stage."""
    stage = profile.get("stage")
    if not stage:
        return None
    at_ms, message_id = profile["history"][stage][:2]
    return stage, at_ms, message_id


#: What ``change`` an announcement carries: a stage entered beyond every stage announced
#: before (``advance``), or a correction of the history announced (the rest).
ENTERED, INSERTED, MOVED, REMOVED = "entered", "inserted", "moved", "removed"


def announced_record(profile: Mapping[str, Any]) -> dict[str, list[Any]]:
    """What has been announced of a customer once its changes are out: every stage entry of
    its history as ``{stage: [at_ms, messageId, channel]}`` (stored in ``P:announced``)."""
    return {stage: list(entry[:3]) for stage, entry in profile["history"].items()}


def stage_changes(
    old: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    model: StageModel,
    announced: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One announcement per stage entry that differs from what was announced, in stage order.

    ``announced`` maps a customer id to its :func:`announced_record` as last stored (or, as
    stores written before every entry was announced hold it, the one entry ``[stage, at_ms,
    messageId]`` last announced). An entry a customer merged into this one (whose id is gone,
    all of whose identities this one holds) was told exactly counts as told. So a replay or a
    re-resolution announces nothing, and a subscriber folding a customer's announcements
    holds its history.
    """
    changes = []
    for profile in new.values():
        if announced.get(profile["id"]) == announced_record(profile):
            continue  # all told already (the common case: nothing to compare)
        predecessors = _predecessors(profile, old)
        mine = set(profile["identities"])
        merged = [p for p in predecessors if p["id"] not in new and mine >= set(p["identities"])]
        told = _told(profile, merged, announced, old.get(profile["id"]))
        changes += _differences(profile, told, predecessors, model)
    return changes


def _told(
    profile: Mapping[str, Any],
    merged: Sequence[Mapping[str, Any]],
    announced: Mapping[str, Any],
    before: Mapping[str, Any] | None,
) -> dict[str, list[Any]]:
    """The entries announced for this customer, and those of its history a customer merged
    into it was told exactly."""
    told = _record(announced.get(profile["id"]), before)
    for other in merged:
        theirs = _record(announced.get(other["id"]), other)
        for stage, entry in profile["history"].items():
            if stage not in told and theirs.get(stage) == list(entry[:3]):
                told[stage] = list(entry[:3])
    return told


def _record(stored: Any, before: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """A stored announcement record as ``{stage: [at_ms, messageId, channel]}``; the former
    one-entry form stands for the history it was the current entry of."""
    if isinstance(stored, dict):
        return {stage: list(entry) for stage, entry in stored.items()}
    if not stored:
        return {}
    stage, at_ms, message_id = stored[:3]
    if before is not None and current_entry(before) == (stage, at_ms, message_id):
        return announced_record(before)
    return {stage: [at_ms, message_id, None]}


def _differences(
    profile: Mapping[str, Any],
    told: Mapping[str, list[Any]],
    predecessors: Sequence[Mapping[str, Any]],
    model: StageModel,
) -> list[dict[str, Any]]:
    """The announcements that turn ``told`` into the profile's history, in stage order
    (stages the rules no longer have last)."""
    now = announced_record(profile)
    furthest = max((model.position(s) for s in told), default=-1)
    merged = sorted(p["id"] for p in predecessors if p["id"] != profile["id"])
    stages = [*model.stages, *sorted(set(told) - set(model.stages))]
    found = []
    for stage in stages:
        entry, before = now.get(stage), told.get(stage)
        if entry is not None and before is not None and entry[:2] == before[:2]:
            continue
        if entry is None and before is None:
            continue
        if entry is None:
            change = REMOVED
        elif before is None:
            change = ENTERED if model.position(stage) > furthest else INSERTED
        else:
            change = MOVED
        found.append(_announcement(profile, stage, change, entry, before, merged, model))
    return found


def _predecessors(
    profile: Mapping[str, Any], old: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    same = old.get(profile["id"])
    identities = set(profile["identities"])
    others = [
        p
        for cid, p in sorted(old.items())
        if cid != profile["id"] and identities & set(p["identities"])
    ]
    return ([same] if same else []) + others


def _below(history: Mapping[str, Any], stage: str, model: StageModel) -> str | None:
    """The furthest stage of a history before ``stage`` (where the customer came from)."""
    index, best, found = model.position(stage), -1, None
    for other in history:
        position = model.position(other)
        if best < position < index:
            best, found = position, other
    return found


def _announcement(
    profile: Mapping[str, Any],
    stage: str,
    change: str,
    entry: Sequence[Any] | None,
    before: Sequence[Any] | None,
    merged: list[str],
    model: StageModel,
) -> dict[str, Any]:
    """One announcement: ``stage`` and what happened to its entry (``change``), the entry
    (``at_ms``/``message_id``/``channel``; for ``removed`` the one withdrawn) and the one it
    replaces (``previous_*``); ``from``/``to`` read as a transition: for an entry, the stage
    before it in the history → ``stage``; for a removal, ``stage`` → the current stage."""
    history = profile["history"]
    shown = entry if entry is not None else (before or [None, None, None])
    at_ms, message_id, channel = shown[:3]
    previous = before if change != ENTERED else None
    if change == ENTERED:
        key = f"{profile['id']}|{stage}|{at_ms}|{message_id}"  # as before corrections existed
    else:
        key = f"{profile['id']}|{stage}|{change}|{list(before or [])[:2]}|{at_ms}|{message_id}"
    return {
        "change_id": hashlib.blake2b(key.encode(), digest_size=12).hexdigest(),
        "customer_id": profile["id"],
        "identities": profile["identities"],
        "stage": stage,
        "change": change,
        "from": stage if change == REMOVED else _below(history, stage, model),
        "to": profile.get("stage") if change == REMOVED else stage,
        "at_ms": at_ms,
        "message_id": message_id,
        "channel": channel,
        "previous_at_ms": previous[0] if previous else None,
        "previous_message_id": previous[1] if previous else None,
        "current": profile.get("stage"),
        "kind": "advance" if change == ENTERED else "correction",
        "merged_from": merged,
    }
