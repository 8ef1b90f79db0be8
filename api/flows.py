"""How customers move: from their first-touch channel into the stages, and stage to stage,
split by the channel whose event moved them (a Sankey diagram's links). Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from api.selection import Selection
from store.codecs import StoredFunnelRow

FIRST_TOUCH = "first touch"
UNKNOWN = "(unknown)"
EVERYONE = Selection()


def flows(
    rows: Iterable[StoredFunnelRow],
    stages: Sequence[str],
    selection: Selection = EVERYONE,
    since: int | None = None,
    until: int | None = None,
) -> dict[str, Any]:
    """Links ``{source, target, channel, customers}`` over stored funnel rows.

    A customer's path is its stages in the order it entered them (model order on ties); the
    first link goes from ``first touch: <channel>`` to its first stage, each next one from a
    stage to the stage after it, labelled with the channel of the event that entered it. A
    link counts when its target stage was entered in ``[since, until]`` (either end open when
    None); ``customers`` counts the selected customers with a link counted.
    """
    order = {stage: index for index, stage in enumerate(stages)}
    links: Counter[tuple[str, str, str]] = Counter()
    customers = 0
    for row in selection.stored(rows):
        entered, by = row.entered, row.entered_by
        path = sorted((s for s in entered if s in order), key=lambda s: (entered[s], order[s]))
        source, counted = f"{FIRST_TOUCH}: {row.channel or UNKNOWN}", False
        for stage in path:
            at = entered[stage]
            if (since is None or at >= since) and (until is None or at <= until):
                links[(source, stage, str(by.get(stage) or UNKNOWN))] += 1
                counted = True
            source = stage
        customers += counted
    return {
        "customers": customers,
        "links": [
            {"source": s, "target": t, "channel": c, "customers": n}
            for (s, t, c), n in sorted(links.items(), key=lambda item: (-item[1], item[0]))
        ],
    }
