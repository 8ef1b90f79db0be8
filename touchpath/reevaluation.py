"""Stage candidates again, under changed rules, from an identifier's stored events (pure).

When the rules file changes (:attr:`touchpath.stages.StageModel.version`), the stage
candidates folded into each anchor under the old rules no longer say the truth. An anchor's
timeline keeps, per event, what the rules can read (:func:`touchpath.effects.journey_entry`:
type, name, channel, key properties, campaign, the event's same-millisecond tiebreak and the
other fields the rules in force read), so every event still in the timeline is matched again
under the new rules, exactly as :func:`touchpath.effects.effects_of` would have on arrival.
The entries come decoded (``store.codecs.decode_journey``), ``at`` their stored time.

What cannot be checked again is kept, never wiped: a candidate whose event has left the
timeline (``TOUCHPATH_JOURNEY_CAP``) stays as it was when its stage still exists. Trait
conditions read the trait history the anchor keeps (``~t`` members); a trait that only the new
rules read starts from the latest value the anchor holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from touchpath.effects import FIELD_SEPARATOR, TRAIT_MARK, stage_contributions, time_order
from touchpath.stages import NO_MATCH, StageModel, is_ignored, match_event, purchase_revenue

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Rewrite:
    """How an anchor's stage candidates change: hash fields to delete and to set, members of
    its ``cond`` set to remove and to add (member → event time)."""

    delete: tuple[str, ...]
    set: dict[str, str]
    cond_remove: tuple[str, ...]
    cond_add: dict[str, int]
    #: the lifecycle's facts (touchpath/cycles.py): purchase events (messageId → time) and
    #: active UTC days (day → its first event's time) to add or set, and to remove
    buys_add: dict[str, int] = field(default_factory=dict)
    buys_remove: tuple[str, ...] = ()
    days_set: dict[str, int] = field(default_factory=dict)
    days_remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.delete
            or self.set
            or self.cond_remove
            or self.cond_add
            or self.buys_add
            or self.buys_remove
            or self.days_set
            or self.days_remove
        )


def event_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The event as the rules see it, rebuilt from its timeline entry."""
    context: dict[str, Any] = {"channel": entry.get("channel")}
    if entry.get("campaign"):
        context["campaign"] = dict(entry["campaign"])
    event: dict[str, Any] = {
        "type": entry.get("type"),
        "messageId": entry["id"],
        "properties": dict(entry.get("properties") or {}),
        "context": context,
    }
    if entry.get("event") is not None:
        event["event" if event["type"] == "track" else "name"] = entry["event"]
    for path, value in (entry.get("r") or {}).items():
        _put(event, path.split("."), value)
    return event


