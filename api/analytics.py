"""Pure computations behind /v1/funnel and /v1/metrics, over compact funnel rows.

A row is ``[first channel, first campaign, {stage: entered ms}, traits, revenue, first ms]``
(see :func:`touchpath.journey.funnel_row`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

Row = Sequence[Any]
DAY_MS = 86_400_000


def group_key(row: Row, group_by: str | None) -> str:
    """The group a row falls in: first-touch channel, campaign, or a trait's value."""
    if not group_by:
        return "all"
    if group_by == "channel":
        value = row[0]
    elif group_by == "campaign":
        value = row[1]
    else:
        value = row[3].get(group_by.removeprefix("trait."))
    return "(none)" if value is None else str(value)


def select(rows: Iterable[Row], channel: str | None, campaign: str | None) -> list[Row]:
    """Rows whose first touch matches the channel / campaign filters."""
    return [
        r
        for r in rows
        if (channel is None or r[0] == channel) and (campaign is None or r[1] == campaign)
    ]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when empty)."""
    if not values:
        return None
    rank = max(0, min(len(values) - 1, round(fraction * (len(values) - 1))))
    return values[rank]


def funnel(
    rows: Iterable[Row],
    stages: Sequence[str],
    since_ms: float,
    until_ms: float,
    now_ms: float,
    stalled_after_ms: float,
) -> dict[str, Any]:
    """Reached counts, conversion, time between consecutive stages and stalled customers.

    A customer *reached* a stage in the window when it entered it within [since, until].
    Conversion from stage i to i+1 is reached(i+1 and i) / reached(i) among customers who
    reached i in the window. A customer is *stalled* when its furthest stage was entered
    more than ``stalled_after`` before now and it is not the last stage.
    """
    reached = [0] * len(stages)
    converted = [0] * len(stages)
    gaps: list[list[float]] = [[] for _ in stages]
    stalled = [0] * len(stages)
    for row in rows:
        times = row[2]
        for i, stage in enumerate(stages):
            at = times.get(stage)
            if at is None or not since_ms <= at <= until_ms:
                continue
            reached[i] += 1
            following = times.get(stages[i + 1]) if i + 1 < len(stages) else None
            if following is not None:
                converted[i] += 1
                gaps[i].append(max(0.0, (following - at) / 1000))
        _count_stalled(times, stages, now_ms, stalled_after_ms, stalled)
    return {
        "stages": [
            _stage_figures(stages, i, reached, converted, gaps, stalled) for i in range(len(stages))
        ]
    }


def _count_stalled(
    times: dict[str, float],
    stages: Sequence[str],
    now_ms: float,
    stalled_after_ms: float,
    stalled: list[int],
) -> None:
    present = [i for i, s in enumerate(stages) if s in times]
    if not present:
        return
    furthest = max(present)
    if furthest < len(stages) - 1 and now_ms - times[stages[furthest]] > stalled_after_ms:
        stalled[furthest] += 1


def _stage_figures(
    stages: Sequence[str],
    i: int,
    reached: list[int],
    converted: list[int],
    gaps: list[list[float]],
    stalled: list[int],
) -> dict[str, Any]:
    ordered = sorted(gaps[i])
    last = i + 1 == len(stages)
    return {
        "stage": stages[i],
        "reached": reached[i],
        "stalled": stalled[i],
        "next_stage": None if last else stages[i + 1],
        "conversion_to_next": None if last or not reached[i] else converted[i] / reached[i],
        "median_seconds_to_next": percentile(ordered, 0.5),
        "p90_seconds_to_next": percentile(ordered, 0.9),
    }


def grouped_funnel(rows: Iterable[Row], group_by: str | None, **window: Any) -> dict[str, Any]:
    """:func:`funnel` per group."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[group_key(row, group_by)].append(row)
    return {name: funnel(members, **window) for name, members in sorted(groups.items())}


def business_metrics(
    rows: Iterable[Row], since_ms: float, until_ms: float, purchase_stage: str
) -> dict[str, Any]:
    """Conversion, retention and lifetime value over customers first seen by ``until``.

    * conversion rate: customers first seen in the window who reached ``purchase_stage``.
    * retention rate: of the customers active in the previous period of equal length, those
      also active in this one; *active* means a first touch or a stage entry in the period
      (the events the profile keeps times for: an approximation of all activity).
    * lifetime value: revenue of order events per purchasing customer, overall and per
      first-touch channel.
    """
    length = until_ms - since_ms
    seen = converted = previous_active = retained = 0
    revenue: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        channel, times, value, first = row[0], row[2], float(row[4] or 0), row[5]
        moments = [t for t in (first, *times.values()) if t is not None]
        if first is not None and since_ms <= first <= until_ms:
            seen += 1
            converted += purchase_stage in times
        if purchase_stage in times:
            revenue[channel or "(none)"].append(value)
        was_active = any(since_ms - length <= t < since_ms for t in moments)
        previous_active += was_active
        retained += was_active and any(since_ms <= t <= until_ms for t in moments)
    every = [v for values in revenue.values() for v in values]
    return {
        "customers_seen": seen,
        "conversion_rate": converted / seen if seen else None,
        "retention_rate": retained / previous_active if previous_active else None,
        "lifetime_value": {
            "average": sum(every) / len(every) if every else None,
            "purchasing_customers": len(every),
            "by_first_touch_channel": {k: sum(v) / len(v) for k, v in sorted(revenue.items())},
        },
    }
