"""Pure functions turning stored profiles, counters and journey entries into API answers.

A stored profile (``P:cust:<id>``, written by the processor; ``store.codecs.decode_profile``) is
``{id, identities: ["kind:value"…], stage, history: {stage: [at_ms, message_id, channel]},
first_touch: {at_ms, channel, campaign} | null, traits, orders, revenue, refused_ties}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from api.timeparse import iso
from touchpath.cycles import as_of
from touchpath.identifiers import EXTERNAL_PREFIX, Identifier
from touchpath.stages import StageModel

Profile = Mapping[str, Any]


def identity(key: str) -> dict[str, str]:
    """``"email:ada@example.com"`` → ``{"type": "email", "value": "ada@example.com"}``;
    external ids show their own type (``ext:intercom_user:42`` → ``intercom_user``)."""
    found = Identifier.parse(key)
    return {"type": found.kind.removeprefix(EXTERNAL_PREFIX), "value": found.value}


def previous_stage(stage: str | None, history: Mapping[str, Any], stages: StageModel) -> str | None:
    """The furthest stage of ``history`` before ``stage`` (None if there is none)."""
    if stage is None or stage not in stages.stages:
        return None
    earlier = [s for s in stages.stages[: stages.index(stage)] if s in history]
    return earlier[-1] if earlier else None


def stage_view(profile: Profile, stages: StageModel, as_of: int | None = None) -> dict[str, Any]:
    """The answer of ``GET /v1/customers/{identifier}/stage``; with ``as_of`` (epoch ms) the
    stage the customer was in at that time, as far as the events known now tell."""
    stage, history = profile.get("stage"), profile.get("history") or {}
    if as_of is not None:
        history = {s: e for s, e in history.items() if e[0] <= as_of and s in stages.stages}
        stage = max(history, key=stages.index) if history else None
    entry = history.get(stage) if stage else None
    if entry is None:
        return {
            "customer_id": profile["id"],
            "stage": None,
            "entered_at": None,
            "previous_stage": None,
            "caused_by": None,
            "rules_version": profile.get("rules_version"),
        }
    at = iso(entry[0])
    return {
        "customer_id": profile["id"],
        "stage": stage,
        "entered_at": at,
        "previous_stage": previous_stage(stage, history, stages),
        "caused_by": caused_by(str(stage), entry, stages),
        "rules_version": profile.get("rules_version"),
    }


def caused_by(stage: str, entry: Sequence[Any], stages: StageModel) -> dict[str, Any]:
    """The event that entered a stage (time, channel, type, name) and the rule that counted
    it (its number in the rules file, the stage it grants and its ``when`` as written); type,
    name and rule are None for entries stored before they were kept."""
    cause = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
    rule = stages.rule(cause.get("rule"), stage)
    return {
        "message_id": entry[1],
        "at": iso(entry[0]),
        "channel": entry[2],
        "type": cause.get("type"),
        "event": cause.get("event"),
        "rule": {"number": rule.number, "stage": rule.stage, "when": dict(rule.source)}
        if rule
        else None,
    }


def stage_history(profile: Profile, stages: StageModel) -> list[dict[str, Any]]:
    """Each stage reached, in model order, with when and by which event."""
    history = profile.get("history") or {}
    known = [s for s in stages.stages if s in history]
    known += sorted(s for s in history if s not in stages.stages)  # from an older rules file
    return [
        {
            "stage": s,
            "entered_at": iso(history[s][0]),
            "message_id": history[s][1],
            "channel": history[s][2],
            "caused_by": caused_by(s, history[s], stages),
        }
        for s in known
    ]


def profile_view(
    profile: Profile, counts: Mapping[str, float], stages: StageModel
) -> dict[str, Any]:
    """The answer of ``GET /v1/customers/{identifier}``; ``counts`` are the customer's
    counters summed over its identities (:func:`touchpath.profiles.sum_counts`)."""
    touch = profile.get("first_touch")
    return {
        "customer_id": profile["id"],
        "identities": [identity(k) for k in profile.get("identities", [])],
        "traits": profile.get("traits") or {},
        "stage": profile.get("stage"),
        "stage_history": stage_history(profile, stages),
        "first_seen": iso(counts.get("first")),
        "last_seen": iso(counts.get("last")),
        "first_touch": (
            {"at": iso(touch["at_ms"]), "channel": touch["channel"], "campaign": touch["campaign"]}
            if touch
            else None
        ),
        "channels": _prefixed(counts, "channel:"),
        "counts": {"events": int(counts.get("events", 0)), "by_type": _prefixed(counts, "type:")},
        "orders": int(counts.get("orders", profile.get("orders", 0))),
        "revenue": round(float(counts.get("revenue", profile.get("revenue", 0.0))), 2),
        "refused_ties": [
            {"identities": [identity(k) for k in tie["identifiers"]], "reason": tie["reason"]}
            for tie in profile.get("refused_ties", [])
        ],
        "rules_version": profile.get("rules_version"),
    }


def lifecycle_view(profile: Profile, now_ms: int, lapse_days: int) -> dict[str, Any]:
    """The profile's ``cycle`` and ``cycles`` as of ``now_ms`` (a customer quiet for longer
    than the lapse is lapsed: :func:`touchpath.cycles.as_of`), times as ISO 8601."""
    found = as_of(profile, now_ms, lapse_days)
    cycle = found["cycle"]
    return {
        "cycle": {**cycle, "since": iso(cycle["since"])} if cycle else None,
        "cycles": [
            {
                **c,
                "since": iso(c["since"]),
                "lapsed_at": iso(c["lapsed_at"]) if c.get("lapsed_at") is not None else None,
                "stages": {s: iso(at) for s, at in c.get("stages", {}).items()},
            }
            for c in found["cycles"]
        ],
        "last_active": iso(profile.get("last_active")),
    }


def _prefixed(counts: Mapping[str, float], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): int(v) for k, v in counts.items() if k.startswith(prefix)}


def journey_entries(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored timeline entries (``at`` in epoch ms) merged newest first, one per messageId."""
    unique: dict[str, Mapping[str, Any]] = {}
    for entry in raw:
        unique.setdefault(str(entry["id"]), entry)
    return sorted(unique.values(), key=journey_key, reverse=True)  # type: ignore[arg-type]


