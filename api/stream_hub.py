"""One reader of the live stage-change stream per API process, fanning entries out to the
Server-Sent Events listeners through bounded asyncio queues.

The processor appends every change to the capped Redis stream ``P:live:stage-changes``
(``XADD … MAXLEN ~``, in the transaction that stores it). However many clients listen, the
process holds one blocking ``XREAD`` (and none while nobody listens); a listener that falls
more than :data:`QUEUE_SIZE` changes behind is ended and resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis

log = logging.getLogger(__name__)
BLOCK_MS = 5000  # below the client's socket timeout
QUEUE_SIZE = 2000
PAGE = 500
ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
Entry = tuple[str, bytes]  # stream entry id, the change as JSON


class StreamsFull(Exception):
    """The process serves as many streams as it may."""


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``, or ``<ms>``) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Listener:
    """One stream's queue of entries; ``overflowed`` once an entry could not be queued."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def put(self, entry: Entry) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self.hub.listeners.discard(self)


class StreamHub:
    """The per-process reader and its listeners (at most ``max_listeners``)."""

    def __init__(self, client: aioredis.Redis, key: str, max_listeners: int) -> None:
        self.client = client
        self.key = key
        self.max_listeners = max_listeners
        self.listeners: set[Listener] = set()
        self.reader: asyncio.Task[None] | None = None
        self.starting = asyncio.Lock()

    async def join(self) -> Listener:
        """A new listener, which gets every entry added after this returns (StreamsFull
        past the cap)."""
        if len(self.listeners) >= self.max_listeners:
            raise StreamsFull
        listener = Listener(self)
        self.listeners.add(listener)
        try:
            async with self.starting:
                if self.reader is None or self.reader.done():
                    position = await self._last_id()
                    self.reader = asyncio.create_task(self._read(position))
        except BaseException:
            listener.close()
            raise
        return listener

    async def close(self) -> None:
        self.listeners.clear()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader

    async def _last_id(self) -> str:
        newest = cast(list[Any], await self.client.xrevrange(self.key, count=1))
        return _text(newest[0][0]) if newest else "0-0"

    async def _read(self, position: str) -> None:
        """Read from ``position`` on while anybody listens; Redis outages are retried."""
        while self.listeners:
            try:
                answer = cast(
                    list[Any],
                    await self.client.xread({self.key: position}, count=PAGE, block=BLOCK_MS),
                )
            except (aioredis.RedisError, OSError) as exc:
                log.warning("live stream read failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1)
                continue
            for _, entries in answer or []:
                for raw_id, fields in entries:
                    position = _text(raw_id)
                    for listener in list(self.listeners):
                        listener.put((position, fields[b"change"]))

    async def since(self, after: str) -> AsyncIterator[Entry]:
        """Every entry kept after ``after``, oldest first, in pages."""
        start = f"({after}"
        while True:
            page = cast(list[Any], await self.client.xrange(self.key, start, "+", count=PAGE))
            for raw_id, fields in page:
                yield _text(raw_id), fields[b"change"]
            if len(page) < PAGE:
                return
            start = f"({_text(page[-1][0])}"

    async def trimmed_after(self, after: str) -> str | None:
        """The oldest entry kept when entries after ``after`` may have been trimmed away."""
        try:
            info = await self.client.xinfo_stream(self.key)
        except aioredis.ResponseError:  # no stream yet: nothing was ever trimmed
            return None
        first = info.get("first-entry")
        if not first or info.get("entries-added", 0) <= info.get("length", 0):
            return None
        oldest = _text(first[0])
        return oldest if entry_key(oldest) > entry_key(after) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
