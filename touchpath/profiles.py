"""Customers derived from their identifiers' stored effects (pure): identities, stage
history, traits, accounts, surveys and lifecycle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from touchpath.anchors import AnchorData
from touchpath.cycles import (
    DEFAULT_LAPSE_DAYS,
    add_stages,
    cycles_of,
    profile_fields,
)
from touchpath.effects import ACCOUNT_TRAIT, FIELD_SEPARATOR, TRAIT_MARK, time_order
from touchpath.identifiers import (
    Identifier,
    sort_by_priority,
)
from touchpath.identity import (
    TIE_SEPARATOR,
    IdentityPolicy,
    RefusedTie,
    customer_id,
    resolve,
)
from touchpath.stages import (
    StageCandidate,
    StageEntry,
    StageModel,
    current_stage,
    gate_passes,
    stage_history,
)
from touchpath.surveys import stage_at

#: A profile lists at most this many refused ties (the earliest); the metric counts them all.
MAX_REFUSED_TIES = 20
#: A profile shows at most this many traits (the most recently set); each identifier keeps at
#: most ``TOUCHPATH_MAX_TRAITS`` distinct ones.
MAX_PROFILE_TRAITS = 200


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
    lapse_days: int = DEFAULT_LAPSE_DAYS,
) -> dict[str, Any]:
    """A customer's stage profile, a pure function of its identities and their candidates."""
    keys = [
        i.key()
        for i in sort_by_priority((Identifier.parse(k) for k in identities), policy.priority)
    ]
    data = [anchors[k] for k in keys if k in anchors]
    candidates = _candidates(data)
    history = stage_history(candidates, model)
    totals = _orders_revenue(data)
    mine = set(keys)
    touch = first_touch(data)
    return {
        "id": customer_id(keys, first_seen, policy.priority),
        "identities": keys,
        "stage": current_stage(history, model),
        "history": {s: history_entry(e) for s, e in history.items()},
        "first_touch": touch,
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
        **lifecycle(data, touch, history, candidates, model, lapse_days, totals),
        "rules_version": model.version,
    }


def lifecycle(
    data: Sequence[AnchorData],
    touch: Mapping[str, Any] | None,
    history: Mapping[str, StageEntry],
    candidates: Sequence[tuple[str, StageCandidate]],
    model: StageModel,
    lapse_days: int,
    totals: Mapping[str, float],
) -> dict[str, Any]:
    """The profile's ``cycle``, ``cycles`` and ``last_active`` (:mod:`touchpath.cycles`)."""
    days: dict[int, int] = {}
    for anchor in data:
        for day, ms in anchor.days.items():
            days[day] = min(ms, days.get(day, ms))
    purchases = sorted(ms for anchor in data for ms in anchor.purchases)
    dropped = max(0, int(totals.get("orders", 0)) - len(purchases))
    first = touch["at_ms"] if touch else None
    cycles = cycles_of(first, purchases, days, lapse_days, dropped)
    add_stages(
        cycles,
        {stage: entry.at_ms for stage, entry in history.items()},
        ((stage, c.at_ms) for stage, c in candidates if _after_met(c, history)),
        model.stages,
        model.purchase_stage,
    )
    return profile_fields(cycles, days)


def _after_met(candidate: StageCandidate, history: Mapping[str, StageEntry]) -> bool:
    after = candidate.after
    return after is None or (after in history and history[after].at_ms <= candidate.at_ms)


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
    lapse_days: int = DEFAULT_LAPSE_DAYS,
) -> dict[str, dict[str, Any]]:
    """Every customer profile of a raw cluster, keyed by customer id; ``over`` holds the ties
    the store refused because the raw cluster was full (tie → order); ``blocked`` the
    identifiers an admin split off (identifier → ``{"by", "at_ms"}`` JSON): no tie naming one
    is made, whatever events arrive later; ``lapse_days`` is the lifecycle's lapse
    (:mod:`touchpath.cycles`)."""
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
        build_customer(c, anchors, first_seen, refused, model, policy, lapse_days)
        for c in resolution.customers
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


def _orders_revenue(data: Iterable[AnchorData]) -> dict[str, float]:
    """The ``orders`` and ``revenue`` of :func:`sum_counts` (all a profile reads of it)."""
    total: dict[str, float] = {}
    for anchor in data:
        counts = anchor.counts
        for name in ("orders", "revenue"):
            value = counts.get(name)
            if value is not None:
                total[name] = total.get(name, 0.0) + float(value)
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
