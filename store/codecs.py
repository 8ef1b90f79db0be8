"""The byte formats of what the store holds, each as one encoder and one typed decoder.

A funnel row (``P:funnel``: customer id → row) is stored as a JSON array, by position:
``[first channel, first campaign, {stage: entered ms}, short traits, revenue, first ms,
{stage: channel it was entered by}, lifecycle]`` (:func:`touchpath.funnel_rows.funnel_row`
builds it). Rows written by older versions stop after the short traits, the revenue, the
first ms or the entry channels: the missing trailing elements decode to their empty values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from touchpath.funnel_rows import funnel_row


class StoredFunnelRow(NamedTuple):
    """One customer's funnel row as stored, by name."""

    channel: Any  # first-touch channel (a string, or None)
    campaign: Any  # first-touch UTM campaign (a string, or None)
    entered: dict[str, Any]  # stage → entered ms
    traits: dict[str, Any]  # short traits ({} when the stored value is not an object)
    revenue: float  # revenue of the customer's order events (0.0 when absent)
    first_ms: int | None  # first touch ms (None when absent)
    entered_by: dict[str, Any]  # stage → channel of the event that entered it ({} when absent)
    lifecycle: dict[str, Any]  # touchpath.cycles.journey_times ({} when absent)


def encode_funnel_row(profile: Mapping[str, Any], persona: Sequence[str] = ()) -> bytes:
    """The stored bytes of a profile's funnel row (``persona``: traits kept first)."""
    return orjson.dumps(funnel_row(profile, persona))


def decode_funnel_row(raw: bytes | str) -> StoredFunnelRow | None:
    """A stored funnel row by name (None when the bytes are not a row: not a JSON array of
    at least four elements whose third is an object)."""
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(row) is not list or len(row) < 4 or type(row[2]) is not dict:
        return None
    size = len(row)
    traits, revenue = row[3], row[4] if size > 4 else 0.0
    first = row[5] if size > 5 else None
    by = row[6] if size > 6 else None
    life = row[7] if size > 7 else None
    return StoredFunnelRow(
        row[0],
        row[1],
        row[2],
        traits if type(traits) is dict else {},
        float(revenue) if type(revenue) in (int, float) else 0.0,
        first if type(first) is int else None,
        by if type(by) is dict else {},
        life if type(life) is dict else {},
    )
