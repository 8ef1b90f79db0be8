"""The installation's erasure key: ``TOUCHPATH_ERASURE_KEY`` when set, otherwise a random key
generated once and kept in Redis at ``P:erasure-key`` (the first service to start creates it;
every processor and API process then reads the same one). See ``touchpath/erasure.py``."""

from __future__ import annotations

import secrets

import redis
import redis.asyncio as aioredis

from store.keys import Keys


def _new() -> str:
    return secrets.token_hex(32)


def erasure_key(client: redis.Redis, prefix: str, configured: str) -> bytes:
    """The key (synchronous client)."""
    if configured:
        return configured.encode()
    name = Keys(prefix).erasure_key
    client.set(name, _new(), nx=True)
    return _bytes(client.get(name))


async def erasure_key_async(client: aioredis.Redis, prefix: str, configured: str) -> bytes:
    """The key (asyncio client)."""
    if configured:
        return configured.encode()
    name = Keys(prefix).erasure_key
    await client.set(name, _new(), nx=True)
    return _bytes(await client.get(name))


def _bytes(value: bytes | str | None) -> bytes:
    if value is None:
        raise RuntimeError("the erasure key vanished from Redis while it was being read")
    return value if isinstance(value, bytes) else value.encode()