def journey_key(entry: Mapping[str, Any]) -> tuple[int, str]:
    """The total order of a timeline: event time, then messageId."""
    return (int(entry["at"]), str(entry["id"]))


def journey_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One timeline entry as answered: ``at`` as ISO-8601, without the fields kept for
    re-evaluating stages (``tb``, ``r``: :func:`touchpath.effects.journey_entry`)."""
    shown = {k: v for k, v in entry.items() if k not in _ENTRY_INTERNALS}
    shown["at"] = iso(entry["at"])
    return shown


_ENTRY_INTERNALS = frozenset({"tb", "r"})


def trait_text(value: object) -> str:
    """A trait value as compared with a ``trait.<name>=<value>`` filter: strings as they
    are, other values as JSON (``true``, ``42``, ``4.5``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def has_traits(profile: Profile, wanted: Mapping[str, Sequence[str]]) -> bool:
    """True when every named trait has one of the wanted values (exact match)."""
    traits = profile.get("traits") or {}
    return all(
        name in traits and trait_text(traits[name]) in values for name, values in wanted.items()
    )


def segment_member(profile: Profile, entered_ms: float) -> dict[str, Any]:
    """A customer as listed by ``GET /v1/stages/{stage}/customers``."""
    return {
        "customer_id": profile["id"],
        "identities": [identity(k) for k in profile.get("identities", [])],
        "entered_at": iso(entered_ms),
        "traits": profile.get("traits") or {},
    }
