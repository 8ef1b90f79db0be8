"""Undo a wrong merge: split an identifier off its customer (``POST …/split``, admin).

The identifier is *blocked* in its identity cluster (the field ``b:<identifier>`` of
``P:cl:<cluster>`` → who asked and when): resolution makes no tie naming it, whatever events
arrive later or are replayed, so it becomes a customer of its own. The cluster is then derived
again by the processor's own resolver (as after an erasure, through ``P:rederive``), which
writes both customers and announces what changed for each of them as corrections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from infra.redis_clients import route
from store import scripts
from store.keys import Keys


@dataclass(frozen=True, slots=True)
class Split:
    """What a split did: the customer the identifier left and the one it is now."""

    identifier: str
    before: str
    after: str
    by: str
    at_ms: int


class Splitter:
    """Blocks an identifier in its cluster, then has the cluster derived again."""

    def __init__(self, client: aioredis.Redis, prefix: str, rederive: Callable[[], None]) -> None:
        self._client = client
        self._keys = Keys(prefix)
        self._script = client.register_script(scripts.source("block"))
        self._rederive = rederive

    async def split(self, identifier: str, before: str, by: str, at_ms: int) -> Split | None:
        """Split ``identifier`` off the customer ``before`` it belongs to now; None when no
        cluster holds it."""
        record = orjson.dumps({"by": by, "at": at_ms})
        args: list[str | bytes] = [self._keys.prefix, identifier, record]
        if not await self._script(keys=route(self._keys.prefix), args=args):
            return None
        await asyncio.to_thread(self._rederive)
        after = await self._client.get(self._keys.customer_of(identifier))
        current = after.decode() if isinstance(after, bytes) else str(after or "")
        return Split(identifier, before, current, by, at_ms)
