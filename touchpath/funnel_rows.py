"""The compact funnel row of a profile, as the resolver stores it and the API reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from touchpath.cycles import (
    journey_times,
)


def funnel_row(profile: Mapping[str, Any], persona: Sequence[str] = ()) -> list[Any]:
    """The compact row the funnel reads per customer.

    ``[first channel, first campaign, {stage: entered ms}, short traits, revenue, first ms,
    {stage: channel it was entered by}, lifecycle]``; the short traits are at most 20 (values
    of at most 64 characters), the ``persona`` traits first, then the others by name; the
    lifecycle part is :func:`touchpath.cycles.journey_times` (latest activity, first and
    repeat journeys).
    """
    touch = profile.get("first_touch") or {}
    return [
        touch.get("channel"),
        touch.get("campaign"),
        {stage: entry[0] for stage, entry in profile["history"].items()},
        short_traits(profile.get("traits", {}), persona),
        profile.get("revenue", 0.0),
        touch.get("at_ms"),
        {stage: entry[2] for stage, entry in profile["history"].items()},
        journey_times(profile),
    ]


def short_traits(traits: Mapping[str, Any], persona: Sequence[str] = ()) -> dict[str, Any]:
    """The traits a funnel row keeps: scalar values of at most 64 characters, the
    ``persona`` traits first, 20 at most."""
    scalar = str | int | float | bool
    short = {k: v for k, v in traits.items() if isinstance(v, scalar) and len(str(v)) <= 64}
    first = {k: short[k] for k in persona if k in short}
    rest = (item for item in short.items() if item[0] not in first)
    return {**first, **dict(list(rest)[: max(0, 20 - len(first))])}


def current_entry(profile: Mapping[str, Any]) -> tuple[str, int, str] | None:
    """(stage, entered at ms, messageId) of a profile's current stage."""
    stage = profile.get("stage")
    if not stage:
        return None
    at_ms, message_id = profile["history"][stage][:2]
    return stage, at_ms, message_id
