"""One replay cache for every signed callback, in Redis: shared by all collector workers and
processes, so a captured request replayed to any of them is refused.

A callback's one-time value (Mailgun's token, the signature of SendGrid, Intercom and Zendesk
requests, the Standard Webhooks ``webhook-id``) is remembered, as a SHA-256 digest, under
``P:replay:<digest>`` for twice the signature tolerance (older requests fail the timestamp
check anyway). It is claimed before the events are written and released if writing fails,
so the sender's own retry of a request we could not take is still accepted.

Redis: ``TOUCHPATH_REPLAY_REDIS_URL``, by default ``TOUCHPATH_REDIS_URL``. When it cannot
be reached, signed callbacks answer 503 (the tools retry) rather than go unchecked.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from infra.problems import Problem
from store.keys import Keys


class ReplayGuard:
    """Claims one-time callback values in Redis."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.ttl_s = ttl_s

    def _key(self, kind: str, value: str) -> str:
        digest = hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()[:40]
        return self.keys.replay(digest)

    async def first_use(self, kind: str, value: str) -> bool:
        """True the first time a value is offered (and remember it); False for a replay."""
        try:
            return bool(await self.client.set(self._key(kind, value), 1, nx=True, ex=self.ttl_s))
        except (aioredis.RedisError, OSError):
            raise _unavailable() from None

    async def release(self, kind: str, value: str) -> None:
        """Forget a value whose request was not taken (so the sender's retry is accepted)."""
        try:
            await self.client.delete(self._key(kind, value))
        except (aioredis.RedisError, OSError):
            return  # the value expires with its TTL


def _unavailable() -> Problem:
    return Problem(
        503,
        "Service unavailable",
        "the replay cache (Redis) is unreachable; retry later",
        headers={"Retry-After": "5"},
    )
