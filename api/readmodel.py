"""Reads of the journey store for the API (redis.asyncio), one or two round trips each.

The layout is the processor's (``processor/store.py``); key names come from
:class:`touchpath.keys.Keys`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from touchpath.journey import AnchorData, anchor_data
from touchpath.keys import Keys

# One round trip for the hot path: identifier → customer id → profile.
_PROFILE_BY_IDENTIFIER = """
local cid = redis.call('GET', KEYS[1])
if not cid then return false end
return redis.call('GET', ARGV[1] .. cid)
"""


class ReadModel:
    """Typed reads over one Redis connection pool."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self._profile_script = client.register_script(_PROFILE_BY_IDENTIFIER)
        from api.lookups import ProfileLookups

        self._lookups = ProfileLookups(client, prefix)

    async def profile_of(self, identifier: str) -> dict[str, Any] | None:
        """The stage profile of the customer holding ``identifier`` (``kind:value``)."""
        blob = await self._lookups.get(identifier)
        return orjson.loads(blob) if blob else None

    async def profiles(self, customer_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Profiles by customer id, in order (None where missing)."""
        if not customer_ids:
            return []
        blobs = await self.client.mget([self.keys.customer(c) for c in customer_ids])
        return [orjson.loads(b) if b else None for b in blobs]

    async def anchors(self, identifiers: Iterable[str]) -> list[AnchorData]:
        """Counters and traits stored under each identifier."""
        wanted = list(identifiers)
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in wanted:
                pipe.hgetall(self.keys.anchor(identifier, "data"))
            raw = await pipe.execute()
        return [anchor_data(_strings(fields)) for fields in raw if fields]

    async def journey(
        self, identifiers: Iterable[str], since_ms: float, until_ms: float
    ) -> list[dict[str, Any]]:
        """Every stored timeline entry of the identifiers in the time range, newest first."""
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in identifiers:
                pipe.zrevrangebyscore(self.keys.anchor(identifier, "journey"), until_ms, since_ms)
            raw = await pipe.execute()
        entries = [orjson.loads(member) for members in raw for member in members]
        entries.sort(key=lambda e: (e["at"], e["id"]), reverse=True)
        return entries

    async def stage_counts(self, stages: Sequence[str]) -> list[int]:
        """Customers currently in each stage."""
        async with self.client.pipeline(transaction=False) as pipe:
            for stage in stages:
                pipe.zcard(self.keys.stage(stage))
            return [int(n) for n in await pipe.execute()]

    async def in_stage(
        self, stage: str, low: tuple[float, str], high_ms: float, count: int
    ) -> list[tuple[str, float]]:
        """Customers in a stage entered in ``[low, high_ms]`` after the cursor ``low``."""
        low_ms, after_id = low
        found: list[tuple[str, float]] = []
        offset = 0
        while len(found) < count:
            rows = await self.client.zrangebyscore(
                self.keys.stage(stage),
                low_ms,
                high_ms,
                start=offset,
                num=count + 50,
                withscores=True,
            )
            if not rows:
                break
            offset += len(rows)
            pairs = cast(list[tuple[bytes, float]], rows)
            found.extend(
                (_text(m), float(s)) for m, s in pairs if (float(s), _text(m)) > (low_ms, after_id)
            )
        return found[:count]

    async def funnel_rows(self) -> list[list[Any]]:
        """Every customer's compact funnel row."""
        raw = cast(list[bytes], await self.client.hvals(self.keys.funnel))
        rows: list[list[Any]] = orjson.loads(b"[" + b",".join(raw) + b"]")  # one parse
        return rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _strings(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}
