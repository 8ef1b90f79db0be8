"""The funnel behind /v1/funnel: a pure accumulator over :class:`api.rows.FunnelRow`.

:class:`Funnel` counts rows chunk by chunk (``add``), then answers (``answer``); the API counts
one chunk of ``P:funnel`` while the event loop serves other requests. Definitions (also in
the OpenAPI description):

* **reached** — a customer reached a stage when it entered that stage *or a later one*
  (a purchase without a recorded decision still passed the decision stage); the time is
  the earliest such entry (:func:`api.rows.effective_times`). A stage counts a customer
  when that time falls in the window [since, until].
* **conversion** from a stage to the next — of the customers counted at the stage, the
  share that reached the next stage by ``until``. Always within [0, 1].
* **time to next** — for those converted customers, the time between reaching the stage
  and reaching the next one: median and 90th percentile, read from a logarithmic histogram
  (buckets 0.5 % wide: within 0.25 % of the exact value, without sorting every duration).
* **stalled** — customers counted at a stage that is still their furthest, entered before
  ``stalled_before`` (now - stalled_after); the last stage never stalls.
* **journey** — ``all`` counts each customer by its stage history; ``first`` each customer's
  first journey (the history before its second cycle began: :mod:`touchpath.cycles`);
  ``repeat`` each repeat journey (every cycle after the first: a customer may count several
  times), by the stages entered in that cycle. A journey followed by a later one never stalls.
* **groups** (``group_by``) — only groups with a customer counted in the window are listed.

Over all time (a window holding every entry) the reached counts never increase along the
stages; in any window converted ≤ reached, stalled ≤ reached and converted(i) ≤ reached(i+1).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from api.rows import STEP_BITS, FunnelRow, bucket_value, journey_rows

MAX_GROUPS = 100
OTHER = "(other)"
NONE = "(none)"


class Tally:
    """Funnel counters of one group of customers."""

    __slots__ = ("ends", "stages", "stalled", "starts", "steps")

    def __init__(self, stages: int) -> None:
        self.stages = stages
        self.starts = [0] * (stages + 1)  # customers whose counted run starts at stage i
        self.ends = [0] * (stages + 1)  # … and ends before stage i
        self.stalled = [0] * stages
        self.steps: list[int] = []  # per converted customer and stage: api.rows.step_key

    @property
    def customers(self) -> int:
        """Customers counted at one stage at least."""
        return sum(self.starts)

    @property
    def reached(self) -> list[int]:
        """Customers counted at each stage."""
        counts, inside = [], 0
        for i in range(self.stages):
            inside += self.starts[i] - self.ends[i]
            counts.append(inside)
        return counts

    def histograms(self) -> list[list[tuple[int, int]]]:
        """Per stage, the sorted ``(duration bucket, customers)`` of the time to the next."""
        found: list[list[tuple[int, int]]] = [[] for _ in range(self.stages)]
        mask = (1 << STEP_BITS) - 1
        for key, count in sorted(Counter(self.steps).items()):
            found[key >> STEP_BITS].append((key & mask, count))
        return found

    def add(self, rows: Iterable[FunnelRow], since: int, until: int, stalled_before: int) -> None:
        """Count rows: see the module docstring for the definitions."""
        starts, ends, stalled, last = self.starts, self.ends, self.stalled, self.stages - 1
        keep, low_of, high_of = self.steps.extend, bisect_left, bisect_right
        for row in rows:
            times = row.reached
            # effective times never decrease: the stages in the window are one run [low, high)
            low, high = low_of(times, since), high_of(times, until)
            if low < high:
                starts[low] += 1
                ends[high] += 1
                if high - low > 1:  # reached stages low + 1 … high - 1 by `until` as well
                    keep(row.steps[low : high - 1])
                current = row.current
                if current == high - 1 and current < last and times[current] < stalled_before:
                    stalled[current] += 1

    def merge(self, other: Tally) -> None:
        """Fold another group's counters into this one."""
        for i in range(self.stages + 1):
            self.starts[i] += other.starts[i]
            self.ends[i] += other.ends[i]
        for i in range(self.stages):
            self.stalled[i] += other.stalled[i]
        self.steps.extend(other.steps)


ACCOUNT = "account."  # group_by by an account trait: the rows come grouped (add_group)


def group_of(group_by: str) -> Callable[[FunnelRow], str]:
    """The grouping key: first-touch ``channel`` or ``campaign``, or ``trait.<name>``
    (``account.<name>`` groups are known by customer id, not by row: see ``add_group``)."""
    if group_by == "channel":
        return lambda row: row.channel or NONE
    if group_by == "campaign":
        return lambda row: row.campaign or NONE
    name = group_by.removeprefix("trait.")
    return lambda row: text(row.traits.get(name))


