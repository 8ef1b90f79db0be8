"""The webhook dispatcher (``touchpath webhooks``): fans stage changes out to subscriptions
and delivers them, signed, with retries — in its own process, so slow or failing receivers
never hold up event processing.

Fan-out reads ``P:wh:outbox`` with a Redis consumer group (a change is acknowledged only
after its deliveries are stored); delivery claims due jobs with a lease, so a dispatcher
killed mid-delivery loses nothing: the lease runs out and the job is tried again (receivers
de-duplicate on ``webhook-id``). No polling sleeps: fan-out blocks on the stream, delivery
waits for a free slot, a wake-up from fan-out or the next due retry (at most one second, to
notice jobs scheduled by other dispatchers or by a replay).

Isolation: every attempt runs as its own task with a total deadline (``webhook_timeout_s``,
connect + send + answer, see :mod:`dispatcher.delivery`); a slot is claimed again as soon as
one attempt ends, never after a whole batch, and a subscription has at most
``webhook_concurrency_per_subscription`` attempts in flight, so a slow receiver holds only its
own slots and never delays another subscription's deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram

from dispatcher.delivery import Deliverer
from dispatcher.plan import Job, after_attempt, attempt_headers, jobs_for
from infra import redis_streams
from infra.logs import configure_logging
from infra.redis_clients import async_client
from infra.redis_streams import Entry, claimed_entries, exists_already, read_entries
from infra.retry import Backoff
from infra.service_kit import serve_health
from infra.webhook_store import WebhookStore, now_ms
from touchpath.settings import Settings
from touchpath.settings_views import DispatcherSettings
from touchpath.webhooks import RetryPolicy, Subscription

log = logging.getLogger(__name__)
GROUP = "dispatchers"
MAX_IDLE_WAIT_S = 1.0
DELIVERIES = Counter("touchpath_webhook_deliveries", "Delivery attempts by outcome.", ["outcome"])
for _outcome in ("delivered", "retry", "dead"):
    DELIVERIES.labels(_outcome)  # exported as 0 from the start, so rates and alerts work
LATENCY = Histogram(
    "touchpath_webhook_delivery_latency_seconds",
    "From the stage change being stored to its successful delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)


class Dispatcher:
    """One dispatcher instance: a fan-out loop and a delivery loop."""

    def __init__(
        self,
        settings: DispatcherSettings,
        client: aioredis.Redis,
        deliverer: Deliverer,
        name: str,
    ) -> None:
        self.settings = settings
        self.client = client
        self.deliverer = deliverer
        self.name = name
        self.store = WebhookStore(client, settings.redis_prefix)
        self.outbox = self.store.keys.webhook_outbox
        self.policy = RetryPolicy(
            base_s=settings.webhook_backoff_base_s,
            cap_s=settings.webhook_backoff_cap_s,
            max_attempts=settings.webhook_max_attempts,
            max_age_s=settings.webhook_max_age_s,
        )
        self.lease_ms = int((settings.webhook_timeout_s + 5) * 1000)
        self.per_subscription = min(
            settings.webhook_concurrency_per_subscription, settings.webhook_concurrency
        )
        self.wake = asyncio.Event()
        self._group_ready = False  # created on first use: Redis may be full or down at start
        self.in_flight: dict[asyncio.Task[None], str] = {}  # attempt → its subscription

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out and deliver until ``stop`` is set; attempts under way may then finish."""
        loops = [
            asyncio.create_task(self._forever(step, stop))
            for step in (self.fan_out, self.deliver_due)
        ]
        await stop.wait()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self.in_flight:  # unfinished ones are tried again when their lease runs out
            _, late = await asyncio.wait(list(self.in_flight), timeout=self.deliverer.deadline_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _forever(self, step: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
        """Run ``step`` until stopped; Redis outages back off instead of ending the loop."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                await step()
                backoff.reset()
            except (aioredis.RedisError, OSError) as exc:
                log.warning("redis unavailable, retrying", extra={"error": repr(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next())

    async def fan_out(self) -> int:
        """Turn waiting stage changes into stored deliveries; returns how many changes."""
        await self._ensure_group()
        entries = await self._claim_stale() or await self._read_new()
        if not entries:
            return 0
        subscriptions = await self.store.subscriptions()
        changes = (orjson.loads(fields[b"change"]) for _, fields in entries)
        jobs = jobs_for(changes, subscriptions, now_ms)
        await self.store.schedule(jobs)
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.outbox, GROUP, *ids)
        pipe.xdel(self.outbox, *ids)
        await pipe.execute()
        if jobs:
            self.wake.set()
        return len(entries)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.client.xgroup_create(self.outbox, GROUP, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if not exists_already(exc):
                raise
        self._group_ready = True

    async def _read_new(self) -> list[Entry]:
        answer = await self.client.xreadgroup(
            GROUP, self.name, {self.outbox: ">"}, count=500, block=1000
        )
        return read_entries(answer)

    async def _claim_stale(self) -> list[Entry]:
        claim_idle_ms = redis_streams.CLAIM_IDLE_MS
        answer = await self.client.xautoclaim(
            self.outbox, GROUP, self.name, claim_idle_ms, start_id="0-0", count=500
        )
        return claimed_entries(answer)

    async def deliver_due(self) -> None:
        """Start what is due in the free slots, then wait for a slot to free, a wake-up or
        the next due retry."""
        self.wake.clear()
        free = self.settings.webhook_concurrency - len(self.in_flight)
        wait = MAX_IDLE_WAIT_S
        if free > 0:
            claimed, due = await self.store.claim(
                free, self.lease_ms, self.per_subscription, Tally(self.in_flight.values())
            )
            if claimed:
                subscriptions = {s.id: s for s in await self.store.subscriptions()}
                for delivery, job in claimed:
                    self._start(delivery, job, subscriptions.get(job["sub"]))
            if due is not None:
                wait = (due - now_ms()) / 1000
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), min(max(wait, 0.0), MAX_IDLE_WAIT_S))

    def _start(self, delivery: str, job: Job, sub: Subscription | None) -> None:
        """Run one attempt as its own task; its end frees the slot and wakes the loop."""
        task = asyncio.create_task(self._attempt(delivery, job, sub))
        self.in_flight[task] = job["sub"]
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(task, None)
        self.wake.set()

    async def _attempt(self, delivery: str, job: Job, sub: Subscription | None) -> None:
        try:
            await self._deliver(delivery, job, sub)
        except (aioredis.RedisError, OSError) as exc:  # the lease runs out: tried again
            log.warning("webhook outcome not stored", extra={"error": repr(exc)})
        except Exception:  # a bug must not end the dispatcher; the lease runs out
            log.exception("webhook attempt failed", extra={"delivery": delivery})

    async def _deliver(self, delivery: str, job: Job, sub: Subscription | None) -> None:
        if sub is None:  # unsubscribed since: nothing to deliver
            await self.store.delivered(delivery)
            return
        headers = attempt_headers(sub, job, int(time.time()))
        error = await self.deliverer.post(sub.url, job["body"].encode(), headers)
        then = after_attempt(job, error, self.policy, now_ms())
        if then.outcome == "delivered":
            await self.store.delivered(delivery)
            LATENCY.observe(max(0, now_ms() - job["stored_ms"]) / 1000)
        elif then.outcome == "dead":
            await self.store.give_up(delivery, then.job)
            log.warning("webhook delivery given up", extra={"delivery": delivery, "error": error})
        else:
            await self.store.retry_later(delivery, then.job, then.delay_s or 0.0)
        DELIVERIES.labels(then.outcome).inc()


def run_dispatcher(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT."""
    configure_logging("webhooks", settings.log_level)
    return asyncio.run(_main(DispatcherSettings.of(settings)))


async def _main(settings: DispatcherSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = async_client(settings, socket_timeout=10)
    server = serve_health(settings.webhooks_host, settings.webhooks_metrics_port, lambda: ())
    name = f"{socket.gethostname()}-{id(stop)}"
    deliverer = Deliverer(
        settings.webhook_allowed_networks, settings.webhook_timeout_s, settings.webhook_concurrency
    )
    log.info("webhook dispatcher started")
    await Dispatcher(settings, client, deliverer, name).run(stop)
    await deliverer.aclose()
    await client.aclose()
    server.shutdown()
    return 0
