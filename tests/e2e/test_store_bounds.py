"""Hostile input against the real scripts: no partial state, every bound holds and is counted.

Each case of issue #13 that reaches the store: the trait flood that lost a victim's order
(Lua's unpack limit hit after the messageIds were marked seen), the identifier flood that
grew one cluster to 5,001 identifiers, and the de-duplication window.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.views import journey_entries
from processor.resolver import Resolver
from processor.store import (
    LAYOUT_VERSION,
    JourneyStore,
    LayoutTooNew,
    StoreBounds,
    migrate_layout,
)
from store import scripts
from store.codecs import decode_cluster, decode_journey, decode_profile, seen_member
from store.keys import Keys
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
POLICY = IdentityPolicy()
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def at(ms: int) -> str:
    from datetime import UTC, datetime

    from touchpath.events import format_time

    return format_time(datetime.fromtimestamp(ms / 1000, UTC))


T0 = 1_780_000_000_000


def event(n: int, kind: str = "track", received_ms: int = T0, **fields: Any) -> dict[str, Any]:
    body = {
        "type": kind,
        "messageId": f"m-{n}",
        "timestamp": at(T0 + n),
        "receivedAt": at(received_ms),
        "context": {"channel": "web"},
        "source": "website",
    }
    body.update(fields)
    return body


class Store:
    """A store under a fresh prefix, applying and resolving like the processor does."""

    def __init__(self, client: redis.Redis, bounds: StoreBounds | None = None) -> None:
        self.client = client
        self.store = JourneyStore(client, f"b{uuid.uuid4().hex[:8]}", bounds)
        self.resolver = Resolver(self.store, MODEL, POLICY)
        self.overflows: dict[str, int] = {}

    def send(self, events: list[dict[str, Any]], chunk: int = 200) -> None:
        outcome = self.store.apply([effects_of(e, MODEL, POLICY) for e in events], chunk=chunk)
        for bound, count in outcome.overflows.items():
            self.overflows[bound] = self.overflows.get(bound, 0) + count
        self.resolver.resolve(a.cluster for a in outcome.applied if a.needs_resolution)

    def customer(self, identifier: str) -> dict[str, Any] | None:
        keys = self.store.keys
        cid = self.client.get(keys.customer_of(identifier))
        blob = self.client.get(keys.customer(cid.decode())) if cid else None
        return decode_profile(blob) if blob else None

    def cluster_fields(self, cluster: str) -> dict[str, str]:
        raw = self.client.hgetall(self.store.keys.cluster(cluster))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def counters(self, identifier: str) -> dict[str, str]:
        raw = self.client.hgetall(self.store.keys.anchor(identifier, "data"))
        return {k.decode(): v.decode() for k, v in raw.items()}


def test_a_trait_flood_does_not_lose_the_order_that_shares_its_chunk(
    client: redis.Redis,
) -> None:
    """Issue #13, 2: one Order Completed and 42 identifies of 100 distinct traits each."""
    store = Store(client)
    order = event(0, event="Order Completed", userId="victim", properties={"revenue": 42.0})
    flood = [
        event(n, "identify", userId="victim", traits={f"t{n}_{k}": k for k in range(100)})
        for n in range(1, 43)
    ]
    store.send([order, *flood])
    store.send([order, *flood])  # a redelivery changes nothing
    profile = store.customer("user_id:victim")
    assert profile is not None and profile["orders"] == 1 and profile["revenue"] == 42.0
    assert profile["stage"] == "purchase"
    assert store.counters("user_id:victim")["c:events"] == "43"
    assert len(profile["traits"]) == 200  # the bound, not 4,200
    assert store.overflows["traits"] == 4200 - 200


def test_the_largest_batch_with_the_most_traits_and_identifiers_counts_each_event_once(
    client: redis.Redis,
) -> None:
    store = Store(client, StoreBounds(max_traits=10_000))
    external = [{"type": f"crm{k}", "id": f"x{k}"} for k in range(20)]
    events = [
        event(
            n,
            "identify",
            userId=f"u-{n % 7}",
            anonymousId=f"a-{n}",
            traits={f"trait_{k}": "v" * 200 for k in range(100)},
            context={"channel": "web", "externalIds": external, "traits": {"plan": "pro"}},
        )
        for n in range(400)
    ]
    store.send(events, chunk=400)
    total = sum(int(store.counters(f"user_id:u-{k}").get("c:events", 0)) for k in range(7))
    assert total == 400