def text(value: object) -> str:
    """A trait value as a group name (JSON spelling for non-strings)."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Funnel:
    """The funnel over all rows added, and per group when ``group_by`` is given (the largest
    :data:`MAX_GROUPS` groups; the rest summed up as ``(other)``)."""

    def __init__(
        self,
        stages: Sequence[str],
        since: int,
        until: int,
        stalled_before: int,
        group_by: str | None = None,
        journey: str = "all",
    ) -> None:
        self.stages = tuple(stages)
        self.window = (since, until, stalled_before)
        self.group_by = group_by
        self.journey = journey
        self._key: Callable[[FunnelRow], str] | None = None
        if group_by is not None and not group_by.startswith(ACCOUNT):
            self._key = group_of(group_by)
        self.groups: dict[str, Tally] = {}

    def add(self, rows: Iterable[FunnelRow]) -> None:
        """Count more rows (each customer once; each journey once for ``journey``)."""
        if self.journey != "all":
            rows = journey_rows(list(rows), self.journey)
        if self._key is None:
            self._tally("all").add(rows, *self.window)
            return
        members: dict[str, list[FunnelRow]] = {}
        key = self._key
        for row in rows:
            group = key(row)
            if group in members:
                members[group].append(row)
            else:
                members[group] = [row]
        for group, chunk in members.items():
            self._tally(group).add(chunk, *self.window)

    def add_group(self, group: str, rows: Iterable[FunnelRow]) -> None:
        """Count more rows of one group the caller determined (``account.<name>``)."""
        if self.journey != "all":
            rows = journey_rows(list(rows), self.journey)
        self._tally(group).add(rows, *self.window)

    def _tally(self, group: str) -> Tally:
        found = self.groups.get(group)
        if found is None:
            found = self.groups[group] = Tally(len(self.stages))
        return found

    def answer(self) -> dict[str, Any]:
        """``{customers, stages: [...], groups: [{group, customers, stages}] | None}``; a
        group without a customer counted in the window is left out."""
        overall = Tally(len(self.stages))
        for one in self.groups.values():
            overall.merge(one)
        answer: dict[str, Any] = {
            "customers": overall.customers,
            "stages": figures(self.stages, overall),
            "groups": None,
        }
        if self.group_by is not None:
            ranked = sorted(
                ((name, one) for name, one in self.groups.items() if one.customers),
                key=lambda item: (-item[1].customers, item[0]),
            )
            shown = ranked[:MAX_GROUPS]
            if len(ranked) > MAX_GROUPS:
                other = Tally(len(self.stages))
                for _, one in ranked[MAX_GROUPS:]:
                    other.merge(one)
                shown.append((OTHER, other))
            answer["groups"] = [
                {"group": name, "customers": one.customers, "stages": figures(self.stages, one)}
                for name, one in shown
            ]
        return answer


def funnel(
    rows: Iterable[FunnelRow],
    stages: Sequence[str],
    since: int,
    until: int,
    stalled_before: int,
    group_by: str | None = None,
    journey: str = "all",
) -> dict[str, Any]:
    """:class:`Funnel` over ``rows`` in one call."""
    counter = Funnel(stages, since, until, stalled_before, group_by, journey)
    counter.add(rows)
    return counter.answer()


def figures(stages: Sequence[str], counts: Tally) -> list[dict[str, Any]]:
    """Per stage: reached, stalled, conversion to the next stage, time to it (seconds)."""
    out = []
    reached, histograms = counts.reached, counts.histograms()
    for i, stage in enumerate(stages):
        last = i + 1 == len(stages)
        histogram = histograms[i]
        converted = sum(count for _, count in histogram)
        out.append(
            {
                "stage": stage,
                "reached": reached[i],
                "stalled": counts.stalled[i],
                "next_stage": None if last else stages[i + 1],
                "converted_to_next": None if last else converted,
                "conversion_to_next": None if last else ratio(converted, reached[i]),
                "median_seconds_to_next": _seconds(percentile(histogram, 0.5)),
                "p90_seconds_to_next": _seconds(percentile(histogram, 0.9)),
            }
        )
    return out


def percentile(histogram: Sequence[tuple[int, int]], fraction: float) -> float | None:
    """The ``fraction`` quantile (ms) of durations counted as sorted ``(bucket, count)``
    pairs, interpolating linearly between the two nearest ranks (the median of an even
    count is the mean of the middle two); within 0.25 % of the exact value."""
    total = sum(count for _, count in histogram)
    if not total:
        return None
    position = fraction * (total - 1)
    low = int(position)
    below = _at_rank(histogram, low)
    above = _at_rank(histogram, min(low + 1, total - 1))
    return below + (above - below) * (position - low)


def _at_rank(histogram: Sequence[tuple[int, int]], rank: int) -> float:
    seen = 0
    for bucket, count in histogram:
        seen += count
        if seen > rank:
            return bucket_value(bucket)
    return bucket_value(histogram[-1][0])


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def ratio(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 6 places; None when ``whole`` is 0."""
    return round(part / whole, 6) if whole else None
