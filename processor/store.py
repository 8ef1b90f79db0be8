"""The journey store in Redis: key layout, the atomic per-event script, cluster reads/writes.

Layout (``P`` is the configured prefix):

* ``P:a:<identifier>:{seen,journey,data,cond}`` — contributions of the events anchored at an
  identifier: de-duplication set, timeline, counters/stage candidates/traits, gated candidates.
* ``P:id:<identifier>`` → raw cluster id; ``P:cl:<cluster>:{ids,ties,ver,snap}`` — the raw
  identity cluster (every identifier ever tied together), its ties, a version bumped on every
  identity or stage change, and the customer profiles last derived from it.
* ``P:cust:<customer>`` → profile JSON; ``P:idc:<identifier>`` → customer id;
  ``P:stage:<stage>`` → customers *currently* in a stage by time entered;
  ``P:reached:<stage>`` → customers who ever reached it; ``P:funnel`` → customer id → compact
  funnel row (first touch, stage times, short traits); ``P:outbox`` → stream of stage changes
  waiting to be published to Kafka; ``P:announced`` → customer id → the stage entry last
  announced for it (never deleted, so an entry is not announced twice).
* ``P:erasures`` exists once anything was erased; ``P:erased:<identifier>`` → epoch ms of an
  erasure: events *received* before it (replays)
  are ignored, later ones start a new customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis

from touchpath.journey import AnchorData, EventEffects, anchor_data
from touchpath.keys import Keys


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of applying one event."""

    new: bool
    cluster: str
    needs_resolution: bool


@dataclass(slots=True)
class ClusterState:
    """A raw cluster as read for resolution."""

    cluster: str
    version: int
    first_seen: dict[str, str]
    ties: dict[str, str]
    profiles: dict[str, dict[str, Any]]


def _script_source() -> str:
    return resources.files("processor").joinpath("ingest.lua").read_text()


class JourneyStore:
    """Reads and writes the journey store; every method is one or two pipelined round trips."""

    def __init__(self, client: redis.Redis, prefix: str, journey_cap: int) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.journey_cap = journey_cap
        self._ingest = client.register_script(_script_source())

    def apply(self, effects: Sequence[EventEffects], chunk: int = 200) -> list[Applied]:
        """Run the apply script over the events, ``chunk`` per call, pipelined."""
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(effects), chunk):
            args: list[Any] = [self.keys.prefix, self.journey_cap]
            for effect in effects[start : start + chunk]:
                args.extend(_script_args(effect))
            self._ingest(args=args, client=pipe)
        flat = [value for result in pipe.execute() for value in result]
        return [
            Applied(bool(flat[i]), _text(flat[i + 1]), bool(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    def read_clusters(self, clusters: Sequence[str]) -> list[ClusterState]:
        """Versions, identifiers, ties and last profiles of clusters (missing ones skipped)."""
        pipe = self.client.pipeline(transaction=False)
        for cluster in clusters:
            pipe.get(self.keys.cluster(cluster, "ver"))
            pipe.hgetall(self.keys.cluster(cluster, "ids"))
            pipe.hgetall(self.keys.cluster(cluster, "ties"))
            pipe.hgetall(self.keys.cluster(cluster, "snap"))
        raw = pipe.execute()
        states = []
        for index, cluster in enumerate(clusters):
            version, ids, ties, snap = raw[index * 4 : index * 4 + 4]
            if not ids:
                continue
            states.append(
                ClusterState(
                    cluster,
                    int(version or 0),
                    _decode_map(ids),
                    _decode_map(ties),
                    {_text(k): orjson.loads(v) for k, v in snap.items()},
                )
            )
        return states

    def read_anchors(self, identifiers: Iterable[str]) -> dict[str, AnchorData]:
        """Stage candidates of the given identifiers (only those that anchored events)."""
        wanted = sorted(set(identifiers))
        pipe = self.client.pipeline(transaction=False)
        for identifier in wanted:
            pipe.hgetall(self.keys.anchor(identifier, "data"))
        found = {
            i: anchor_data(_decode_map(d)) for i, d in zip(wanted, pipe.execute(), strict=True) if d
        }
        gated = [i for i, data in found.items() if data.counts.get("cond")]
        if gated:
            pipe = self.client.pipeline(transaction=False)
            for identifier in gated:
                pipe.zrange(self.keys.anchor(identifier, "cond"), 0, -1, withscores=True)
            for identifier, members in zip(gated, pipe.execute(), strict=True):
                found[identifier].conditional = [(_text(m), int(s)) for m, s in members]
        return found

    def read_announced(self, customer_ids: Iterable[str]) -> dict[str, list[Any]]:
        """The entry last announced for each customer id (absent when none)."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        values = self.client.hmget(self.keys.announced, wanted)
        return {cid: orjson.loads(v) for cid, v in zip(wanted, values, strict=True) if v}


def _script_args(effect: EventEffects) -> tuple[Any, ...]:
    fields: dict[str, Any] = {
        "ids": effect.identifiers,
        "tie": effect.tie or "",
        "counts": effect.counts,
        "revenue": effect.revenue,
        "stages": effect.stages,
        "cond": effect.conditional,
        "traits": effect.traits,
        "first_touch": effect.first_touch,
    }
    if effect.surveys:
        fields["surveys"] = effect.surveys
    payload = orjson.dumps(fields)
    return (
        effect.anchor,
        effect.message_id,
        effect.at_ms,
        effect.order,
        effect.entry,
        effect.received_ms,
        payload,
    )


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _decode_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}