def test_one_anonymous_id_tied_to_thousands_of_users_stops_growing(client: redis.Redis) -> None:
    """Issue #13, 5: 5,000 identifies tying user ids to one anonymousId."""
    store = Store(client, StoreBounds(max_cluster_ids=50))
    store.send([event(n, "identify", userId=f"u-{n}", anonymousId="shared") for n in range(1200)])
    cluster = client.get(store.store.keys.identity("anonymous_id:shared"))
    assert cluster is not None
    fields = store.cluster_fields(cluster.decode())
    assert len(decode_cluster(fields).identifiers) == int(fields["ni"]) <= 50
    assert store.overflows["ids"] >= 1200 - 50
    # every user still exists on its own, with its event
    for n in (0, 600, 1199):
        profile = store.customer(f"user_id:u-{n}")
        assert profile is not None, n
    refused = store.customer("anonymous_id:shared")
    assert refused is not None and len(refused["refused_ties"]) <= 20


def test_a_replay_within_the_window_counts_once_and_older_messages_are_forgotten(
    client: redis.Redis,
) -> None:
    store = Store(client, StoreBounds(dedup_window_ms=DAY_MS))
    first = event(1, userId="u", received_ms=T0)
    store.send([first])
    store.send([first])
    later = event(2, userId="u", received_ms=T0 + 2 * DAY_MS)
    store.send([later])
    seen = store.store.keys.anchor("user_id:u", "seen")
    assert client.zrange(seen, 0, -1) == [seen_member("m-2")]  # m-1 left the window
    store.send([first])  # older than the window: not counted again, counted as overflow
    assert store.counters("user_id:u")["c:events"] == "2"
    assert store.overflows["window"] == 1


def test_a_store_of_the_previous_layout_is_migrated_and_still_deduplicates(
    client: redis.Redis,
) -> None:
    store = Store(client)
    keys = store.store.keys
    seen = keys.anchor("user_id:old", "seen")
    client.sadd(seen, "m-1")  # written by the previous version: a plain set
    client.hset(keys.anchor("user_id:old", "data"), "c:events", 1)
    assert migrate_layout(client, keys.prefix, T0) == 2  # a sorted set, then digests
    assert migrate_layout(client, keys.prefix, T0) == 0  # once
    assert client.zrange(seen, 0, -1, withscores=True) == [(seen_member("m-1"), T0)]
    store.send([event(1, userId="old"), event(2, userId="old")])
    assert store.counters("user_id:old")["c:events"] == "2"


def test_a_store_of_a_newer_layout_is_refused(client: redis.Redis) -> None:
    """Rolling back over a layout change would misread the store: the processor refuses."""
    keys = Store(client).store.keys
    client.set(keys.layout, LAYOUT_VERSION + 1)
    with pytest.raises(LayoutTooNew, match="newer touchpath"):
        migrate_layout(client, keys.prefix, T0)


def _as_layout_3(client: redis.Redis, keys: Keys) -> list[str]:
    """Each raw cluster's hash split back into the six keys layouts before 4 kept (``ids``,
    ``ties``, ``ver``, ``snap``, ``over``, ``blocked``, as those versions wrote them); returns
    the clusters."""
    clusters = [k.decode()[len(keys.prefix) + 4 :] for k in client.scan_iter(keys.cluster("*"))]
    for cluster in clusters:
        key = keys.cluster(cluster)
        fields = {k.decode(): v for k, v in client.hgetall(key).items()}
        client.delete(key)
        for kind, part in (("i:", "ids"), ("t:", "ties"), ("c:", "snap"), ("o:", "over")):
            found = {f[2:]: v for f, v in fields.items() if f.startswith(kind)}
            if found:
                client.hset(keys.old_cluster(cluster, part), mapping=found)
        blocked = {f[2:]: v for f, v in fields.items() if f.startswith("b:")}
        if blocked:
            client.hset(keys.old_cluster(cluster, "blocked"), mapping=blocked)
        client.set(keys.old_cluster(cluster, "ver"), fields["v"])
    return clusters