def _put(event: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    target = event
    for part in parts[:-1]:
        found = target.get(part)
        if not isinstance(found, dict):
            found = target[part] = {}
        target = found
    target[parts[-1]] = value


def candidates_of(
    entries: Iterable[Mapping[str, Any]], model: StageModel
) -> tuple[dict[str, str], dict[str, int]]:
    """The earliest-wins candidates (``stage`` → encoded) and gated ones (member → time)
    that the events of these timeline entries give under ``model``."""
    earliest: dict[str, str] = {}
    gated: dict[str, int] = {}
    for entry in entries:
        event = event_of(entry)
        at_ms = int(entry["at"])
        match = match_event(event, model)
        found, cond = stage_contributions(
            event, match, at_ms, str(entry["id"]), str(entry.get("channel")), entry.get("tb", "")
        )
        for stage, candidate in found.items():
            if stage not in earliest or candidate < earliest[stage]:
                earliest[stage] = candidate
        gated.update(cond)
    return earliest, gated


def rewrite(
    entries: Sequence[Mapping[str, Any]],
    fields: Mapping[str, str],
    cond: Iterable[tuple[str, int]],
    model: StageModel,
    buys: Mapping[str, int] | None = None,
    days: Mapping[str, int] | None = None,
) -> Rewrite:
    """How to bring an anchor (its timeline ``entries``, hash ``fields``, ``cond`` set and
    lifecycle facts ``buys`` and ``days``) to what ``model`` gives, keeping what cannot be
    checked again."""
    checked = {str(entry["id"]) for entry in entries}
    stages = set(model.stages)
    fresh, gated = candidates_of(entries, model)
    final = dict(fresh)
    stored: dict[str, str] = {}
    for name, value in fields.items():
        if not name.startswith("s:"):
            continue
        stage = name[2:]
        stored[stage] = value
        message_id = value.split(FIELD_SEPARATOR, 2)[1]
        keep = stage in stages and message_id not in checked
        if keep and (stage not in final or value < final[stage]):
            final[stage] = value
    deleted = [f"s:{stage}" for stage in stored if stage not in final]
    changed = {f"s:{s}": v for s, v in sorted(final.items()) if stored.get(s) != v}
    for name, total in _totals(entries, fields, model).items():
        if total is None and name in fields:
            deleted.append(name)
        elif total is not None and fields.get(name) != total:
            changed[name] = total
    delete = tuple(sorted(deleted))
    remove, present = [], set()
    traits_kept = set()
    for member, _ in cond:
        if member.startswith(TRAIT_MARK):
            traits_kept.add(member.split(FIELD_SEPARATOR, 2)[1])
            continue
        stage, _after, message_id = member.split(FIELD_SEPARATOR, 3)[:3]
        if (stage not in stages or message_id in checked) and member not in gated:
            remove.append(member)
            continue
        present.add(member)
    add = {m: at for m, at in gated.items() if m not in present}
    add.update(_trait_starts(fields, model, traits_kept))
    lifecycle = _lifecycle(entries, model, buys or {}, days or {})
    return Rewrite(delete, changed, tuple(sorted(remove)), add, *lifecycle)


def _totals(
    entries: Sequence[Mapping[str, Any]], fields: Mapping[str, str], model: StageModel
) -> dict[str, str | None]:
    """``c:orders`` and ``c:revenue`` again when the timeline still holds every event of the
    anchor (else nothing: the trimmed events' share is unknown); None: no such field."""
    if int(fields.get("c:events") or 0) != len(entries):
        return {}
    orders, revenue = 0, 0.0
    for entry in entries:
        event = event_of(entry)
        value = purchase_revenue(event, match_event(event, model), model)
        if value is not None:
            orders, revenue = orders + 1, revenue + value
    found: dict[str, str | None] = {"c:orders": str(orders) if orders else None}
    old = fields.get("c:revenue")
    if old is None or float(old) != revenue:
        found["c:revenue"] = repr(revenue) if revenue or old is not None else None
    return found


def _lifecycle(
    entries: Sequence[Mapping[str, Any]],
    model: StageModel,
    buys: Mapping[str, int],
    days: Mapping[str, int],
) -> tuple[dict[str, int], tuple[str, ...], dict[str, int], tuple[str, ...]]:
    """Purchases and active days again under ``model``: an event in the timeline is a
    purchase when the rules count it as one and is activity unless they ignore it; a day
    whose first event left the timeline keeps it."""
    buys_add: dict[str, int] = {}
    buys_remove: list[str] = []
    active: dict[str, int] = {}
    checked_at: dict[str, set[int]] = {}
    for entry in entries:
        event, at_ms, message_id = event_of(entry), int(entry["at"]), str(entry["id"])
        match = match_event(event, model)
        day = str(at_ms // DAY_MS)
        checked_at.setdefault(day, set()).add(at_ms)
        if purchase_revenue(event, match, model) is not None:
            if buys.get(message_id) != at_ms:
                buys_add[message_id] = at_ms
        elif message_id in buys:
            buys_remove.append(message_id)
        if (match is not NO_MATCH or not is_ignored(event, model)) and at_ms < active.get(
            day, at_ms + 1
        ):
            active[day] = at_ms
    days_set: dict[str, int] = {}
    days_remove: list[str] = []
    for day, first in days.items():
        from_checked = first in checked_at.get(day, ())
        wanted = active.get(day) if from_checked else min(first, active.get(day, first))
        if wanted is None:
            days_remove.append(day)
        elif wanted != first:
            days_set[day] = wanted
    days_set.update((day, ms) for day, ms in active.items() if day not in days)
    return buys_add, tuple(sorted(buys_remove)), days_set, tuple(sorted(days_remove))


def _trait_starts(fields: Mapping[str, str], model: StageModel, known: set[str]) -> dict[str, int]:
    """For each trait only the new rules read, the anchor's latest value as its history."""
    found: dict[str, int] = {}
    for name in sorted(model.trait_names - known):
        stored = fields.get(f"t:{name}")
        if not stored:
            continue
        order, message_id, encoded = stored.split(FIELD_SEPARATOR, 2)
        at_ms = int(order[1:16])
        member = (TRAIT_MARK, name, time_order(at_ms, message_id), encoded)
        found[FIELD_SEPARATOR.join(member)] = at_ms
    return found


@dataclass(frozen=True, slots=True)
class RulesState:
    """What ``P:rules`` says."""

    version: str
    previous: str
    unversioned: str
    state: str
    done: int
    total: int
    started_ms: int | None
    finished_ms: int | None

    @classmethod
    def of(cls, raw: dict[str, str]) -> RulesState:
        def number(name: str) -> int | None:
            value = raw.get(name)
            return int(value) if value else None

        return cls(
            raw.get("version", ""),
            raw.get("previous", ""),
            raw.get("unversioned", ""),
            raw.get("state", "current"),
            number("done") or 0,
            number("total") or 0,
            number("started_ms"),
            number("finished_ms"),
        )

    def answer(self) -> dict[str, Any]:
        """As ``GET /v1/rules`` shows it."""
        return {
            "version": self.version,
            "previous_version": self.previous or None,
            "state": self.state,
            "reevaluated_clusters": self.done,
            "clusters_estimate": self.total,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
        }
