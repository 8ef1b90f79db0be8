"""Re-derive the customers of touched clusters and write them with optimistic concurrency.

For a chunk of clusters: WATCH their version keys, read their identifiers, ties, anchors and
last profiles, derive the new profiles with the pure core, then write profiles, look-ups,
stage indexes and stage-change outbox entries in one MULTI/EXEC. If another processor changed
any of those clusters in between, EXEC fails and the chunk is derived again from fresh data,
so concurrent instances can never write a merge computed from stale state.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from redis.client import Pipeline

from processor.store import ClusterState, JourneyStore
from touchpath.identity import IdentityPolicy
from touchpath.journey import derive_profiles, funnel_row, stage_changes
from touchpath.keys import Keys
from touchpath.stages import StageModel

log = logging.getLogger(__name__)
CHUNK = 200
MAX_ATTEMPTS = 50


@dataclass(slots=True)
class ResolveReport:
    """What a resolution pass changed."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    merges: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    resolved: int = 0


class Resolver:
    """Derives and stores customer profiles for clusters whose inputs changed."""

    def __init__(self, store: JourneyStore, model: StageModel, policy: IdentityPolicy) -> None:
        self.store = store
        self.model = model
        self.policy = policy

    def resolve(self, clusters: Iterable[str]) -> ResolveReport:
        """Resolve every given cluster; returns the stage changes announced."""
        report = ResolveReport()
        pending = sorted(set(c for c in clusters if c))
        report.resolved = len(pending)
        for start in range(0, len(pending), CHUNK):
            self._resolve_chunk(pending[start : start + CHUNK], report)
        return report

    def _resolve_chunk(self, chunk: Sequence[str], report: ResolveReport) -> None:
        keys = self.store.keys
        for _ in range(MAX_ATTEMPTS):
            with self.store.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*(keys.cluster(c, "ver") for c in chunk))
                    partial = self._derive_chunk(pipe, chunk)
                    pipe.execute()
                except redis.WatchError:
                    report.retries += 1
                    continue
            report.changes.extend(partial.changes)
            report.merges += partial.merges
            report.refused.update(partial.refused)
            return
        raise RuntimeError(f"could not resolve {len(chunk)} clusters after {MAX_ATTEMPTS} tries")

    def _derive_chunk(self, pipe: Pipeline, chunk: Sequence[str]) -> ResolveReport:
        """Read (after WATCH), derive with the pure core, queue the writes (MULTI)."""
        states = self.store.read_clusters(chunk)
        anchors = self.store.read_anchors(i for state in states for i in state.first_seen)
        derived = [
            (state, derive_profiles(state.first_seen, state.ties, anchors, self.model, self.policy))
            for state in states
        ]
        announced = self.store.read_announced(cid for _, new in derived for cid in new)
        pipe.multi()
        report = ResolveReport()
        for state, new in derived:
            changes = stage_changes(state.profiles, new, self.model, announced)
            _count(state.profiles, new, report)
            report.changes.extend(changes)
            self._write(pipe, state, state.profiles, new, changes)
        return report

    def _write(
        self,
        pipe: Pipeline,
        state: ClusterState,
        old: dict[str, dict[str, Any]],
        new: dict[str, dict[str, Any]],
        changes: list[dict[str, Any]],
    ) -> None:
        keys = self.store.keys
        snap = keys.cluster(state.cluster, "snap")
        for cid, profile in old.items():
            if cid not in new:
                pipe.delete(keys.customer(cid))
                pipe.hdel(snap, cid)
                pipe.hdel(keys.funnel, cid)
                pipe.hdel(keys.surveys, cid)
                if profile.get("stage"):
                    pipe.zrem(keys.stage(profile["stage"]), cid)
                for stage in profile["history"]:
                    pipe.zrem(keys.reached(stage), cid)
        for cid, profile in new.items():
            before = old.get(cid)
            if before == profile:
                continue
            blob = orjson.dumps(profile)
            pipe.set(keys.customer(cid), blob)
            pipe.hset(snap, cid, blob)
            known = set(before["identities"]) if before else set()
            for identity in profile["identities"]:
                if identity not in known:
                    pipe.set(keys.customer_of(identity), cid)
            _index_stage(pipe, keys, cid, before, profile)
            pipe.hset(keys.funnel, cid, orjson.dumps(funnel_row(profile)))
            if profile["surveys"]:
                pipe.hset(keys.surveys, cid, orjson.dumps(profile["surveys"]))
            elif before and before.get("surveys"):
                pipe.hdel(keys.surveys, cid)
        for change in changes:
            encoded = orjson.dumps(change)
            pipe.xadd(keys.outbox, {"change": encoded})
            # webhook fan-out reads its own copy (the Kafka publisher deletes what it sent)
            pipe.xadd(keys.webhook_outbox, {"change": encoded}, maxlen=100_000, approximate=True)
            pipe.publish(keys.live_changes, encoded)  # for live SSE listeners
            entry = [change["to"], change["at_ms"], change["message_id"]]
            pipe.hset(keys.announced, change["customer_id"], orjson.dumps(entry))


def _index_stage(
    pipe: Pipeline, keys: Keys, cid: str, before: dict[str, Any] | None, profile: dict[str, Any]
) -> None:
    """Update the stage indexes, writing only entries that changed."""
    old_history = before["history"] if before else {}
    history = profile["history"]
    old_stage = before.get("stage") if before else None
    stage = profile.get("stage")
    if old_stage and old_stage != stage:
        pipe.zrem(keys.stage(old_stage), cid)
    if stage and (stage != old_stage or old_history.get(stage) != history[stage]):
        pipe.zadd(keys.stage(stage), {cid: history[stage][0]})
    for gone in set(old_history) - set(history):
        pipe.zrem(keys.reached(gone), cid)
    for reached, entry in history.items():
        if old_history.get(reached) != entry:
            pipe.zadd(keys.reached(reached), {cid: entry[0]})


def _count(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], report: ResolveReport
) -> None:
    """Merges (old customers folded into one) and newly refused ties, for metrics."""
    owner = {i: cid for cid, p in old.items() for i in p["identities"]}
    known_refusals = {tuple(r["identifiers"]) for p in old.values() for r in p["refused_ties"]}
    for profile in new.values():
        sources = {owner[i] for i in profile["identities"] if i in owner}
        report.merges += max(0, len(sources) - 1)
        for refusal in profile["refused_ties"]:
            if tuple(refusal["identifiers"]) not in known_refusals:
                report.refused[refusal.get("kind") or "unknown"] += 1
                known_refusals.add(tuple(refusal["identifiers"]))
