"""Webhook state in Redis, shared by the API (subscriptions, dead letters, replay) and the
dispatcher (fan-out, claims, outcomes). Every transition is one MULTI/EXEC or Lua call.

``P:wh:subs``  hash  subscription id → subscription JSON
``P:wh:jobs``  hash  delivery id → {sub, body, webhook_id, attempts, first_ms, last_error}
``P:wh:due``   zset  delivery id → when it may be tried (ms); a claim pushes it ahead by a lease
``P:wh:dead``  hash  delivery id → the job, its last error and when it was given up
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from store import scripts
from store.keys import Keys
from touchpath.webhooks import Subscription

CLAIM_SCAN = 1000  # due entries a claim looks at


def now_ms() -> int:
    return int(time.time() * 1000)


class WebhookStore:
    """Subscriptions and deliveries under one key prefix."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self._claim = client.register_script(scripts.source("webhook_claim"))
        self._settle = client.register_script(scripts.source("webhook_settle"))

    def _key(self, part: str) -> str:
        return self.keys.webhooks(part)

    # --- subscriptions -----------------------------------------------------------------------

    async def add(self, subscription: Subscription) -> None:
        await self.client.hset(self._key("subs"), subscription.id, subscription.to_json())

    async def subscriptions(self) -> list[Subscription]:
        raw = await self.client.hvals(self._key("subs"))
        return sorted((Subscription.from_json(r) for r in raw), key=lambda s: s.created_at)

    async def subscription(self, sub_id: str) -> Subscription | None:
        raw = await self.client.hget(self._key("subs"), sub_id)
        return Subscription.from_json(raw) if raw else None

    async def remove(self, sub_id: str) -> bool:
        return bool(await self.client.hdel(self._key("subs"), sub_id))

    # --- deliveries ---------------------------------------------------------------------------

    async def schedule(self, jobs: Mapping[str, dict[str, Any]]) -> None:
        """Create deliveries due now; an id that exists already is left alone (idempotent)."""
        if not jobs:
            return
        pipe = self.client.pipeline(transaction=True)
        due = now_ms()
        for delivery, job in jobs.items():
            pipe.hsetnx(self._key("jobs"), delivery, orjson.dumps(job))
            pipe.zadd(self._key("due"), {delivery: due}, nx=True)
        await pipe.execute()

    async def claim(
        self,
        limit: int,
        lease_ms: int,
        per_subscription: int = 1_000_000,
        in_flight: Mapping[str, int] | None = None,
        put_off_ms: int = 500,
        scan: int = CLAIM_SCAN,
    ) -> tuple[list[tuple[str, dict[str, Any]]], int | None]:
        """Deliveries due now, leased to the caller until they succeed, fail or time out (at
        most ``per_subscription`` in flight per subscription, counting ``in_flight``), and
        when the next one falls due (ms; None: none scheduled)."""
        now = now_ms()
        busy = [part for sub, n in (in_flight or {}).items() for part in (sub, n)]
        args = [now, limit, now + lease_ms, per_subscription, now + put_off_ms, scan]
        flat = await self._claim(keys=[self._key("due"), self._key("jobs")], args=[*args, *busy])
        claimed = [(_text(flat[i]), orjson.loads(flat[i + 1])) for i in range(1, len(flat), 2)]
        return claimed, None if flat[0] < 0 else int(flat[0])

    async def delivered(self, delivery: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self._key("jobs"), delivery)
        pipe.zrem(self._key("due"), delivery)
        await pipe.execute()

    async def retry_later(self, delivery: str, job: dict[str, Any], delay_s: float) -> None:
        """Schedule another attempt (unless the delivery was removed meanwhile, by an erasure)."""
        when = now_ms() + int(delay_s * 1000)
        await self._settle(
            keys=self._settle_keys(), args=["retry", delivery, orjson.dumps(job), when]
        )

    async def give_up(self, delivery: str, job: dict[str, Any]) -> None:
        """Make the delivery a failed delivery (unless it was removed meanwhile, by an erasure)."""
        dead = orjson.dumps({**job, "dead_ms": now_ms()})
        await self._settle(keys=self._settle_keys(), args=["dead", delivery, dead, 0])

    def _settle_keys(self) -> list[str]:
        return [self._key("jobs"), self._key("due"), self._key("dead")]

    # --- failed deliveries (kept under P:wh:dead; served at /v1/subscriptions/dead-letters) -------

    async def failed_deliveries(self) -> list[tuple[str, dict[str, Any]]]:
        """Deliveries given up, oldest first."""
        raw = await self.client.hgetall(self._key("dead"))
        found = [(_text(k), orjson.loads(v)) for k, v in raw.items()]
        return sorted(found, key=lambda item: item[1].get("dead_ms", 0))

    async def replay(self, deliveries: Sequence[str] | None) -> list[str]:
        """Move failed deliveries (all when ``deliveries`` is None) back to due now."""
        dead = dict(await self.failed_deliveries())
        chosen = list(dead) if deliveries is None else [d for d in deliveries if d in dead]
        if not chosen:
            return []
        pipe = self.client.pipeline(transaction=True)
        for delivery in chosen:
            job = {k: v for k, v in dead[delivery].items() if k != "dead_ms"}
            job.update(attempts=0, first_ms=now_ms())
            pipe.hset(self._key("jobs"), delivery, orjson.dumps(job))
            pipe.zadd(self._key("due"), {delivery: now_ms()})
            pipe.hdel(self._key("dead"), delivery)
        await pipe.execute()
        return chosen


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