def test_the_snapshots_of_the_previous_layout_are_emptied_once(client: redis.Redis) -> None:
    """Stores of layout 2 hold a copy of each profile in its cluster's snapshot; the
    migration leaves the customer ids (``P:cust`` is the one copy), whether or not the
    customer changes later, and the next events derive the same customers."""
    store = Store(client)
    keys = store.store.keys
    store.send([event(1, userId="a", event="Product Viewed"), event(2, userId="b")])
    clusters = _as_layout_3(client, keys)
    client.set(keys.layout, 2)
    for cluster in clusters:  # as the previous version wrote them
        snap = keys.old_cluster(cluster, "snap")
        for cid in client.hkeys(snap):
            client.hset(snap, cid, client.get(keys.customer(cid.decode())) or b"")
    assert migrate_layout(client, keys.prefix, T0) == 2
    assert migrate_layout(client, keys.prefix, T0) == 0  # once
    assert [set(client.hvals(keys.old_cluster(c, "snap"))) for c in clusters] == [set(), set()]
    for cluster in clusters:
        fields = store.cluster_fields(cluster)
        assert {v for f, v in fields.items() if f.startswith("c:")} == {""}
    store.send([event(3, userId="a", event="Checkout Started")])
    profile = store.customer("user_id:a")
    assert profile is not None and profile["stage"] == "decision"
    assert client.zrange(keys.stage("consideration"), 0, -1) == []


def test_a_store_of_layout_3_gets_each_raw_cluster_in_one_hash(client: redis.Redis) -> None:
    """Layout 4 keeps a raw cluster in one hash: a store of layout 3 (six keys per cluster)
    is converted once, reads as it did, and merges, replays and bounds work on it after."""
    store = Store(client, StoreBounds(max_cluster_ids=3))
    keys = store.store.keys
    store.send([event(1, "identify", userId="u1", anonymousId="a1")])
    store.send([event(2, "identify", userId="u2", anonymousId="a2")])
    for n in range(3, 6):  # the third identifier fills u2's cluster; then ties are refused
        store.send([event(n, "identify", userId="u2", anonymousId=f"b{n}")])
    block = client.register_script(scripts.source("block"))
    assert block(keys=[keys.prefix], args=[keys.prefix, "anonymous_id:b3", '{"by":"t"}'])
    store.resolver.resolve([client.get(keys.identity("anonymous_id:b3")).decode()])
    names = [
        c.decode() for c in client.mget(keys.identity("user_id:u1"), keys.identity("user_id:u2"))
    ]
    before = store.store.read_clusters(names)
    assert before[1].over and before[1].blocked  # something of every part to convert
    layout_3 = _as_layout_3(client, keys)
    assert sorted(layout_3) == sorted(names)
    client.set(keys.layout, 3)
    assert store.store.read_clusters(names) == []  # unreadable until converted
    assert migrate_layout(client, keys.prefix, T0) == 2
    assert migrate_layout(client, keys.prefix, T0) == 0  # once
    assert list(client.scan_iter(match=keys.old_cluster("*", "*"))) == []
    assert store.store.read_clusters(names) == before
    counts = [(f["ni"], f["nt"], f.get("no")) for f in map(store.cluster_fields, names)]
    assert counts == [("2", "1", None), ("3", "2", "2")]
    store.send([event(1, "identify", userId="u1", anonymousId="a1")])  # a replay: no change
    assert store.store.read_clusters(names) == before
    store.send([event(9, "identify", userId="u1", anonymousId="a9")])  # grows u1's cluster
    store.send([event(10, "identify", userId="u1", anonymousId="a2")])  # 5 > 3: refused
    assert store.overflows["ids"] == 2 + 1
    after = store.store.read_clusters(names)
    assert set(after[0].first_seen) == {"user_id:u1", "anonymous_id:a1", "anonymous_id:a9"}
    assert after[1].over == before[1].over
    fields = store.cluster_fields(names[1])
    assert fields["ni"] == "3" and fields["no"] == str(len(after[1].over))


