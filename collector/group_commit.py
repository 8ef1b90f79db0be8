"""Group commit: requests handled in the same event-loop turn share one Kafka record.

Under concurrent load a worker reads many request bodies per turn of its event loop; writing
each request's events as its own record costs a hand-off to kafka-python's sender thread and
a callback back per request. Here the requests of one turn (per source) are written as one
touchpoint record — the processor splits records into events and is order- and
partition-independent — and every request still answers only after *its* events are
acknowledged with acks=all: a request's waiter is the waiter of the record holding its events.

A request's events are encoded in the request's own coroutine before they join a group, so
an event that cannot be encoded fails that request alone; a failure to write a group fails
exactly the requests in it, whatever the exception, and never leaves one waiting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from infra.kafka import AsyncProducer, BrokerUnavailable, Record
from touchpath.records import encode_events, join_touchpoints, touchpoints_key

log = logging.getLogger(__name__)

#: a group is written at once when it holds this many encoded bytes (Kafka's default record
#: limit is 1 MB; one request may carry up to 500 KB, so two full requests never share one)
MAX_GROUP_BYTES = 400_000


@dataclass(slots=True)
class _Group:
    source: str
    waiter: asyncio.Future[None]
    key: bytes | None = None  # the first event's, for the partitioner
    parts: list[bytes] = field(default_factory=list)  # each request's encoded events
    dead: list[Record] = field(default_factory=list)
    size: int = 0


class GroupCommit:
    """Collects the writes of one event-loop turn and sends them as one record per source."""

    def __init__(self, producer: AsyncProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._open: dict[str, _Group] = {}
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    async def write(
        self, events: list[dict[str, Any]], dead: list[Record], source: str, size: int
    ) -> None:
        """Write a request's accepted events and dead letters; returns once acknowledged.
        Raises ``orjson.JSONEncodeError`` for this request alone when its events cannot be
        encoded, before anything joins a group."""
        encoded = encode_events(events) if events else b""
        loop = asyncio.get_running_loop()
        group = self._open.get(source)
        if group is not None and group.size + size > MAX_GROUP_BYTES:
            self._send(self._open.pop(source))
            group = None
        if group is None:
            group = self._open[source] = _Group(source, loop.create_future())
        if encoded:
            if not group.parts:
                group.key = touchpoints_key(events)
            group.parts.append(encoded)
        group.dead.extend(dead)
        group.size += size
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_open)
        await asyncio.shield(group.waiter)  # a client going away must not cancel the others

    def _send_open(self) -> None:
        self._scheduled = False
        groups, self._open = self._open, {}
        for group in groups.values():
            self._send(group)

    def _send(self, group: _Group) -> None:
        task = asyncio.get_running_loop().create_task(self._write(group))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _write(self, group: _Group) -> None:
        records = list(group.dead)
        if group.parts:
            records.append((self.topic, group.key, join_touchpoints(group.parts, group.source)))
        try:
            if records:
                await self.producer.send_many(records)
        except Exception as exc:  # every request of the group hears it; none is left waiting
            if not isinstance(exc, BrokerUnavailable):
                log.exception("group commit failed", extra={"source": group.source})
            group.waiter.set_exception(exc)
            group.waiter.exception()  # retrieved here: every waiting request re-raises it
        else:
            group.waiter.set_result(None)
