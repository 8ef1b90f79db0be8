"""The resolve step alone: dead letters confirmed first, clusters derived, events counted."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from infra.streams import StreamError
from processor import metrics
from processor.store import ClusterState
from tests.unit.processor.records import batch, event, record
from tests.unit.processor.steps import steps


def _processed() -> float:
    return metrics.EVENTS_PROCESSED.labels("web")._value.get()


def test_a_round_makes_its_customers_visible_and_counts_its_events(redis_url: str) -> None:
    with steps(redis_url) as s:
        [staged] = s.apply(batch(record(event("u-1", "m1"), event("u-1", "m2", "Order Completed"))))
        before = _processed()
        assert s.resolve(staged) == 1
        assert _processed() - before == 2
        [key] = s.client.keys(s.store.keys.customer("*"))
        profile = orjson.loads(s.client.get(key) or b"null")
        assert profile["stage"] == "purchase"


def test_a_round_whose_dead_letters_failed_raises_before_resolving(redis_url: str) -> None:
    with steps(redis_url) as s:
        s.producer.hold = StreamError("not acknowledged")
        [staged] = s.apply(batch(record(event("u-1", "m1")), b"{"))
        with pytest.raises(StreamError):
            s.resolve(staged)  # the caller retries the round with the same input
        assert s.client.keys(s.store.keys.customer("*")) == []
        s.producer.hold = None
        with pytest.raises(StreamError):
            s.resolve(staged)  # the failed letter was sent again: this time it is stored
        assert s.resolve(staged) == 1
        assert all(letter.confirmed for letter in staged.letters)


def test_a_cluster_changed_between_its_read_and_its_write_is_derived_again_and_counted(
    redis_url: str,
) -> None:
    with steps(redis_url) as s:
        [staged] = s.apply(batch(record(event("u-1", "m1"), event("u-1", "m2", "Order Completed"))))
        read = s.store.read_clusters
        moved: list[str] = []

        def read_then_move(clusters: Sequence[str]) -> list[ClusterState]:
            found = read(clusters)
            if not moved:  # another writer, once: the first write must be refused
                moved.extend(clusters)
                s.client.hincrby(s.store.keys.cluster(clusters[0]), "v", 1)
            return found

        s.store.read_clusters = read_then_move  # type: ignore[method-assign]
        before = metrics.STALE_RESOLUTIONS._value.get()
        assert s.resolve(staged) == 1
        assert metrics.STALE_RESOLUTIONS._value.get() - before == 1
        [key] = s.client.keys(s.store.keys.customer("*"))
        assert orjson.loads(s.client.get(key) or b"null")["stage"] == "purchase"