def test_merged_clusters_carry_every_part_and_their_counts(client: redis.Redis) -> None:
    """A tie joining two raw clusters moves the smaller's identifiers, ties, customers,
    refused ties and blocked identifiers into the survivor, whose counts stay exact."""
    store = Store(client, StoreBounds(max_cluster_ids=4))
    keys = store.store.keys
    store.send([event(1, "identify", userId="u1", anonymousId="a1")])
    for n in range(2, 5):  # u2's cluster reaches 4: the next tie is refused
        store.send([event(n, "identify", userId="u2", anonymousId=f"a{n}")])
    store.send([event(5, "identify", userId="u2", anonymousId="a5")])
    block = client.register_script(scripts.source("block"))
    assert block(keys=[keys.prefix], args=[keys.prefix, "anonymous_id:a1", '{"by":"t"}'])
    small = client.get(keys.identity("user_id:u1")).decode()
    big = client.get(keys.identity("user_id:u2")).decode()
    store.resolver.resolve([small])
    fields = store.cluster_fields(big)
    assert (fields["ni"], fields["nt"], fields["no"]) == ("4", "3", "1")
    store.store.bounds = StoreBounds(max_cluster_ids=10)  # room for the merge
    store.send([event(6, "identify", userId="u1", anonymousId="a2")])
    assert client.get(keys.identity("user_id:u1")).decode() == big
    assert not client.exists(keys.cluster(small))
    merged = decode_cluster(store.cluster_fields(big))
    assert set(merged.identifiers) == {
        "user_id:u1",
        "user_id:u2",
        "anonymous_id:a1",
        *(f"anonymous_id:a{n}" for n in (2, 3, 4)),
    }
    assert len(merged.ties) == 5 and len(merged.over) == 1
    assert set(merged.blocked) == {"anonymous_id:a1"}
    fields = store.cluster_fields(big)
    assert (fields["ni"], fields["nt"], fields["no"]) == ("6", "5", "1")


def test_active_days_and_purchase_times_keep_the_latest_within_their_bounds(
    client: redis.Redis,
) -> None:
    """An order on each of 5 days, one per day on the first 3 sent in one chunk: the 3 latest
    days and 2 latest purchases stay, the rest is counted; cycle numbers still count the
    purchases dropped; a second event of a known day needs no resolution."""
    store = Store(client, StoreBounds(max_active_days=3, max_purchases=2))
    orders = [
        event(n, userId="u", timestamp=at(T0 + n * DAY_MS), event="Order Completed")
        for n in range(5)
    ]
    store.send(orders[:3])
    store.send(orders[3:])
    keys = store.store.keys
    fields = store.counters("user_id:u")
    days = sorted(int(v) for f, v in fields.items() if f.startswith("d:"))
    assert days == [T0 + n * DAY_MS for n in (2, 3, 4)] and fields["nd"] == "3"
    buys = client.zrange(keys.anchor("user_id:u", "buys"), 0, -1)
    assert buys == [b"m-3", b"m-4"]
    assert (store.overflows["days"], store.overflows["purchases"]) == (2, 3)
    profile = store.customer("user_id:u")
    assert profile is not None
    assert profile["cycle"] == {"number": 5, "state": "repeat", "since": T0 + 4 * DAY_MS}
    same_day = event(9, userId="u", timestamp=at(T0 + 4 * DAY_MS + 60_000), event="Page Left")
    outcome = store.store.apply([effects_of(same_day, MODEL, POLICY)])
    assert outcome.applied[0].new and not outcome.applied[0].needs_resolution


