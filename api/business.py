"""The business figures behind /v1/metrics: a pure accumulator over
:class:`api.rows.FunnelRow` (see :class:`Figures` for the definitions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api.funnel import NONE, ratio
from api.rows import FunnelRow


def _money(total: float, count: int) -> float | None:
    return round(total / count, 2) if count else None


class Figures:
    """Conversion, retention and lifetime value for the window [since, until].

    * **customers seen**: customers first seen in the window (their first touch).
    * **conversion rate**: of those, the share that reached stage ``purchase`` (an index in
      the model; -1 for none) by ``until``.
    * **retention rate**: of the customers active in the previous period of equal length,
      the share also active in this one. A customer counts as active throughout its known
      lifespan [first seen, latest activity]; its latest activity is the first event of the
      latest UTC day on which it sent *any* event the rules do not ignore (a repeat order, a
      page view; not a machine email open), or a later stage entry: so activity is known to
      the day, and exact for periods that start at midnight UTC.
    * **lifetime value**: revenue of every event the rules count as a purchase
      (:func:`touchpath.stages.purchase_revenue`) of the customers first seen in the window,
      per purchasing customer and per customer, overall and by first-touch channel.
    """

    def __init__(self, since: int, until: int, purchase: int) -> None:
        self.since, self.until, self.purchase = since, until, purchase
        self.previous = since - (until - since)
        self.seen = self.purchasers = self.active_before = self.retained = 0
        self.channels: dict[str, list[float]] = {}  # channel → [customers, purchasers, revenue]

    def add(self, rows: Iterable[FunnelRow]) -> None:
        """Count more rows (each customer once)."""
        since, until, purchase = self.since, self.until, self.purchase
        for row in rows:
            first, last = row.first, row.last
            if first is None or last is None:
                continue
            if first < since and last >= self.previous:
                self.active_before += 1
                self.retained += last >= since
            if not since <= first <= until:
                continue
            self.seen += 1
            bucket = self.channels.get(row.channel or NONE)
            if bucket is None:
                bucket = self.channels[row.channel or NONE] = [0, 0, 0.0]
            bucket[0] += 1
            bucket[2] += row.revenue
            if 0 <= purchase < len(row.reached) and row.reached[purchase] <= until:
                self.purchasers += 1
                bucket[1] += 1

    def answer(self) -> dict[str, Any]:
        """The figures (see the class docstring)."""
        revenue = sum(bucket[2] for bucket in self.channels.values())
        return {
            "customers_seen": self.seen,
            "purchasers": self.purchasers,
            "conversion_rate": ratio(self.purchasers, self.seen),
            "retention": {
                "active_previous_period": self.active_before,
                "retained": self.retained,
                "rate": ratio(self.retained, self.active_before),
            },
            "lifetime_value": {
                "revenue": round(revenue, 2),
                "per_purchasing_customer": _money(revenue, self.purchasers),
                "per_customer": _money(revenue, self.seen),
                "by_first_touch_channel": {
                    name: {
                        "customers": int(count),
                        "purchasers": int(bought),
                        "revenue": round(total, 2),
                        "per_purchasing_customer": _money(total, int(bought)),
                    }
                    for name, (count, bought, total) in sorted(self.channels.items())
                },
            },
        }


def business_figures(
    rows: Iterable[FunnelRow], since: int, until: int, purchase: int
) -> dict[str, Any]:
    """:class:`Figures` over ``rows`` in one call."""
    counter = Figures(since, until, purchase)
    counter.add(rows)
    return counter.answer()
