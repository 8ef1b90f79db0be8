"""Re-derive the customers of touched clusters and write them with optimistic concurrency.

For a chunk of clusters: read their versions, identifiers, ties, anchors and last profiles
(one script call), derive the new profiles with the pure core, then write profiles, look-ups,
stage indexes and stage-change outbox entries with a second script that applies a cluster's
commands only if its version is still the one read, bumping it (compare-and-swap, atomic per
cluster). A cluster another processor changed or wrote in between is derived again from fresh
data, so concurrent instances can never write a merge computed from stale state, nor announce
one change twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from processor.store import ClusterState, ClusterWrite, JourneyStore
from processor.triggers import schedule as schedule_triggers
from store.codecs import StoredAnnounced, encode_announced, encode_funnel_row, encode_profile
from store.keys import ClusterFields, Keys
from touchpath.announcements import announced_record, stage_changes
from touchpath.cycles import DEFAULT_LAPSE_DAYS
from touchpath.identity import IdentityPolicy
from touchpath.profiles import derive_profiles
from touchpath.stages import StageModel
from touchpath.triggers import TriggerModel

log = logging.getLogger(__name__)
CHUNK = 200
MAX_ATTEMPTS = 50
LIVE_KEPT = 10_000  # latest stage changes kept for SSE clients resuming with Last-Event-ID


@dataclass(slots=True)
class ResolveReport:
    """What a resolution pass changed."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    merges: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    resolved: int = 0
    stale: int = 0  # clusters whose write was refused: their version moved since the read


