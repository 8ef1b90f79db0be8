"""Identifier → profile look-ups, coalesced: one Redis call per event-loop turn, not per request.

The stage endpoint is the API's hot path. Every request of one event-loop turn that needs a
profile joins the same batch; the batch is sent as one ``EVALSHA`` whose script resolves each
identifier (``P:idc:<identifier>`` → customer id → ``P:cust:<id>``) inside Redis. Under load
dozens of requests share one round trip and one Redis command, which costs far less than one
redis-py call each; alone, a request waits for nothing but its own round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from infra.redis_clients import route
from store import scripts

MAX_BATCH = 500


class ProfileLookups:
    """Coalesces concurrent ``identifier → profile JSON`` look-ups into batched script calls."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._script = client.register_script(scripts.source("profiles"))
        self._prefix = prefix
        self._pending: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, identifier: str) -> bytes | None:
        """The profile JSON of the customer holding ``identifier`` (``kind:value``), or None."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after the requests already runnable this turn
        self._pending.append((identifier, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._run(pending[start : start + MAX_BATCH]))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: Sequence[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        try:
            args = [self._prefix, *(i for i, _ in batch)]
            found: list[Any] = await self._script(keys=route(self._prefix), args=args)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # every waiting request gets the error (e.g. Redis down)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), blob in zip(batch, found, strict=True):
            if not future.done():  # the request may have been cancelled meanwhile
                future.set_result(blob or None)
