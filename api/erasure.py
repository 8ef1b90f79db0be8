"""Erasing a customer (right to be forgotten): one atomic Lua script (``erase.lua``), then the
derived data other customers and the webhook machinery hold.

Step 1, atomic (no other Redis client can observe it half-done): the profile (``P:cust``),
its stage, reached, funnel and satisfaction entries, account memberships, trigger timers and
stored firings (``store/scripts/remove_customer.lua``, the removal the resolver runs too), the
last stage announcement of every customer id it can have had (``P:announced``); for every
identifier of the customer its anchored data (``P:a:<id>:{journey,data,seen,cond,buys}``)
and both look-ups (``P:idc``, ``P:id``); its place in the raw cluster ``P:cl:<cluster>`` — its
identifiers' ``i:`` fields, every ``t:`` tie naming one of them (a *refused* ``o:`` tie
included), its ``c:`` entry — and, in the anchored data of the identifiers that stay (another
customer the identifier was refused to, say), every link marker naming an erased identifier
and every trait or timeline entry holding one of its forms (``touchpath/erasure.py``: an
email in any case, a phone by its digits). The cluster's version ``v`` is bumped (or the
cluster deleted when nothing is left), so a processor that read the cluster before fails its
compare-and-swap write and derives again from what remains; a firing loop that read one of
the customer's timers before finds it gone and stores nothing.

Step 2: the remaining customers of those clusters are derived again from the scrubbed data
by the processor's own resolver (profiles, snapshots, look-ups, stage indexes, funnel rows);
the clusters wait in ``P:rederive`` until that is done, so an API that crashes in between
finishes the work on its next erasure. Step 3: stage changes naming the customer leave the
Kafka outbox stream and the webhook outbox stream, and its webhook deliveries leave the
queue (``P:wh:jobs``/``due``) and the dead letters, so neither a retry nor a replay sends it.

How replays are prevented from resurrecting the data: Kafka keeps the raw touchpoints for
the topic's retention, and a consumer-group rebalance, a crash or an operator resetting
offsets delivers them again. The script therefore records ``P:erased:<mark>`` = the erasure
time (epoch ms) for every identifier, where ``mark`` is the identifier's keyed hash (HMAC
under the installation's erasure key): the markers do not say who was erased. The
processor's apply script skips any event *received* (``receivedAt``, stamped by the
collector) at or before the erasure time of one of its identifiers' marks. An event received
*after* the erasure is new data the person sent since, so it starts a new customer. This
relies on the collector's and the API's clocks agreeing (NTP).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from infra.erasure_key import erasure_key_async
from infra.redis_clients import route, sync_client
from store import scripts
from store.codecs import decode_profile, timers_of
from store.keys import Keys
from touchpath.erasure import Marks, former_customer_ids, forms_of, names_erased
from touchpath.identity import IdentityPolicy
from touchpath.settings import Settings
from touchpath.stages import StageModel
from touchpath.triggers import load_triggers

PLAN_ATTEMPTS = 10
SCAN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure removed."""

    customer_id: str
    identities: list[str]
    at_ms: int


