"""How customers move: from their first-touch channel into the stages, and stage to stage,
split by the channel whose event moved them (a Sankey diagram's links). Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

FIRST_TOUCH = "first touch"
UNKNOWN = "(unknown)"


def flows(
    rows: Iterable[Sequence[Any]],
    stages: Sequence[str],
    channel: str | None = None,
    campaign: str | None = None,
) -> dict[str, Any]:
    """Links ``{source, target, channel, customers}`` over stored funnel rows.

    A customer's path is its stages in the order it entered them (model order on ties); the
    first link goes from ``first touch: <channel>`` to its first stage, each next one from a
    stage to the stage after it, labelled with the channel of the event that entered it.
    """
    order = {stage: index for index, stage in enumerate(stages)}
    links: Counter[tuple[str, str, str]] = Counter()
    customers = 0
    for row in rows:
        first_channel, first_campaign, entered = row[0], row[1], row[2]
        if (channel is not None and first_channel != channel) or (
            campaign is not None and first_campaign != campaign
        ):
            continue
        path = sorted((s for s in entered if s in order), key=lambda s: (entered[s], order[s]))
        if not path:
            continue
        customers += 1
        by = row[6] if len(row) > 6 and isinstance(row[6], dict) else {}
        source = f"{FIRST_TOUCH}: {first_channel or UNKNOWN}"
        for stage in path:
            links[(source, stage, str(by.get(stage) or UNKNOWN))] += 1
            source = stage
    return {
        "customers": customers,
        "links": [
            {"source": s, "target": t, "channel": c, "customers": n}
            for (s, t, c), n in sorted(links.items(), key=lambda item: (-item[1], item[0]))
        ],
    }
