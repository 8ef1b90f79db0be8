"""Two processors resolving one customer at once, through the real scripts and a real Redis.

An anonymous device's events and the user's land on different partitions, so two processors
can apply and resolve the same raw cluster at the same time. A resolution derives from what it
read and writes only if the cluster's version is still the one read (``write_clusters.lua``);
these tests put the other processor's whole step (apply, read, write) between one
resolution's read and its write, and require the same customers as one processor would leave.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.resolver import Resolver
from processor.store import ClusterState, JourneyStore
from store.codecs import decode_profile
from tests.conftest import redis_for_keys
from tests.e2e.test_store_invariants import TAG, cut, final_state
from tests.reference import make_event
from tests.unit.test_processing_invariants import events
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
POLICY = IdentityPolicy()
T0 = 1_768_000_000_000


class Processor:
    """A store and resolver of their own on a shared prefix; ``meanwhile`` runs once, right
    after this processor's next cluster read, before it derives and writes."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.store = JourneyStore(client, prefix)
        self.resolver = Resolver(self.store, MODEL, POLICY, chunk=2)
        self.meanwhile: list[Callable[[], None]] = []
        read = self.store.read_clusters

        def read_then_wait(clusters: Sequence[str]) -> list[ClusterState]:
            found = read(clusters)
            while self.meanwhile:
                self.meanwhile.pop(0)()
            return found

        self.store.read_clusters = read_then_wait  # type: ignore[method-assign]

    def step(self, batch: list[dict[str, Any]]) -> None:
        """Apply a batch and resolve the clusters it touched."""
        effects = [effects_of(event, MODEL, POLICY) for event in batch]
        applied = self.store.apply(effects, chunk=3).applied
        self.resolver.resolve(a.cluster for a in applied if a.needs_resolution)


def profiles(client: redis.Redis, store: JourneyStore) -> dict[str, dict[str, Any]]:
    found = {}
    for key in client.scan_iter(store.keys.customer("*")):
        profile = decode_profile(client.get(key) or b"null")
        found[profile["id"]] = profile
    return found


@pytest.fixture(scope="module")
def client(redis_url: str) -> redis.Redis:
    return redis_for_keys(redis_url, TAG)


def test_a_resolution_read_before_another_processors_change_does_not_overwrite_it(
    client: redis.Redis,
) -> None:
    prefix = f"{TAG}{uuid.uuid4().hex[:8]}"
    anonymous, identified = Processor(client, prefix), Processor(client, prefix)
    identified.step([make_event("identify", "m1", T0, userId="u1", anonymousId="a1")])
    # the device browses (its partition) while the user buys (the other partition): the
    # purchase is applied and resolved between the device's read and its write
    purchase = make_event("track", "m3", T0 + 2, userId="u1", event="Order Completed")
    anonymous.meanwhile.append(lambda: identified.step([purchase]))
    anonymous.step([make_event("track", "m2", T0 + 1, anonymousId="a1", event="Product Viewed")])
    [customer] = profiles(client, anonymous.store).values()
    assert customer["stage"] == "purchase", "the stale write took the purchase back"


def test_a_stage_change_is_announced_once_when_two_processors_resolve_it_at_once(
    client: redis.Redis,
) -> None:
    prefix = f"{TAG}{uuid.uuid4().hex[:8]}"
    anonymous, identified = Processor(client, prefix), Processor(client, prefix)
    identify = make_event("identify", "m1", T0, userId="u1", anonymousId="a1")
    identified.step([identify])
    outbox = anonymous.store.keys.outbox
    before = client.xlen(outbox)
    # the identify delivered again (a rebalance) resolves the customer again, from the same
    # version, between the device's read and its write
    anonymous.meanwhile.append(lambda: identified.step([identify]))
    anonymous.step([make_event("track", "m2", T0 + 1, anonymousId="a1", event="Order Completed")])
    changes = [orjson.loads(f[b"change"]) for _, f in client.xrange(outbox)][before:]
    assert [c["to"] for c in changes] == ["purchase"], "one change, announced once"


def partition(event: dict[str, Any]) -> int:
    """The partition of an event's anchor, out of two (as the collector keys records)."""
    anchor = event.get("userId") or event.get("anonymousId") or event.get("previousId") or ""
    return zlib.crc32(str(anchor).encode()) % 2


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data(), events())
def test_two_processors_interleaving_their_rounds_end_as_one_processor(
    client: redis.Redis, data: st.DataObject, base: list[dict[str, Any]]
) -> None:
    expected = final_state(client, [base])["profiles"]
    prefix = f"{TAG}{uuid.uuid4().hex[:8]}"
    pair = (Processor(client, prefix), Processor(client, prefix))
    streams = [
        cut([e for e in data.draw(st.permutations(base)) if partition(e) == p], data)
        for p in (0, 1)
    ]
    while streams[0] or streams[1]:
        first = data.draw(st.sampled_from([p for p in (0, 1) if streams[p]]))
        batch = streams[first].pop(0)
        other = 1 - first
        if streams[other]:  # the other's round inside this one's
            inner = streams[other].pop(0)
            pair[first].meanwhile.append(lambda p=pair[other], b=inner: p.step(b))
        pair[first].step(batch)
        pair[first].meanwhile.clear()  # a round that read nothing ran no inner round
    assert profiles(client, pair[0].store) == expected
    told = [orjson.loads(f[b"change"]) for _, f in client.xrange(pair[0].store.keys.outbox)]
    ids = [change["change_id"] for change in told]
    assert len(ids) == len(set(ids)), "a stage change was announced twice"
