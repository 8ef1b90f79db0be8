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
    """Decode the stored hash of an anchor (``s:``/``c:``/``t:``/``v:``/``d:`` prefixed
    fields; ``d:<day>`` is an active UTC day → its first event's ms)."""
    data = AnchorData()
    stages, counts, traits, surveys = data.stages, data.counts, data.traits, data.surveys
    for name, value in fields.items():
        # the kind is what comes before the first colon: only one-letter kinds are read
        kind = name[0] if name[1:2] == ":" or len(name) == 1 else ""
        if kind == "s":
            stages[name[2:]] = value
        elif kind == "c":
            counts[name[2:]] = value
        elif kind == "t":
            traits[name[2:]] = value
        elif kind == "v":
            surveys.append(value)
        elif kind == "d":
            data.days[int(name[2:])] = int(value)
        elif name == "ft":
            data.first_touch = value
        elif name == "rv":
            data.rules_version = value
        elif name in ("first", "last", "cond"):
            data.counts[name] = value
    return data