def test_the_window_fields_keep_the_set_to_the_window_after_every_apply(
    client: redis.Redis,
) -> None:
    """'nr' is the newest receipt, 'tr' when the oldest messageId leaves the window: after
    every apply, fast path or not, the set holds exactly the window behind 'nr'."""
    store = Store(client, StoreBounds(dedup_window_ms=DAY_MS))
    seen = store.store.keys.anchor("user_id:u", "seen")
    hour = 3_600_000  # receipts: one late arrival (49 h), and the window's edges to the ms
    receipts = [0, 3 * hour, DAY_MS, DAY_MS + 1, 27 * hour, 27 * hour + 1, 49 * hour]
    receipts += [30 * hour, 80 * hour, 81 * hour, 104 * hour + 1, 130 * hour]
    sent: dict[str, int] = {}
    for n, offset in enumerate(receipts):
        batch = [event(n, userId="u", received_ms=T0 + offset)]
        if n % 3 == 2:  # a group of two, and a replay: the per-event way
            batch += [event(n + 100, userId="u", received_ms=T0 + offset), batch[0]]
        store.send(batch)
        for e in batch:
            sent.setdefault(e["messageId"], T0 + offset)
        newest = max(sent.values())
        kept = {m: int(r) for m, r in client.zrange(seen, 0, -1, withscores=True)}
        window = {m: r for m, r in sent.items() if r >= newest - DAY_MS}
        assert kept == {seen_member(m): r for m, r in window.items()}, n
        fields = store.counters("user_id:u")
        assert int(fields["nr"]) == newest
        assert int(fields["tr"]) == min(kept.values()) + DAY_MS


def test_an_anchor_stored_before_the_window_fields_still_deduplicates_and_expires(
    client: redis.Redis,
) -> None:
    store = Store(client, StoreBounds(dedup_window_ms=DAY_MS))
    store.send([event(1, userId="old", received_ms=T0), event(2, userId="old", received_ms=T0)])
    data = store.store.keys.anchor("user_id:old", "data")
    client.hdel(data, "nr", "tr")  # as an older version left it
    store.send([event(1, userId="old", received_ms=T0)])  # a replay: counted once
    assert store.counters("user_id:old")["c:events"] == "2"
    store.send([event(3, userId="old", received_ms=T0 + 2 * DAY_MS)])
    seen = store.store.keys.anchor("user_id:old", "seen")
    assert client.zrange(seen, 0, -1) == [seen_member("m-3")]  # the older ones left the window
    store.send([event(4, userId="old", received_ms=T0)])  # older than the window: ignored
    assert store.counters("user_id:old")["c:events"] == "3"
    assert store.overflows["window"] == 1


def test_a_store_of_layout_3_gets_its_active_days_in_the_anchor_hash(
    client: redis.Redis,
) -> None:
    store = Store(client, StoreBounds(max_active_days=3))
    keys = store.store.keys
    store.send([event(n, userId="u", timestamp=at(T0 + n * DAY_MS)) for n in range(2)])
    data, days = keys.anchor("user_id:u", "data"), keys.anchor("user_id:u", "days")
    written = {f: v for f, v in store.counters("user_id:u").items() if f.startswith("d:")}
    client.hdel(data, "nd", *written)  # as layout 3 kept them: a sorted set
    client.zadd(days, {f[2:]: int(v) for f, v in written.items()})
    client.set(keys.layout, 3)
    assert migrate_layout(client, keys.prefix, T0) == 1
    assert migrate_layout(client, keys.prefix, T0) == 0  # once
    assert not client.exists(days)
    fields = store.counters("user_id:u")
    assert {f: v for f, v in fields.items() if f.startswith("d:")} == written
    assert fields["nd"] == "2"
    store.send([event(n, userId="u", timestamp=at(T0 + n * DAY_MS)) for n in range(2, 4)])
    fields = store.counters("user_id:u")
    assert sorted(f for f in fields if f.startswith("d:")) == sorted(
        f"d:{(T0 + n * DAY_MS) // DAY_MS}" for n in (1, 2, 3)
    )
    assert fields["nd"] == "3" and store.overflows["days"] == 1