class Eraser:
    """Runs the erase script, then the follow-up steps (registered once per client)."""

    def __init__(self, client: aioredis.Redis, settings: Settings, stages: StageModel) -> None:
        self._script = client.register_script(scripts.source("erase", "remove_customer"))
        self._client = client
        self._keys = Keys(settings.redis_prefix)
        self._settings = settings
        self._model = stages
        self._triggers = load_triggers(settings.rules_file).names  # their timers go atomically
        self._marks: Marks | None = None  # the erasure key is read on first use
        self._resolver: Any = None  # built on first use, in a worker thread

    async def erase(self, identifier: str, now_ms: int) -> Erasure | None:
        """Erase the customer holding ``identifier`` (``kind:value``); None if there is none."""
        for _ in range(PLAN_ATTEMPTS):
            plan = await self._plan(identifier)
            if plan is None:
                return None
            found = await self._script(
                keys=route(self._keys.prefix),
                args=[self._keys.prefix, identifier, now_ms, orjson.dumps(plan)],
            )
            if not found:
                return None
            if found not in (b"retry", "retry"):
                break
        else:
            raise RuntimeError("the customer kept changing while it was being erased")
        await asyncio.to_thread(self.rederive)
        await self._forget_changes(set(plan["ids"]), set(plan["cids"]))
        return Erasure(plan["cid"], plan["ids"], now_ms)

    async def _plan(self, identifier: str) -> dict[str, Any] | None:
        """What the script will erase, read beforehand (it checks nothing changed since)."""
        cid = await self._client.get(self._keys.customer_of(identifier))
        blob = await self._client.get(self._keys.customer(_text(cid))) if cid else None
        if not cid or not blob:
            return None
        ids: list[str] = decode_profile(blob)["identities"]
        if self._marks is None:
            settings = self._settings
            key = await erasure_key_async(self._client, self._keys.prefix, settings.erasure_key)
            self._marks = Marks(key)
        return {
            "cid": _text(cid),
            "ids": ids,
            "marks": self._marks(ids),
            "cids": sorted({_text(cid), *former_customer_ids(ids)}),
            "stages": list(self._model.stages),
            "triggers": list(self._triggers),
            "forms": forms_of(ids).plan(),
        }

    def rederive(self) -> None:
        """Derive the customers of the clusters an erasure or a split changed
        (``P:rederive``) again, with the processor's resolver."""
        resolver = self._resolver or self._build_resolver()
        client = resolver.store.client
        clusters = sorted(_text(c) for c in client.smembers(self._keys.rederive))
        if clusters:
            resolver.resolve(clusters)
            client.srem(self._keys.rederive, *clusters)

    def _build_resolver(self) -> Any:
        from processor.resolver import Resolver  # the processor's own derivation
        from processor.store import JourneyStore, StoreBounds

        settings = self._settings
        client = sync_client(settings, socket_timeout=10)
        store = JourneyStore(
            client, settings.redis_prefix, StoreBounds.of(settings), settings.erasure_key
        )
        policy = IdentityPolicy.of(settings)
        self._resolver = Resolver(store, self._model, policy, lapse_days=settings.lapse_days)
        return self._resolver

    async def _forget_changes(self, identifiers: set[str], customers: set[str]) -> None:
        """Stage changes and webhook deliveries about the customer leave every queue."""

        def erased(raw: bytes) -> bool:
            return names_erased(orjson.loads(raw), identifiers, customers)

        streams = (self._keys.outbox, self._keys.webhook_outbox, self._keys.live_changes)
        for stream in (*streams, self._keys.trigger("outbox")):  # trigger firings (#21)
            async for entry_ids in self._stream_matches(stream, erased):
                await self._client.xdel(stream, *entry_ids)
        timers = self._keys.trigger("due")
        for cid in sorted(customers):  # timers of triggers no longer in the rules (erase.lua
            # removed those of the rules' triggers with the customer)
            async for timer, _ in self._client.zscan_iter(timers, match=timers_of(cid)):
                await self._client.zrem(timers, timer)
        jobs, due, dead = (self._keys.webhooks(part) for part in ("jobs", "due", "dead"))
        for name in (jobs, dead):
            async for deliveries in self._hash_matches(name, lambda job: erased(_body(job))):
                pipe = self._client.pipeline(transaction=True)
                pipe.hdel(name, *deliveries)
                pipe.zrem(due, *deliveries)
                await pipe.execute()

    async def _stream_matches(
        self, stream: str, erased: Callable[[bytes], bool]
    ) -> AsyncIterator[list[str]]:
        start = "-"
        while True:
            entries: list[Any] = await self._client.xrange(  # type: ignore[assignment]
                stream, start, "+", count=SCAN_CHUNK
            )
            found = [_text(i) for i, fields in entries if erased(fields[b"change"])]
            if found:
                yield found
            if len(entries) < SCAN_CHUNK:
                return
            start = "(" + _text(entries[-1][0])

    async def _hash_matches(
        self, name: str, erased: Callable[[bytes], bool]
    ) -> AsyncIterator[list[str]]:
        cursor = 0
        while True:
            answer: Any = await self._client.hscan(name, cursor, count=SCAN_CHUNK)
            cursor, fields = answer
            found = [_text(k) for k, v in fields.items() if erased(v)]
            if found:
                yield found
            if not cursor:
                return


def _body(job: bytes) -> bytes:
    """The stage change a webhook delivery carries (its body's ``data``)."""
    body = orjson.loads(job).get("body") or "{}"
    return orjson.dumps(orjson.loads(body).get("data") or {})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
