"""Reads of the journey store for the API (redis.asyncio); each method is one round trip or
one pipeline (profile look-ups of concurrent requests even share theirs, see
:mod:`api.lookups`); the funnel read hands the ``P:funnel`` rows out in chunks.

The layout is the processor's (``processor/store.py``); key names come from
:class:`store.keys.Keys`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from api.lookups import ProfileLookups
from api.pagination import Position
from api.rows import FunnelRow, RowCache
from store.codecs import StoredFunnelRow, decode_funnel_row, decode_journey, decode_profile
from store.keys import Keys
from touchpath.anchors import anchor_data
from touchpath.profiles import sum_counts
from touchpath.reevaluation import RulesState
from touchpath.stages import StageModel

ROWS_CHUNK = 10_000


class ReadModel:
    """Typed reads over one connection pool; built in the API's lifespan."""

    def __init__(self, client: aioredis.Redis, prefix: str, stages: StageModel) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self._lookups = ProfileLookups(client, prefix)
        self._rows = RowCache(stages.stages)

    async def rules_state(self) -> RulesState:
        """What ``P:rules`` says: the rules version in force and the re-evaluation."""
        raw = await self.client.hgetall(self.keys.rules)
        return RulesState.of({_text(k): _text(v) for k, v in raw.items()})

    async def profile_of(self, identifier: str) -> dict[str, Any] | None:
        """The profile of the customer holding ``identifier`` (``kind:value``), or None."""
        blob = await self._lookups.get(identifier)
        return decode_profile(blob) if blob else None

    async def profiles(self, customer_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Profiles by customer id, in order (None where missing)."""
        if not customer_ids:
            return []
        blobs = await self.client.mget([self.keys.customer(c) for c in customer_ids])
        return [decode_profile(b) if b else None for b in blobs]

    async def account_member_ids(self, group_id: str) -> list[str]:
        """The customer ids the processor indexed as members of an account, sorted."""
        found = await self.client.smembers(self.keys.account_members(group_id))
        return sorted(_text(member) for member in found)

    async def account_profiles(self, group_ids: Sequence[str]) -> list[list[dict[str, Any]]]:
        """For each account, the current profiles of its indexed members (two round trips)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for group_id in group_ids:
                pipe.smembers(self.keys.account_members(group_id))
            found = await pipe.execute()
        ids = [sorted(_text(m) for m in members) for members in found]
        profiles = iter(await self.profiles([cid for members in ids for cid in members]))
        return [[p for p in (next(profiles) for _ in members) if p] for members in ids]

    async def accounts_after(self, after: str | None, count: int) -> list[str]:
        """Up to ``count`` groupIds of ``P:accounts`` after ``after``, in byte order."""
        low = "(" + after if after is not None else "-"
        found = await self.client.zrangebylex(self.keys.accounts, low, "+", start=0, num=count)
        return [_text(group_id) for group_id in found]

    async def counters(self, identifiers: Iterable[str]) -> dict[str, float]:
        """The counters stored under the identifiers, summed (first/last seen as min/max)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in identifiers:
                pipe.hgetall(self.keys.anchor(identifier, "data"))
            found = await pipe.execute()
        return sum_counts(anchor_data(_strings(fields)) for fields in found if fields)

    async def journey(
        self, identifiers: Iterable[str], since_ms: int, until_ms: int
    ) -> list[dict[str, Any]]:
        """The stored timeline entries of the identifiers with a time in [since, until]."""
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in identifiers:
                key = self.keys.anchor(identifier, "journey")
                pipe.zrevrangebyscore(key, until_ms, since_ms, withscores=True)
            found = await pipe.execute()
        return [entry for pairs in found for entry in decode_journey(pairs)]

    async def stage_counts(self, stages: Sequence[str]) -> list[int]:
        """Customers currently in each stage."""
        async with self.client.pipeline(transaction=False) as pipe:
            for stage in stages:
                pipe.zcard(self.keys.stage(stage))
            return [int(n) for n in await pipe.execute()]

    async def in_stage(
        self, stage: str, after: Position | None, low_ms: int, high_ms: int, count: int
    ) -> list[tuple[Position, str]]:
        """Up to ``count`` customers currently in ``stage`` who entered it in
        [low_ms, high_ms), ordered by (entered ms, customer id), strictly after ``after``."""
        key = self.keys.stage(stage)
        start = max(low_ms, after[0]) if after else low_ms
        found: list[tuple[Position, str]] = []
        offset = 0
        while len(found) < count:
            want = count - len(found) + 16  # a few more: entries tied with the cursor
            rows: list[tuple[bytes, float]] = await self.client.zrangebyscore(  # type: ignore[assignment]
                key, start, f"({high_ms}", start=offset, num=want, withscores=True
            )
            for member, score in rows:
                position = (int(score), _text(member))
                if after is None or position > after:
                    found.append((position, position[1]))
            if len(rows) < want:
                break
            offset += len(rows)
        return found[:count]

    async def funnel_rows(self, chunk: int = ROWS_CHUNK) -> AsyncIterator[list[FunnelRow]]:
        """Every customer's funnel row (``HVALS P:funnel``, the cheapest full read for Redis),
        in chunks: between chunks the event loop serves other requests, so a funnel over
        100,000 customers does not hold up stage look-ups. Only changed rows are decoded."""
        raws: list[Any] = await self.client.hvals(self.keys.funnel)
        scan = self._rows.scan()
        for start in range(0, len(raws), chunk):
            yield scan.add(raws[start : start + chunk])
            await asyncio.sleep(0)
        scan.finish()

    async def funnel_rows_grouped(
        self, group_of: Mapping[str, str], default: str
    ) -> AsyncIterator[tuple[str, list[FunnelRow]]]:
        """Every customer's funnel row (``HGETALL P:funnel``), grouped by customer id
        (``default`` for customers ``group_of`` does not name), in chunks."""
        raws: dict[Any, Any] = await self.client.hgetall(self.keys.funnel)
        grouped: dict[str, list[bytes]] = {}
        for cid, raw in raws.items():
            grouped.setdefault(group_of.get(_text(cid), default), []).append(raw)
        scan = self._rows.scan()
        for group, members in grouped.items():
            for start in range(0, len(members), ROWS_CHUNK):
                yield group, scan.add(members[start : start + ROWS_CHUNK])
                await asyncio.sleep(0)
        scan.finish()

    async def all_accounts(self, chunk: int = 500) -> dict[str, list[dict[str, Any]]]:
        """Every account of ``P:accounts`` with its members' current profiles."""
        stored: list[Any] = await self.client.zrange(self.keys.accounts, 0, -1)
        group_ids = [_text(g) for g in stored]
        found: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(group_ids), chunk):
            part = group_ids[start : start + chunk]
            found.update(zip(part, await self.account_profiles(part), strict=True))
            await asyncio.sleep(0)
        return found

    async def stored_rows(self) -> AsyncIterator[list[StoredFunnelRow]]:
        """Every customer's funnel row as stored (all columns, rows that are not rows left
        out), in chunks (``HVALS``)."""
        raws: list[Any] = await self.client.hvals(self.keys.funnel)
        for start in range(0, len(raws), ROWS_CHUNK):
            decoded = map(decode_funnel_row, raws[start : start + ROWS_CHUNK])
            yield [row for row in decoded if row is not None]
            await asyncio.sleep(0)

    async def trigger_counts(self, days: Sequence[str]) -> list[dict[str, str]]:
        """The firing counts of each day (``P:trg:n:<day>``), in order (one pipeline)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self.keys.trigger_counts(day))
            found = await pipe.execute()
        return [_strings(fields) for fields in found]

    async def survey_answers(self) -> AsyncIterator[list[list[Any]]]:
        """Each surveyed customer's answers ``[kind, score, at_ms, stage]`` (``HVALS``)."""
        raws: list[Any] = await self.client.hvals(self.keys.surveys)
        for start in range(0, len(raws), ROWS_CHUNK):
            yield [orjson.loads(raw) for raw in raws[start : start + ROWS_CHUNK]]
            await asyncio.sleep(0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _strings(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}