def test_a_message_sent_again_after_the_window_at_another_time_moves_its_timeline_entry(
    client: redis.Redis,
) -> None:
    """The timeline entry does not hold the time (the score does): the same event sent again
    once its messageId has left the de-duplication window, with another time, is counted
    again as before but keeps one entry, at the time last written; the API shows one entry
    per messageId either way."""
    store = Store(client, StoreBounds(dedup_window_ms=DAY_MS))
    store.send([event(1, userId="u", received_ms=T0)])
    store.send([event(2, userId="u", received_ms=T0 + 2 * DAY_MS)])  # m-1 leaves the window
    again = event(1, userId="u", received_ms=T0 + 2 * DAY_MS, timestamp=at(T0 + 5_000))
    store.send([again])
    assert store.counters("user_id:u")["c:events"] == "3"
    timeline = store.store.keys.anchor("user_id:u", "journey")
    stored = decode_journey(client.zrange(timeline, 0, -1, withscores=True))
    assert [(e["id"], e["at"]) for e in stored] == [("m-2", T0 + 2), ("m-1", T0 + 5_000)]
    assert [e["id"] for e in journey_entries(stored)] == ["m-1", "m-2"]


#: messageIds a client may send (1 to 200 printable characters): short, long, non-ASCII, and
#: one exactly as long as a digest
ODD_IDS = ("m", "x" * 200, "caf\u00e9-\u2603-\U0001f600", "abcdefghijkl", "\u00ff" * 13)


def test_a_store_of_layout_3_gets_digests_in_its_deduplication_sets(
    client: redis.Redis,
) -> None:
    """Layout 3 kept messageIds in the de-duplication sets: each becomes its digest (the same
    as the processor computes, whatever the messageId), its receipt time kept, once; a replay
    of an event stored before counts once, and so does a later one."""
    store = Store(client)
    keys = store.store.keys
    seen = keys.anchor("user_id:old", "seen")
    sent = [event(n, userId="old", messageId=m) for n, m in enumerate(ODD_IDS)]
    store.send(sent)
    client.delete(seen)  # as layout 3 kept them: the messageIds
    client.zadd(seen, {m: T0 + n for n, m in enumerate(ODD_IDS)})
    client.set(keys.layout, 3)
    assert migrate_layout(client, keys.prefix, T0) == 1
    assert migrate_layout(client, keys.prefix, T0) == 0  # once
    assert dict(client.zrange(seen, 0, -1, withscores=True)) == {
        seen_member(m): T0 + n for n, m in enumerate(ODD_IDS)
    }
    store.send(sent)  # replays, one group: the per-event way
    store.send([sent[1]])  # a replay alone: the fast path
    assert store.counters("user_id:old")["c:events"] == str(len(ODD_IDS))
    store.send([event(9, userId="old")])
    assert store.counters("user_id:old")["c:events"] == str(len(ODD_IDS) + 1)


def test_converting_the_deduplication_sets_again_changes_nothing(client: redis.Redis) -> None:
    """A processor still converting while another already writes digests (or an older one
    still writing messageIds): digests are never converted again, messageIds always are, a
    messageId's later receipt kept."""
    store = Store(client)
    keys = store.store.keys
    seen = keys.anchor("user_id:u", "seen")
    store.send([event(1, userId="u", received_ms=T0), event(2, userId="u", received_ms=T0)])
    client.zadd(seen, {"m-1": T0 + 5, "m-3": T0 + 7})  # an older processor's writes
    client.set(keys.layout, 3)
    assert migrate_layout(client, keys.prefix, T0) == 1
    assert dict(client.zrange(seen, 0, -1, withscores=True)) == {
        seen_member("m-1"): T0 + 5,
        seen_member("m-2"): T0,
        seen_member("m-3"): T0 + 7,
    }
    client.set(keys.layout, 3)
    assert migrate_layout(client, keys.prefix, T0) == 0


def test_any_message_id_is_remembered_as_12_bytes_and_counts_once(client: redis.Redis) -> None:
    """Long, non-ASCII or digest-like messageIds: 12 bytes each in the set, and a replay,
    alone (the fast path) or among new events (the per-event way), counts once."""
    store = Store(client)
    sent = [event(n, userId="u", messageId=m) for n, m in enumerate(ODD_IDS)]
    store.send(sent)
    seen = store.store.keys.anchor("user_id:u", "seen")
    assert sorted(client.zrange(seen, 0, -1)) == sorted(seen_member(m) for m in ODD_IDS)
    for replay in sent:
        store.send([replay])
    store.send([*sent, event(9, userId="u")])
    assert store.counters("user_id:u")["c:events"] == str(len(ODD_IDS) + 1)
