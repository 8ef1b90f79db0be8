"""Journeys that go on: a customer's lifecycle after the first purchase, as *cycles* (pure).

A customer's events make a sequence of cycles, each begun by one moment:

* cycle 1, ``first``: the first touch. Its first purchase is the customer's first purchase.
* ``repeat``: a purchase after the first one (the cycle begins with that purchase).
* ``won_back``: the first event after a *lapse*. The first purchase after it still belongs to
  this cycle (it converts the win-back); later purchases begin ``repeat`` cycles.

A customer who has purchased **lapses** after ``lapse_days`` whole UTC days without any event
(events the rules ``ignore``, such as machine email opens, are not activity): active last on
day ``D``, it is lapsed from the start of day ``D + lapse_days + 1``. Activity is stored per UTC
day (the time of each active day's first event), so a lapse is known to the day. A lapse
followed by a return is part of the stored derivation (it depends on events only); whether the
customer is lapsed *now* depends on the clock, so :func:`as_of` adds it at read time.

The state of the current cycle is its kind, or ``lapsed`` once it lapsed. Everything here is
a function of sets of stored facts (purchase times, each active day's first event time), so
arrival order and duplicates never change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000
#: Default whole days without an event after which a customer who purchased is lapsed; the
#: default rules' ``lapsing`` trigger uses the same 60 days.
DEFAULT_LAPSE_DAYS = 60
#: A profile lists at most this many cycles (the latest); ``cycle.number`` still counts all.
MAX_CYCLES = 50
#: A funnel row keeps the stage times of at most this many repeat journeys (the latest).
MAX_REPEAT_JOURNEYS = 20

FIRST, REPEAT, LAPSED, WON_BACK = "first", "repeat", "lapsed", "won_back"


@dataclass(slots=True)
class Cycle:
    """One cycle: its number, what began it (``kind``) and when, its purchases, when it
    lapsed (None: not lapsed), and the stages entered in it (stage → ms)."""

    number: int
    kind: str
    since: int
    purchases: int = 0
    first_purchase: int | None = None
    lapsed_at: int | None = None
    stages: dict[str, int] = field(default_factory=dict)

    def state(self) -> str:
        return LAPSED if self.lapsed_at is not None else self.kind


def lapse_moment(last_day: int, lapse_days: int) -> int:
    """When a customer active last on UTC day ``last_day`` lapses (epoch ms)."""
    return (last_day + lapse_days + 1) * DAY_MS


def cycles_of(
    first_ms: int | None,
    purchases: Iterable[int],
    days: Mapping[int, int],
    lapse_days: int = DEFAULT_LAPSE_DAYS,
    dropped: int = 0,
) -> list[Cycle]:
    """The cycles of a customer from its first touch, purchase times and active days (UTC day
    → its first event's ms). ``dropped`` purchases were not kept (the bound): cycle numbers
    after the first count them."""
    moments = sorted([(ms, 0, day) for day, ms in days.items()] + [(ms, 1, 0) for ms in purchases])
    start = first_ms if first_ms is not None else (moments[0][0] if moments else None)
    if start is None:
        return []
    cycles = [Cycle(1, FIRST, start)]
    bought, last_day = False, None
    for ms, kind, day in moments:
        current = cycles[-1]
        if kind == 0:  # the first event of an active day
            if bought and last_day is not None and day - last_day > lapse_days:
                current.lapsed_at = lapse_moment(last_day, lapse_days)
                cycles.append(Cycle(len(cycles) + 1 + dropped, WON_BACK, ms))
            last_day = day if last_day is None else max(last_day, day)
            continue
        if current.purchases == 0 and current.kind != REPEAT:
            current.purchases, current.first_purchase = 1, ms  # first / win-back purchase
        else:
            cycles.append(Cycle(len(cycles) + 1 + dropped, REPEAT, ms, 1, ms))
        bought = True
    return cycles


def add_stages(
    cycles: Sequence[Cycle],
    history: Mapping[str, int],
    candidates: Iterable[tuple[str, int]],
    stages: Sequence[str],
    purchase_stage: str,
) -> None:
    """The stages entered in each cycle (``cycle.stages``). Cycle 1: the stage history
    entered before cycle 2 began. A later cycle: its first stage at a win-back's return, the
    purchase stage at its first purchase, and each other stage at its earliest candidate
    (``candidates``: stage, ms) inside the cycle: before its purchase for stages before the
    purchase stage (a win-back), from its purchase on for later stages."""
    if not cycles:
        return
    ends = [c.since for c in cycles[1:]] + [1 << 62]
    cycles[0].stages = {s: at for s, at in history.items() if at < ends[0]}
    if len(cycles) == 1:  # the candidates are only read for later cycles
        return
    at_purchase = stages.index(purchase_stage) if purchase_stage in stages else len(stages)
    found = sorted((at, stage) for stage, at in candidates)
    for cycle, end in zip(cycles[1:], ends[1:], strict=True):
        times: dict[str, int] = {}
        if cycle.kind == WON_BACK and stages:
            times[stages[0]] = cycle.since
        bought = cycle.first_purchase
        if bought is not None and at_purchase < len(stages):
            times[purchase_stage] = bought
        for at, stage in found:
            if stage in times or stage not in stages:
                continue
            after = stages.index(stage) > at_purchase
            low, high = (bought, end) if after else (cycle.since, bought or end)
            if low is not None and low <= at < high and (after or cycle.kind == WON_BACK):
                times[stage] = at
        cycle.stages = {s: times[s] for s in stages if s in times}


def profile_fields(cycles: Sequence[Cycle], days: Mapping[int, int]) -> dict[str, Any]:
    """What a profile stores: the current cycle, the first and the latest cycles (at most
    :data:`MAX_CYCLES`), and the latest activity (the first event of the latest active day)."""
    last_active = days[max(days)] if days else None
    if not cycles:
        return {"cycle": None, "cycles": [], "last_active": last_active}
    current = cycles[-1]
    return {
        "cycle": {"number": current.number, "state": current.state(), "since": _since(current)},
        "cycles": [_entry(c) for c in [*cycles[:1], *cycles[1:][-(MAX_CYCLES - 1) :]]],
        "last_active": last_active,
    }


def _since(cycle: Cycle) -> int:
    return cycle.lapsed_at if cycle.lapsed_at is not None else cycle.since


def _entry(cycle: Cycle) -> dict[str, Any]:
    return {
        "number": cycle.number,
        "kind": cycle.kind,
        "since": cycle.since,
        "purchases": cycle.purchases,
        "lapsed_at": cycle.lapsed_at,
        "stages": dict(cycle.stages),
    }


def as_of(profile: Mapping[str, Any], now_ms: int, lapse_days: int) -> dict[str, Any]:
    """The stored ``cycle``/``cycles`` with the lapse the clock adds: a customer who has
    purchased and whose latest active day is more than ``lapse_days`` whole days before
    ``now_ms`` is lapsed (the current cycle gets ``lapsed_at``)."""
    cycle = profile.get("cycle")
    cycles = [dict(c) for c in profile.get("cycles") or ()]
    last = profile.get("last_active")
    if not cycle or not cycles or last is None or cycles[-1].get("lapsed_at") is not None:
        return {"cycle": cycle, "cycles": cycles}
    purchased = cycle["number"] > 1 or any(c["purchases"] for c in cycles)
    lapsed = lapse_moment(last // DAY_MS, lapse_days)
    if not purchased or now_ms < lapsed:
        return {"cycle": cycle, "cycles": cycles}
    cycles[-1]["lapsed_at"] = lapsed
    return {"cycle": {**cycle, "state": LAPSED, "since": lapsed}, "cycles": cycles}


def journey_times(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The funnel row's lifecycle part: the latest activity (``active``), the stage times of
    the first journey when a later cycle cut it short (``first``), and of the latest
    :data:`MAX_REPEAT_JOURNEYS` repeat journeys (``repeat``, oldest first)."""
    cycles = profile.get("cycles") or []
    found: dict[str, Any] = {"active": profile.get("last_active")}
    if len(cycles) > 1:
        found["first"] = cycles[0]["stages"]
        found["repeat"] = [c["stages"] for c in cycles[1:]][-MAX_REPEAT_JOURNEYS:]
    return found
