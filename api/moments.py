"""The journey map's moments, pure: where customers drop off (per stage, first-touch channel
and campaign), the persona values there are, and trigger firings per day.

Drop-off uses the funnel's definitions (:mod:`api.funnel`): of the customers who **reached**
a stage in the window (it or a later one), the ones who **dropped off** there did not reach
the next stage by ``until`` (``reached - converted_to_next``); the last stage has no drop-off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from api.funnel import NONE, OTHER, Funnel, ratio
from api.rows import FunnelRow
from touchpath.triggers import CANCELLED_COUNT, FIRED_COUNT

MAX_VALUES = 50  # persona values listed per trait (the most frequent)
SPLITS = ("channel", "campaign")


class DropOff:
    """Drop-off per stage, overall and per first-touch channel and campaign."""

    def __init__(self, stages: Sequence[str], since: int, until: int) -> None:
        self.stages = tuple(stages)
        # stalled customers are not asked for: nobody is entered before 0
        self.splits = {name: Funnel(stages, since, until, 0, name) for name in SPLITS}

    def add(self, rows: Iterable[FunnelRow]) -> None:
        """Count more rows (each customer once)."""
        rows = list(rows)
        for counter in self.splits.values():
            counter.add(rows)

    def answer(self) -> dict[str, Any]:
        """``{customers, stages, by_channel, by_campaign}``; groups without a customer in the
        window are left out."""
        by = {name: counter.answer() for name, counter in self.splits.items()}
        overall = by["channel"]
        return {
            "customers": overall["customers"],
            "stages": drop_figures(overall["stages"]),
            **{
                f"by_{name}": [
                    {
                        "group": group["group"],
                        "customers": group["customers"],
                        "stages": drop_figures(group["stages"]),
                    }
                    for group in answer["groups"]
                    if group["customers"]
                ]
                for name, answer in by.items()
            },
        }


def drop_figures(stages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per funnel stage: reached, continued (to the next stage), dropped and its share."""
    out = []
    for s in stages:
        continued = s["converted_to_next"]
        dropped = None if continued is None else s["reached"] - continued
        out.append(
            {
                "stage": s["stage"],
                "next_stage": s["next_stage"],
                "reached": s["reached"],
                "continued": continued,
                "dropped": dropped,
                "drop_rate": None if dropped is None else ratio(dropped, s["reached"]),
            }
        )
    return out


class Personas:
    """For each persona trait, its values among the customers counted in the window."""

    def __init__(self, stages: Sequence[str], since: int, until: int, names: Sequence[str]):
        self.counters = {name: Funnel(stages, since, until, 0, f"trait.{name}") for name in names}

    def add(self, rows: Iterable[FunnelRow]) -> None:
        rows = list(rows)
        for counter in self.counters.values():
            counter.add(rows)

    def answer(self) -> list[dict[str, Any]]:
        """``[{trait, values: [{value, customers}]}]``: values held by at least one customer
        counted in the window (not ``(none)``), the :data:`MAX_VALUES` most frequent."""
        found = []
        for name, counter in self.counters.items():
            groups = counter.answer()["groups"] or []
            values = [
                {"value": g["group"], "customers": g["customers"]}
                for g in groups
                if g["customers"] and g["group"] not in (NONE, OTHER)
            ]
            found.append({"trait": name, "values": values[:MAX_VALUES]})
        return found


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included (none when ``first`` is later)."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def firing_counts(
    days: Sequence[date], stored: Sequence[Mapping[str, str]], names: Sequence[str]
) -> dict[str, Any]:
    """Per day and trigger, the firings and cancellations counted (``P:trg:n:<day>``
    hashes, in the order of ``days``); triggers are the rules' ``names`` and any other
    found. Days and triggers without any are left out of ``days``; ``totals`` lists every
    trigger."""
    triggers = list(names)
    rows = []
    totals: dict[str, list[int]] = {name: [0, 0] for name in triggers}
    for day, fields in zip(days, stored, strict=True):
        per: dict[str, list[int]] = {}
        for field, value in fields.items():
            kind, _, trigger = field.partition("\x1f")
            if kind not in (FIRED_COUNT, CANCELLED_COUNT) or not trigger:
                continue
            if trigger not in totals:
                triggers.append(trigger)
                totals[trigger] = [0, 0]
            slot = 0 if kind == FIRED_COUNT else 1
            per.setdefault(trigger, [0, 0])[slot] += int(value)
            totals[trigger][slot] += int(value)
        for trigger in sorted(per):
            fired, cancelled = per[trigger]
            rows.append(
                {
                    "day": day.isoformat(),
                    "trigger": trigger,
                    "fired": fired,
                    "cancelled": cancelled,
                    "net": fired - cancelled,
                }
            )
    return {
        "triggers": triggers,
        "days": rows,
        "totals": [
            {"trigger": t, "fired": f, "cancelled": c, "net": f - c} for t, (f, c) in totals.items()
        ],
    }
