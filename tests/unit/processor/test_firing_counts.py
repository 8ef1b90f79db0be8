"""Trigger firings counted per due day (``P:trg:n:<day>``): the real firing loop and commit
script against a real Redis; each firing and cancellation counts once, however often the
timer is settled again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from processor.firing import FiringLoop
from processor.triggers import TriggerStore
from store.codecs import encode_journey_entry, encode_profile
from store.codecs import timer_member as member
from store.keys import Keys
from touchpath.triggers import COUNT_DAYS, DAY_MS, Trigger, TriggerModel, count_expiry_s, day_of

CART = Trigger("cart", 2 * 3_600_000, entered="decision", unless_entered=("purchase",))
DECIDED = 1_790_000_000_000  # 2026-09-21T14:13:20Z
DUE = DECIDED + CART.after_ms


@pytest.fixture
def store(redis_url: str) -> Iterator[TriggerStore]:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(f"unit-{uuid.uuid4().hex[:8]}")
    yield TriggerStore(client, keys, 1000, 1000)
    for key in client.scan_iter(f"{keys.prefix}:*"):
        client.delete(key)
    client.close()


def put(store: TriggerStore, **history: int) -> None:
    profile: dict[str, Any] = {
        "id": "c1",
        "identities": ["user_id:u1"],
        "stage": max(history, key=["decision", "purchase"].index),
        "history": {s: [at, f"m-{s}", "web"] for s, at in history.items()},
        "surveys": [],
        "first_touch": None,
    }
    store.client.set(store.keys.customer("c1"), encode_profile(profile))
    store.client.zadd(store.due, {member("c1", "cart"): DUE})


def counts(store: TriggerStore, day: str) -> dict[str, int]:
    found = store.client.hgetall(store.keys.trigger_counts(day))
    return {k.decode(): int(v) for k, v in found.items()}


def loop(store: TriggerStore, now_ms: int) -> FiringLoop:
    return FiringLoop(store, TriggerModel((CART,)), 0, 3_600_000, clock=lambda: now_ms / 1000)


def test_a_firing_and_its_cancellation_count_once_on_the_due_day(store: TriggerStore) -> None:
    now = DUE + 60_000
    put(store, decision=DECIDED)
    assert loop(store, now).step() == 1
    day = day_of(DUE)
    assert counts(store, day) == {"fired\x1fcart": 1}
    ttl = store.client.ttl(store.keys.trigger_counts(day))
    assert 0 < ttl <= count_expiry_s(DUE) - now // 1000
    put(store, decision=DECIDED)  # settled again (a woken timer, a second loop): no double
    loop(store, now).step()
    assert counts(store, day) == {"fired\x1fcart": 1}
    put(store, decision=DECIDED, purchase=DECIDED + 60_000)  # a late purchase voids it
    loop(store, now + 1000).step()
    put(store, decision=DECIDED, purchase=DECIDED + 60_000)
    loop(store, now + 2000).step()
    assert counts(store, day) == {"fired\x1fcart": 1, "cancelled\x1fcart": 1}


def test_a_firing_due_before_the_kept_days_is_published_but_not_counted(
    store: TriggerStore,
) -> None:
    now = DUE + (COUNT_DAYS + 2) * DAY_MS
    put(store, decision=DECIDED)
    loop(store, now).step()
    assert store.client.xlen(store.keys.trigger("outbox")) == 1
    assert counts(store, day_of(DUE)) == {}
    assert list(store.client.scan_iter(store.keys.trigger_counts("*"))) == []


def test_count_days_and_expiry() -> None:
    assert day_of(0) == "1970-01-01"
    assert day_of(DAY_MS - 1) == "1970-01-01" and day_of(DAY_MS) == "1970-01-02"
    assert day_of(-1) == "1969-12-31"
    assert count_expiry_s(0) == (1 + COUNT_DAYS) * 86_400
    assert count_expiry_s(DAY_MS - 1) == count_expiry_s(0)


def test_quiet_gaps_read_the_event_times_of_timelines_in_either_entry_format(
    store: TriggerStore,
) -> None:
    """An ``unless: any_event`` timer reads the events since the arming from the customer's
    timelines through the entry codec: entries written now and in the format before."""
    quiet = Trigger("quiet", 3_600_000, entered="decision", unless_any_event=True)
    put(store, decision=DECIDED)
    timeline = store.keys.anchor("user_id:u1", "journey")
    entry = {"channel": "web", "type": "track", "source": "test", "event": "X", "tb": "5abc"}
    old = orjson.dumps({**entry, "id": 'm"old', "at": DECIDED + 1000}, option=orjson.OPT_SORT_KEYS)
    store.client.zadd(
        timeline,
        {
            encode_journey_entry({**entry, "id": "m-before"}): DECIDED - 1000,  # before arming
            old: DECIDED + 1000,
            encode_journey_entry({**entry, "id": "m-new"}): DECIDED + 5000,
        },
    )
    (claimed,) = store.read([member("c1", "quiet")], TriggerModel((quiet,)))
    assert sorted(claimed.times) == [(DECIDED + 1000, 'm"old'), (DECIDED + 5000, "m-new")]
