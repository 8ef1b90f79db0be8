"""The delivery claim against a real Redis: a subscription at its in-flight limit keeps its
deliveries due without holding up anyone else's."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from infra.webhook_store import WebhookStore, now_ms


def test_claims_respect_the_per_subscription_limit_and_skip_past_a_busy_one(
    redis_url: str,
) -> None:
    async def check() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = WebhookStore(client, f"claim{now_ms()}")
        await store.schedule({f"c{i}.sub_slow": {"sub": "sub_slow", "n": i} for i in range(6)})
        await store.schedule({f"c{i}.sub_ok": {"sub": "sub_ok", "n": i} for i in range(3)})

        claimed, due = await store.claim(10, 60_000, per_subscription=2, in_flight={"sub_slow": 1})
        subs = sorted(job["sub"] for _, job in claimed)
        assert subs == ["sub_ok"] * 2 + ["sub_slow"]  # one more slow one, two of the others
        assert due is not None and due > now_ms()  # what is left is due but at its limit

        # nothing in flight any more: the rest of both are claimed
        claimed, _ = await store.claim(10, 60_000, per_subscription=2)
        assert sorted(job["sub"] for _, job in claimed) == ["sub_ok"] + ["sub_slow"] * 2

        # a whole window of a busy subscription's deliveries is put off, so the next claim
        # reaches the deliveries behind it
        store = WebhookStore(client, f"claim{now_ms()}b")
        await store.schedule({f"d{i}.sub_slow": {"sub": "sub_slow"} for i in range(3)})
        await store.schedule({"e0.sub_ok": {"sub": "sub_ok"}})
        busy = {"sub_slow": 2}
        claimed, due = await store.claim(10, 60_000, 2, busy, put_off_ms=30_000, scan=3)
        assert claimed == [] and due is not None and due <= now_ms()  # look again at once
        claimed, _ = await store.claim(10, 60_000, 2, busy, put_off_ms=30_000, scan=3)
        assert [d for d, _ in claimed] == ["e0.sub_ok"]
        await client.aclose()

    asyncio.run(check())
