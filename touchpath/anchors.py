"""What the store holds under one identifier, decoded (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(slots=True)
class AnchorData:
    """What the store holds under one identifier (empty when it never anchored an event)."""

    stages: dict[str, str] = field(default_factory=dict)
    conditional: list[tuple[str, int]] = field(default_factory=list)
    counts: dict[str, str] = field(default_factory=dict)
    traits: dict[str, str] = field(default_factory=dict)
    first_touch: str = ""
    surveys: list[str] = field(default_factory=list)
    purchases: list[int] = field(default_factory=list)  # times of purchase events (bounded)
    days: dict[int, int] = field(default_factory=dict)  # active UTC day → its first event ms
    rules_version: str = ""  # the rules its candidates follow ("" if stored before versions)


def anchor_data(fields: Mapping[str, str]) -> AnchorData:
    """Decode the stored hash of an anchor (``s:``/``c:``/``t:`` prefixed fields)."""
    data = AnchorData()
    for name, value in fields.items():
        kind, _, rest = name.partition(":")
        if kind == "s":
            data.stages[rest] = value
        elif kind == "c":
            data.counts[rest] = value
        elif kind == "t":
            data.traits[rest] = value
        elif kind == "v":
            data.surveys.append(value)
        elif name == "ft":
            data.first_touch = value
        elif name == "rv":
            data.rules_version = value
        elif name in ("first", "last", "cond"):
            data.counts[name] = value
    return data
