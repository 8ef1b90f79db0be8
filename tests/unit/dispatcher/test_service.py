"""The dispatcher's loops alone: a real Redis, a receiver of the test's own (no HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis

from dispatcher.delivery import BLOCKED
from dispatcher.service import Dispatcher
from touchpath.settings import Settings
from touchpath.settings_views import DispatcherSettings
from touchpath.signatures import verify_standard
from touchpath.webhooks import new_subscription

STAGES = ["awareness", "consideration", "decision", "purchase", "post-purchase"]
CHANGE = {"change_id": "c1", "to": "decision", "from": None, "at_ms": 1, "kind": "advance"}


@dataclass
class Receiver:
    """Answers each post with the next outcome given (None: 2xx), recording what it got."""

    outcomes: list[str | None]
    posts: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    deadline_s: float = 1.0

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        self.posts.append((url, body, dict(headers)))
        return self.outcomes.pop(0)


async def dispatch(redis_url: str, outcomes: list[str | None]) -> Dispatcher:
    """One change, one subscription, rounds of delivery (each once due) until it settled."""
    settings = DispatcherSettings.of(
        Settings(
            redis_prefix=f"unit-{uuid.uuid4().hex[:8]}",
            webhook_max_attempts=len(outcomes),
            webhook_backoff_base_s=0.01,
            webhook_backoff_cap_s=0.01,
        )
    )
    client = aioredis.Redis.from_url(redis_url)
    dispatcher = Dispatcher(settings, client, Receiver(outcomes), "d1")  # type: ignore[arg-type]
    sub = new_subscription("https://x.example/hook", [], [], STAGES)
    await dispatcher.store.add(sub)
    await client.xadd(dispatcher.outbox, {"change": orjson.dumps(CHANGE)})
    assert await dispatcher.fan_out() == 1
    assert await client.xlen(dispatcher.outbox) == 0  # acknowledged once stored
    jobs = dispatcher.store.keys.webhooks("jobs")
    for _ in range(50):
        await dispatcher.deliver_due()  # starts what is due, waits for a wake-up
        await asyncio.gather(*dispatcher.in_flight)
        if not await client.hlen(jobs):
            return dispatcher
    raise AssertionError("the delivery did not settle")


async def _cleanup(dispatcher: Dispatcher) -> None:
    keys = await dispatcher.client.keys(f"{dispatcher.settings.redis_prefix}:*")
    if keys:
        await dispatcher.client.delete(*keys)
    await dispatcher.client.aclose()


def test_a_delivered_change_is_signed_and_removed(redis_url: str) -> None:
    async def run() -> None:
        dispatcher = await dispatch(redis_url, [None])
        receiver = dispatcher.deliverer
        assert isinstance(receiver, Receiver) and len(receiver.posts) == 1
        url, body, headers = receiver.posts[0]
        sub = (await dispatcher.store.subscriptions())[0]
        verify_standard(sub.secret, headers, body, now=int(headers["webhook-timestamp"]))
        assert url == sub.url and orjson.loads(body)["data"] == CHANGE
        assert await dispatcher.store.claim(10, 1000) == ([], None)
        assert await dispatcher.store.failed_deliveries() == []
        await _cleanup(dispatcher)

    asyncio.run(run())


def test_failures_are_retried_then_kept_as_a_failed_delivery(redis_url: str) -> None:
    async def run() -> None:
        dispatcher = await dispatch(redis_url, ["http_5xx", "timeout", "refused"])
        receiver = dispatcher.deliverer
        assert isinstance(receiver, Receiver) and len(receiver.posts) == 3
        assert len({p[2]["webhook-id"] for p in receiver.posts}) == 1  # same id each try
        [(_, failed)] = await dispatcher.store.failed_deliveries()
        assert failed["attempts"] == 3 and failed["last_error"] == "refused"
        await _cleanup(dispatcher)

    asyncio.run(run())


def test_a_blocked_destination_is_not_tried_again(redis_url: str) -> None:
    async def run() -> None:
        dispatcher = await dispatch(redis_url, [BLOCKED, None])
        receiver = dispatcher.deliverer
        assert isinstance(receiver, Receiver) and len(receiver.posts) == 1
        [(_, failed)] = await dispatcher.store.failed_deliveries()
        assert failed["attempts"] == 1 and failed["last_error"] == BLOCKED
        await _cleanup(dispatcher)

    asyncio.run(run())
