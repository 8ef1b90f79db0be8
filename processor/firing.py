"""The firing loop: claims due trigger timers, decides with the pure core, publishes.

Runs on its own thread in the processor. **Lateness rule**: a timer whose occurrence is due
at event time ``due`` is evaluated once the wall clock reaches ``due + allowed lateness``
(``TOUCHPATH_TRIGGER_ALLOWED_LATENESS_S``): events up to that late are taken into account
before firing; a later one that voids a firing publishes a cancellation (same
``firing_id``). Each firing and cancellation goes, in the script that records it, to the
trigger outbox (then the ``touchpath.trigger-firings`` topic, at least once, keyed by
customer id), to the webhook outbox (subscriptions that name the trigger) and to the live
stream (SSE ``event: trigger-fired`` / ``trigger-cancelled``). A loop killed mid-way loses
nothing: its lease runs out and the timer is claimed again; ids already stored are not
published twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import orjson
import redis
from prometheus_client import Counter, Histogram

from infra.streams import Producer
from processor.publisher import OutboxPublisher
from processor.resolver import LIVE_KEPT
from processor.triggers import Claimed, Settled, TriggerStore
from store.codecs import StoredFiring, encode_firing, firing_field
from store.keys import Keys
from touchpath.settings_views import ProcessorSettings
from touchpath.triggers import (
    CANCELLED_COUNT,
    FIRED_COUNT,
    Occurrence,
    Trigger,
    TriggerModel,
    count_expiry_s,
    count_field,
    day_of,
    evaluate,
)

log = logging.getLogger(__name__)
FIRED, CANCELLED = "trigger.fired", "trigger.cancelled"
FIRINGS = Counter("touchpath_trigger_firings", "Trigger firings published.", ["trigger", "kind"])
LATENESS = Histogram(
    "touchpath_trigger_firing_lateness_seconds",
    "From a firing's due time plus the allowed lateness to its publication (wall clock).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0),
)
MAX_IDLE_S = 1.0  # notice timers scheduled by other processors meanwhile
WEBHOOK_KEPT = 100_000


class FiringPublisher(OutboxPublisher):
    """Moves firings from the trigger outbox to the trigger-firings topic."""

    def counted(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for _, fields in entries:
            firing = orjson.loads(fields[b"change"])
            kind = "cancelled" if firing["kind"] == CANCELLED else "fired"
            FIRINGS.labels(firing["trigger"], kind).inc()


class FiringLoop:
    """Claim, evaluate, settle; one instance per processor (any number may run)."""

    def __init__(
        self,
        store: TriggerStore,
        model: TriggerModel,
        lateness_ms: int,
        recheck_ms: int,
        lease_ms: int = 30_000,
        batch: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.model = model
        self.lateness_ms = lateness_ms
        self.recheck_ms = recheck_ms
        self.lease_ms = lease_ms
        self.batch = batch
        self.clock = clock

    def step(self) -> int:
        """Settle one batch of due timers; returns how many were claimed."""
        now = int(self.clock() * 1000)
        lease, members = self.store.claim(now - self.lateness_ms, self.lease_ms, self.batch)
        if not members:
            return 0
        settled = [self._settle(item, now) for item in self.store.read(members, self.model)]
        self.store.commit(lease, settled)
        return len(members)

    def _settle(self, item: Claimed, now: int) -> Settled:
        trigger = self.model.get(item.trigger)
        if trigger is None:  # removed from the rules: the timer goes, firings stay
            return Settled(item, None)
        starts = {fid: f.since_ms for fid, f in item.fired.items()}
        outcome = evaluate(
            trigger,
            item.profile,
            starts,
            now,
            self.lateness_ms,
            item.times,
            self.recheck_ms,
        )
        settled = Settled(item, outcome.next_ms)
        field_of = partial(firing_field, trigger.name)
        for occurrence in outcome.fire:
            body = _firing(trigger, item, occurrence, now)
            stored = encode_firing(body["since_ms"], body["at_ms"], body["causes"])
            count = self._count(FIRED_COUNT, trigger.name, occurrence.due_ms, now)
            fid = occurrence.firing_id
            settled.decisions.append(("fire", field_of(fid), stored, body_of(body), *count))
            LATENESS.observe(max(0, now - occurrence.due_ms - self.lateness_ms) / 1000)
        for fid in outcome.cancel:
            body = _cancellation(trigger, item, fid, item.fired[fid], now)
            count = self._count(CANCELLED_COUNT, trigger.name, body["at_ms"], now)
            settled.decisions.append(("cancel", field_of(fid), b"", body_of(body), *count))
        kept = [fid for fid in starts if fid not in outcome.cancel]
        for fid in sorted(kept, key=starts.__getitem__)[: max(0, len(kept) - 20)]:
            settled.decisions.append(("forget", field_of(fid), b"", b"", "", "", 0))
        return settled

    def _count(self, kind: str, trigger: str, due_ms: int, now: int) -> tuple[str, str, int]:
        """Where the script counts a published firing (cancellation): the hash of its due
        day, its field, the hash's expiry; none for a day older than the bound."""
        expiry = count_expiry_s(due_ms)
        if expiry * 1000 <= now:
            return ("", "", 0)
        return (self.store.keys.trigger_counts(day_of(due_ms)), count_field(kind, trigger), expiry)

    def wait_s(self) -> float:
        """Seconds until the earliest timer is due (at most :data:`MAX_IDLE_S`)."""
        first = self.store.next_due()
        if first is None:
            return MAX_IDLE_S
        ahead = (first + self.lateness_ms) / 1000 - self.clock()
        return min(max(ahead, 0.0), MAX_IDLE_S)


