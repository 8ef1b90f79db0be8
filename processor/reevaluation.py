"""Rules versions: a changed rules file is noticed at start-up and every customer is
re-evaluated under the new rules, in the background, with progress.

``P:rules`` (a hash) records the rules version in force (:attr:`StageModel.version`), the one
before, the version assumed for anchors stored before versions existed (``unversioned``) and
the re-evaluation's state: ``reevaluating`` with a SCAN cursor over the clusters, how many are
done of about how many, since when; or ``current``. One processor at a time runs it (the
lease ``P:rules:lease``); another resumes from the cursor if that one stops.

Re-evaluating a cluster is resolving it: the resolver rewrites every anchor whose ``rv``
is not the current version from its timeline first (:meth:`Resolver._current`), so the
stage indexes, the funnel and the announcements (corrections, or nothing when silent) follow
as for any other change. A customer whose events arrive meanwhile is re-evaluated then, on
demand: nobody is ever derived from the old rules' candidates.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

import redis

from infra.redis_clients import scan_page, sync_client
from processor import metrics
from processor.resolver import Resolver
from store import scripts
from store.keys import Keys
from touchpath.reevaluation import RulesState
from touchpath.settings import Settings

log = logging.getLogger(__name__)
SCAN_COUNT = 200  # keys examined per SCAN step (one in ~10 keys is a cluster's ids)
LEASE_MS = 60_000


def read_state(client: redis.Redis, keys: Keys) -> RulesState:
    raw = client.hgetall(keys.rules)
    return RulesState.of({_text(k): _text(v) for k, v in raw.items()})


def record_start(client: redis.Redis, keys: Keys, version: str) -> str:
    """Record the rules this processor runs: ``new`` (first versioned start), ``same`` or
    ``changed`` (a re-evaluation is now due)."""
    total = client.hlen(keys.funnel)  # about one cluster per customer
    outcome = client.eval(scripts.source("rules_start"), 1, keys.rules, version, _now_ms(), total)
    return _text(outcome)


class Reevaluation:
    """Walks every cluster once, resolving it with the current rules."""

    def __init__(
        self,
        client: redis.Redis,
        resolver: Resolver,
        owner: str,
        log_every: int = 10_000,
        silent: bool = False,
    ) -> None:
        self.client = client
        self.keys = resolver.store.keys
        self.resolver = resolver
        self.owner = owner
        self.log_every = log_every
        self.silent = silent

    def run(
        self, stop: threading.Event, progress: Callable[[RulesState], None] | None = None
    ) -> bool:
        """Re-evaluate until done (True) or stopped, another holds the lease, or the rules
        changed again (False)."""
        if not self._lease():
            return False
        version = self.resolver.model.version
        pattern = self.keys.cluster("*")
        resolver = self._resolver()
        logged = 0
        while not stop.is_set():
            state = read_state(self.client, self.keys)
            if state.state != "reevaluating" or state.version != version:
                return state.state == "current" and state.version == version
            cursor = int(self.client.hget(self.keys.rules, "cursor") or 0)
            cursor, found = scan_page(self.client, cursor, pattern, SCAN_COUNT)
            clusters = [self.keys.cluster_id(_text(key)) for key in found]
            if clusters:
                resolver.resolve(clusters)
            self._advance(cursor, len(clusters), version)
            metrics.REEVALUATED_CLUSTERS.inc(len(clusters))
            state = read_state(self.client, self.keys)
            metrics.REEVALUATION_PROGRESS.set(_ratio(state))
            if progress:
                progress(state)
            if state.done - logged >= self.log_every or cursor == 0:
                logged = state.done
                log.info(
                    "re-evaluating under rules %s: %d of about %d clusters",
                    version,
                    state.done,
                    state.total,
                )
            if cursor == 0:
                self.client.delete(self.keys.rules_lease)
                return True
            if not self._lease():
                return False
        return False

    def _resolver(self) -> Resolver:
        """A resolver of its own (its announcements silenced when asked)."""
        own = copy.copy(self.resolver)  # the same store, rules, triggers and lapse
        own.announce = not self.silent
        return own

    def _advance(self, cursor: int, count: int, version: str) -> None:
        """Record the cursor and the count; at the end, the state ``current``."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(self.keys.rules, "done", count)
        pipe.hset(self.keys.rules, "cursor", cursor)
        if cursor == 0:
            pipe.hset(self.keys.rules, mapping={"state": "current", "finished_ms": _now_ms()})
        pipe.execute()

    def _lease(self) -> bool:
        """Take or renew the lease on the re-evaluation."""
        key = self.keys.rules_lease
        if self.client.set(key, self.owner, nx=True, px=LEASE_MS):
            return True
        if _text(self.client.get(key)) == self.owner:
            self.client.pexpire(key, LEASE_MS)
            return True
        return False


def start_reevaluation(
    client: redis.Redis, resolver: Resolver, owner: str, stop: threading.Event, silent: bool
) -> threading.Thread | None:
    """Run a due re-evaluation on a background thread (None when none is due)."""
    state = read_state(client, resolver.store.keys)
    if state.state != "reevaluating" or state.version != resolver.model.version:
        metrics.REEVALUATION_PROGRESS.set(1.0)
        return None
    job = Reevaluation(client, resolver, owner, silent=silent)

    def run() -> None:
        while not stop.is_set():
            try:
                if job.run(stop) or read_state(client, job.keys).state != "reevaluating":
                    return
            except redis.RedisError:
                log.warning("re-evaluation interrupted; resuming", exc_info=True)
            stop.wait(5)  # another holds the lease, or Redis is away: look again later

    thread = threading.Thread(target=run, name="reevaluation", daemon=True)
    thread.start()
    return thread


def run_by_hand(settings: Settings, silent: bool = False, everyone: bool = False) -> int:
    """``touchpath reevaluate``: record the rules, then re-evaluate in the foreground,
    printing progress; 0 when done, 1 when another process holds the re-evaluation."""
    from processor.service import build_resolver  # the processor's own wiring

    client = sync_client(settings, socket_timeout=30)
    resolver = build_resolver(settings, client)
    keys, version = resolver.store.keys, resolver.model.version
    record_start(client, keys, version)
    if everyone:
        client.hset(keys.rules, mapping={"state": "reevaluating", "cursor": 0, "done": 0})
    state = read_state(client, keys)
    resolver.unversioned = state.unversioned or version
    if state.state != "reevaluating":
        print(f"rules {version} are current: nothing to re-evaluate (--all to do it anyway)")
        return 0

    def show(now: RulesState) -> None:
        print(f"rules {version}: {now.done} of about {now.total} clusters", flush=True)

    owner = f"reevaluate-{os.getpid()}"
    done = Reevaluation(client, resolver, owner, silent=silent).run(threading.Event(), show)
    if not done:
        print("another process is re-evaluating (or the rules changed again)", file=sys.stderr)
        return 1
    print(f"rules {version}: every customer re-evaluated")
    return 0


def _ratio(state: RulesState) -> float:
    if state.state == "current":
        return 1.0
    return min(1.0, state.done / state.total) if state.total else 0.0


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _now_ms() -> int:
    return int(time.time() * 1000)