class Resolver:
    """Derives and stores customer profiles for clusters whose inputs changed."""

    def __init__(
        self,
        store: JourneyStore,
        model: StageModel,
        policy: IdentityPolicy,
        chunk: int = CHUNK,
        triggers: TriggerModel | None = None,
        lapse_days: int = DEFAULT_LAPSE_DAYS,
        unversioned: str | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.policy = policy
        self.chunk = chunk  # clusters per read/write script call
        self.triggers = triggers or TriggerModel()  # issue #21: timers follow the profiles
        self.lapse_days = lapse_days  # issue #21: the lifecycle's lapse (touchpath/cycles.py)
        #: the rules version of anchors stored before versions existed (None: the current)
        self.unversioned = model.version if unversioned is None else unversioned
        self.announce = True  # False: stage changes are recorded as told, not published
        self.reevaluated = 0  # anchors rewritten under the current rules so far

    def resolve(self, clusters: Iterable[str]) -> ResolveReport:
        """Resolve every given cluster; returns the stage changes announced.

        Chunks are pipelined on an I/O thread: the next chunk is read and the previous one
        written while this one is derived, so Redis and Python work at once. Clusters whose
        write found them changed meanwhile are derived again from fresh data."""
        report = ResolveReport()
        pending = sorted(set(c for c in clusters if c))
        report.resolved = len(pending)
        size = self.chunk
        chunks = [pending[start : start + size] for start in range(0, len(pending), size)]
        stale: list[str] = []
        with ThreadPoolExecutor(1, thread_name_prefix="resolver-io") as io:  # waits on exit
            reads = [io.submit(self.store.read_clusters, chunk) for chunk in chunks[:1]]
            writes = []
            for k in range(len(chunks)):
                states = reads[k].result()
                if k + 1 < len(chunks):
                    reads.append(io.submit(self.store.read_clusters, chunks[k + 1]))
                planned, redo = self._derive(states)
                stale += redo
                writes.append((planned, io.submit(self.store.write_clusters, _writes(planned))))
            for planned, done in writes:
                stale += self._settle(planned, done.result(), report)
        for start in range(0, len(stale), size):
            self._resolve_chunk(stale[start : start + size], report)
        return report

    def _resolve_chunk(self, chunk: Sequence[str], report: ResolveReport) -> None:
        pending = list(chunk)
        for _ in range(MAX_ATTEMPTS):
            report.retries += 1
            planned, redo = self._derive(self.store.read_clusters(pending))
            written = self.store.write_clusters(_writes(planned))
            pending = sorted({*self._settle(planned, written, report), *redo})
            if not pending:
                return
        raise RuntimeError(f"could not resolve {len(pending)} clusters after {MAX_ATTEMPTS} tries")

    @staticmethod
    def _settle(
        planned: Sequence[tuple[ClusterWrite, ResolveReport]],
        stale_writes: Sequence[ClusterWrite],
        report: ResolveReport,
    ) -> list[str]:
        """Count what landed; return the clusters that changed meanwhile, sorted."""
        stale = {w.cluster for w in stale_writes}
        report.stale += len(stale)
        for write, partial in planned:
            if write.cluster not in stale:
                report.changes.extend(partial.changes)
                report.merges += partial.merges
                report.refused.update(partial.refused)
        return sorted(stale)

    def _current(self, states: Sequence[ClusterState]) -> tuple[list[ClusterState], list[str]]:
        """The clusters whose anchors all follow the current rules, and the others, whose
        anchors are first re-evaluated (so that nobody is derived from candidates of stages
        the rules no longer have, and nobody is wiped while their events exist)."""
        version = self.model.version
        outdated = {
            state.cluster: [
                anchor
                for anchor, data in state.anchors.items()
                if (data.rules_version or self.unversioned) != version
            ]
            for state in states
        }
        anchors = [anchor for found in outdated.values() for anchor in found]
        if not anchors:
            return list(states), []
        self.reevaluated += self.store.reevaluate(anchors, self.model)
        return [s for s in states if not outdated[s.cluster]], sorted(
            cluster for cluster, found in outdated.items() if found
        )

    def _derive(
        self, states: Sequence[ClusterState]
    ) -> tuple[list[tuple[ClusterWrite, ResolveReport]], list[str]]:
        """Derive with the pure core and plan each cluster's writes; also returns the
        clusters to read again (their anchors were just re-evaluated)."""
        states, redo = self._current(states)
        derived = [
            (
                state,
                derive_profiles(
                    state.first_seen,
                    state.ties,
                    state.anchors,
                    self.model,
                    self.policy,
                    over=state.over,
                    blocked=state.blocked,
                    lapse_days=self.lapse_days,
                ),
            )
            for state in states
        ]
        stored = {cid: p for state, _ in derived for cid, p in state.profiles.items()}
        announced = self.store.read_announced(
            (cid for state, new in derived for cid in (*new, *state.profiles)), stored
        )
        _check_announced(announced)
        told = {cid: a.record for cid, a in announced.items()}
        planned = []
        for state, new in derived:
            partial = ResolveReport()
            partial.changes = stage_changes(state.profiles, new, self.model, told)
            _count(state.profiles, new, partial)
            write = ClusterWrite(state.cluster, state.version)
            self._write(write, state.profiles, new, partial.changes)
            _record_announced(write, self.store.keys, state.profiles, new, announced)
            planned.append((write, partial))
        return planned, redo

    def _write(
        self,
        write: ClusterWrite,
        old: dict[str, dict[str, Any]],
        new: dict[str, dict[str, Any]],
        changes: list[dict[str, Any]],
    ) -> None:
        keys = self.store.keys
        call = write.call
        cluster = keys.cluster(write.cluster)
        for cid, profile in old.items():
            if cid not in new:
                successor = _successor(profile, new)
                if successor:  # the former id still answers, with the current one
                    call("SET", keys.former(cid), successor)
                write.remove_customer(keys.prefix, cid, profile, self.triggers.names)
        for cid, profile in new.items():
            before = old.get(cid)
            if before == profile:
                continue
            call("SET", keys.customer(cid), encode_profile(profile))
            if before is None:  # the cluster lists the customer; its profile is P:cust
                call("HSET", cluster, ClusterFields.CUSTOMER + cid, "")
            known = set(before["identities"]) if before else set()
            for identity in profile["identities"]:
                if identity not in known:
                    call("SET", keys.customer_of(identity), cid)
            _index_stage(write, keys, cid, before, profile)
            _index_accounts(write, keys, cid, before, profile)
            persona = self.store.bounds.persona_traits
            call("HSET", keys.funnel, cid, encode_funnel_row(profile, persona))
            if profile["surveys"]:
                call("HSET", keys.surveys, cid, orjson.dumps(profile["surveys"]))
            elif before and before.get("surveys"):
                call("HDEL", keys.surveys, cid)
        schedule_triggers(call, keys, self.triggers, old, new)
        for change in changes if self.announce else ():
            encoded = orjson.dumps(change)
            call("XADD", keys.outbox, "*", "change", encoded)
            # webhook fan-out reads its own copy (the Kafka publisher deletes what it sent),
            # written while there are subscriptions
            call(
                "IFEXISTS",
                keys.webhooks("subs"),
                *("XADD", keys.webhook_outbox, "MAXLEN", "~", 100_000, "*", "change", encoded),
            )
            # the API's resumable SSE stream reads a capped stream of its own
            call("XADD", keys.live_changes, "MAXLEN", "~", LIVE_KEPT, "*", "change", encoded)


def _record_announced(
    write: ClusterWrite,
    keys: Keys,
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    announced: dict[str, StoredAnnounced],
) -> None:
    """Store, with the changes, every entry now announced per customer (when it differs):
    the short form for a customer whose profile this write stores (or keeps), the full
    record for one whose profile goes, so that an id coming back is never told twice."""
    for cid, profile in new.items():
        stored = announced.get(cid)
        record = announced_record(profile)
        if stored is None and not record:
            continue  # nothing announced, nothing to announce
        if stored is not None and stored.short and stored.matches and stored.record == record:
            continue  # its short form stands for this history already
        short = encode_announced(record, profile_stored=True)
        write.call("HSET", keys.announced, cid, short)
    for cid in sorted(old.keys() - new.keys()):
        gone = announced.get(cid)
        if gone is not None and gone.short:  # the profile it stood for is removed
            full = encode_announced(gone.record, profile_stored=False)
            write.call("HSET", keys.announced, cid, full)


def _check_announced(announced: dict[str, StoredAnnounced]) -> None:
    """Log the short forms that do not match the profile they stand for (a profile written
    without its record): the profile's history is taken as told."""
    odd = sorted(cid for cid, stored in announced.items() if not stored.matches)
    if odd:
        log.warning(
            "announced records not matching their profiles; their histories count as told",
            extra={"customers": odd[:10], "count": len(odd)},
        )


def _successor(profile: dict[str, Any], new: dict[str, dict[str, Any]]) -> str | None:
    """The new customer holding most of a vanished customer's identities (None: erased)."""
    mine = set(profile["identities"])
    shared = {cid: len(mine.intersection(p["identities"])) for cid, p in new.items()}
    best = max(sorted(shared), key=lambda cid: shared[cid], default=None)
    return best if best is not None and shared[best] else None


def _writes(planned: Sequence[tuple[ClusterWrite, ResolveReport]]) -> list[ClusterWrite]:
    return [write for write, _ in planned]


def _index_stage(
    write: ClusterWrite,
    keys: Keys,
    cid: str,
    before: dict[str, Any] | None,
    profile: dict[str, Any],
) -> None:
    """Update the stage indexes, writing only entries that changed."""
    old_history = before["history"] if before else {}
    history = profile["history"]
    old_stage = before.get("stage") if before else None
    stage = profile.get("stage")
    if old_stage and old_stage != stage:
        write.call("ZREM", keys.stage(old_stage), cid)
    if stage and (stage != old_stage or old_history.get(stage) != history[stage]):
        write.call("ZADD", keys.stage(stage), history[stage][0], cid)
    for gone in set(old_history) - set(history):
        write.call("ZREM", keys.reached(gone), cid)
    for reached, entry in history.items():
        if old_history.get(reached) != entry:
            write.call("ZADD", keys.reached(reached), entry[0], cid)


def _index_accounts(
    write: ClusterWrite,
    keys: Keys,
    cid: str,
    before: dict[str, Any] | None,
    profile: dict[str, Any],
) -> None:
    """Keep ``P:acct:<groupId>:members`` (and ``P:accounts``) in step with the accounts of a
    customer's profile (a customer that is gone leaves them in remove_customer.lua)."""
    old = set(before.get("accounts") or ()) if before else set()
    new = set(profile.get("accounts") or ())
    for group_id in sorted(old - new):
        write.call("SREM", keys.account_members(group_id), cid)
    for group_id in sorted(new - old):
        write.call("SADD", keys.account_members(group_id), cid)
        write.call("ZADD", keys.accounts, 0, group_id)


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