def body_of(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


def _base(trigger: Trigger, item: Claimed, now: int) -> dict[str, Any]:
    profile = item.profile or {}
    return {
        "trigger": trigger.name,
        "customer_id": item.customer_id,
        "identities": profile.get("identities", []),
        "stage": profile.get("stage"),
        "decided_at_ms": now,
    }


def _firing(trigger: Trigger, item: Claimed, occurrence: Occurrence, now: int) -> dict[str, Any]:
    return {
        "firing_id": occurrence.firing_id,
        "change_id": occurrence.firing_id,
        "kind": FIRED,
        **_base(trigger, item, now),
        "since_ms": occurrence.start_ms,
        "at_ms": occurrence.due_ms,
        "causes": [dict(occurrence.cause)],
    }


def _cancellation(
    trigger: Trigger, item: Claimed, fid: str, fired: StoredFiring, now: int
) -> dict[str, Any]:
    """A cancellation names the firing's causes and what voided it."""
    since, due = fired.since_ms, fired.at_ms
    history = (item.profile or {}).get("history", {})
    voiding = [
        {"at_ms": e[0], "message_id": e[1], "channel": e[2], "reason": f"entered {stage}"}
        for stage in trigger.unless_entered
        if (e := history.get(stage)) is not None and e[0] <= due
    ]
    voiding += [
        {"at_ms": at, "message_id": mid, "reason": "event"}
        for at, mid in item.times
        if since < at <= due
    ][:1]
    return {
        "firing_id": fid,
        "change_id": f"{fid}.cancel",
        "kind": CANCELLED,
        **_base(trigger, item, now),
        "since_ms": since,
        "at_ms": due,
        "causes": fired.causes + voiding,
    }


def run_firing_loop(loop: FiringLoop, publisher: FiringPublisher, stop: threading.Event) -> None:
    """Until ``stop``: settle due timers, publish firings to Kafka, wait for the next one."""
    while not stop.is_set():
        try:
            busy = loop.step()
            publisher.drain()
        except Exception as exc:  # Redis or Kafka away: the leases and the outbox keep all
            log.warning("trigger firing interrupted, retrying", extra={"error": repr(exc)})
            stop.wait(1.0)
            continue
        if not busy:
            stop.wait(loop.wait_s())


def start_firing(
    settings: ProcessorSettings, client: redis.Redis, producer: Producer, stop: threading.Event
) -> threading.Thread | None:
    """Start the firing loop's thread (None when the rules have no triggers)."""
    from touchpath.triggers import load_triggers

    model = load_triggers(settings.rules_file)
    if not model.triggers:
        return None
    for trigger in model.triggers:  # exported as 0 from the start, so rates and alerts work
        for kind in (FIRED, CANCELLED):
            FIRINGS.labels(trigger.name, kind)
    keys = Keys(settings.redis_prefix)
    store = TriggerStore(client, keys, LIVE_KEPT, WEBHOOK_KEPT)
    loop = FiringLoop(
        store,
        model,
        int(settings.trigger_allowed_lateness_s * 1000),
        int(settings.trigger_recheck_s * 1000),
        int(settings.trigger_lease_s * 1000),
    )
    name = f"triggers-{threading.get_native_id()}-{id(stop)}"
    publisher = FiringPublisher(
        client, keys.trigger("outbox"), producer, settings.topic_trigger_firings, name
    )
    thread = threading.Thread(
        target=run_firing_loop, args=(loop, publisher, stop), name="triggers", daemon=True
    )
    thread.start()
    return thread
