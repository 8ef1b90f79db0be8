"""Compact funnel rows, decoded once: what /v1/funnel and /v1/metrics compute over.

The processor keeps one row per customer in the ``P:funnel`` hash, decoded by
:func:`store.codecs.decode_funnel_row` (first touch, stage entry times, short traits, revenue,
entry channels and the lifecycle part: the latest activity and the stage times of the first
and repeat journeys, :func:`touchpath.cycles.journey_times`).
:class:`RowCache` turns each into a :class:`FunnelRow` and remembers it *by its raw bytes*,
so a read of the whole hash decodes only the rows that changed since the previous read; an
unchanged row costs one dictionary look-up. Answers are therefore always computed from the
current hash, never from a stale copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise, repeat
from typing import Any, NamedTuple

from store.codecs import decode_funnel_row

MAX_CACHED_ROWS = 1_000_000  # beyond this many customers, rows are decoded on every read
NEVER = 1 << 62  # the entry time of a stage not reached: after every real time
BUCKET_RATIO = 1.005
_LOG_RATIO = math.log(BUCKET_RATIO)
STEP_BITS = 20  # duration buckets stay below 2**20 (up to ~10**2000 ms)


class FunnelRow(NamedTuple):
    """One customer, as the funnel and the business figures need it."""

    channel: str | None  # first-touch channel
    campaign: str | None  # first-touch UTM campaign
    traits: dict[str, Any]  # short traits
    reached: tuple[int, ...]  # per model stage: effective entry ms or NEVER (effective_times)
    steps: tuple[int, ...]  # per stage i: step_key(i, duration_bucket(time to stage i + 1))
    current: int  # index of the furthest stage entered, -1 when none
    revenue: float  # revenue of the customer's order events
    first: int | None  # first seen (first touch) ms
    last: int | None  # latest activity: the first event of the latest active day (or entry)
    #: The first journey when a later cycle cut it short (None: the row itself), and the
    #: repeat journeys (touchpath/cycles.py), each a row with its own stage times.
    first_journey: Any = None
    repeat_journeys: tuple[Any, ...] = ()


def duration_bucket(ms: int) -> int:
    """A duration's bucket on a logarithmic scale (0 for under 1 ms; each bucket spans a
    factor :data:`BUCKET_RATIO`): percentiles read from bucket counts are within 0.25 %."""
    return 0 if ms < 1 else 1 + int(math.log(ms) / _LOG_RATIO)


def step_key(stage: int, bucket: int) -> int:
    """One int for (stage index, duration bucket): a flat list of them is counted at once."""
    return stage << STEP_BITS | bucket


def bucket_value(bucket: int) -> float:
    """The duration (ms) a bucket stands for: the geometric middle of its span."""
    return 0.0 if bucket <= 0 else BUCKET_RATIO ** (bucket - 0.5)


def effective_times(times: Mapping[str, int], stages: Sequence[str]) -> tuple[int, ...]:
    """For each stage, when the customer first was *at or beyond* it: the earliest entry of
    that stage or of any later one (:data:`NEVER` if none). A customer who reached a later
    stage has passed every earlier one, so these times never decrease along the stages."""
    return _walk(times, stages)[0]


def _walk(times: Mapping[str, Any], stages: Sequence[str]) -> tuple[tuple[int, ...], int]:
    """Effective times, and the index of the furthest stage entered (-1 when none)."""
    found = [NEVER] * len(stages)
    best, current = NEVER, -1
    for i in range(len(stages) - 1, -1, -1):
        at = times.get(stages[i])
        if at is not None and type(at) is int:
            if current < 0:
                current = i
            if at < best:
                best = at
        found[i] = best
    return tuple(found), current


def parse_row(raw: bytes | str, stages: Sequence[str]) -> FunnelRow | None:
    """Decode one stored row (None when it is not a row)."""
    stored = decode_funnel_row(raw)
    if stored is None:
        return None
    times = stored.entered
    reached, current = _walk(times, stages)
    entered = [at for at in times.values() if type(at) is int]
    first = stored.first_ms if stored.first_ms is not None else min(entered, default=None)
    life = stored.lifecycle
    active = life.get("active")
    known: list[int] = [*entered, *([active] if type(active) is int else [])]
    parsed = _row(
        (
            stored.channel,
            stored.campaign,
            stored.traits,
            reached,
            _steps(reached),
            current,
            stored.revenue,
            first,
            None if first is None else max([first, *known]),
            None,
            (),
        )
    )
    return _with_journeys(parsed, life, stages) if "repeat" in life else parsed


def _steps(reached: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(
        step_key(i, duration_bucket(b - a))
        for i, (a, b) in enumerate(pairwise(reached))
        if b != NEVER
    )


def _with_journeys(row: FunnelRow, life: Mapping[str, Any], stages: Sequence[str]) -> FunnelRow:
    """The row with its first journey and repeat journeys as rows of their own: only the
    latest journey can still be stalled (the others were followed by a later cycle)."""
    journeys = [t for t in (life.get("first"), *life.get("repeat", ())) if type(t) is dict]
    views = []
    for k, times in enumerate(journeys):
        reached, current = _walk(times, stages)
        latest = k == len(journeys) - 1
        views.append(
            row._replace(reached=reached, steps=_steps(reached), current=current if latest else -1)
        )
    if not views:
        return row
    return row._replace(first_journey=views[0], repeat_journeys=tuple(views[1:]))


def journey_rows(rows: list[FunnelRow], journey: str) -> list[FunnelRow]:
    """The rows a funnel of ``journey`` counts: ``all`` the customers' rows; ``first`` each
    customer's first journey; ``repeat`` every repeat journey (a customer may have several)."""
    if journey == "first":
        return [r.first_journey or r for r in rows]
    if journey == "repeat":
        return [j for r in rows for j in r.repeat_journeys]
    return rows


_row = FunnelRow._make


class RowCache:
    """Decoded rows by raw value, kept between reads of the ``P:funnel`` hash."""

    def __init__(self, stages: Sequence[str], max_rows: int = MAX_CACHED_ROWS) -> None:
        self.stages = tuple(stages)
        self.max_rows = max_rows
        self._rows: dict[bytes, FunnelRow | None] = {}

    def scan(self) -> RowScan:
        """Start decoding one complete read of the hash."""
        return RowScan(self)


class RowScan:
    """One read of the hash (its values), decoded chunk by chunk."""

    def __init__(self, cache: RowCache) -> None:
        self.cache = cache
        self.raws: list[bytes] = []
        self.decoded = 0

    def add(self, raws: Sequence[bytes]) -> list[FunnelRow]:
        """The rows of some raw values, decoding only those the cache does not hold."""
        rows = self.cache._rows
        found: list[Any] = list(map(rows.get, raws, repeat(_MISSING)))  # look-ups in C
        if _MISSING in found:
            stages = self.cache.stages
            for i, row in enumerate(found):
                if row is _MISSING:
                    found[i] = rows[raws[i]] = parse_row(raws[i], stages)
                    self.decoded += 1
        self.raws.extend(raws)
        return [row for row in found if row is not None] if None in found else found

    def finish(self) -> None:
        """End the read: the cache then keeps only the rows it found."""
        rows, current = self.cache._rows, self.raws
        if len(current) > self.cache.max_rows:
            self.cache._rows = {}
        elif len(rows) > len(current) * 3 // 2 + 1000:  # drop superseded rows
            self.cache._rows = {raw: rows[raw] for raw in current}


_MISSING: Any = object()
