"""The apply step alone: parts applied to a real Redis, dead letters sent, outcomes counted."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest

from infra.streams import Partition
from processor import apply as apply_module
from processor.apply import Pending
from processor.decode import parts
from tests.unit.processor.records import TOPIC, batch, event, record
from tests.unit.processor.steps import DEAD, steps

TP = Partition(TOPIC, 0)


def test_a_batch_comes_out_applied_with_its_clusters_offsets_and_counts(redis_url: str) -> None:
    with steps(redis_url) as s:
        [staged] = s.apply(batch(record(event("u-1", "m1"), event("u-2", "m2")), b"{"))
        assert staged.offsets == {TP: 2} and staged.events == 2 and staged.duplicates == 0
        assert len(staged.clusters) == 2  # each new identifier starts a cluster to resolve
        assert staged.channels == Counter({"web": 2}) and len(staged.received_ms) == 2
        assert staged.sequence == s.incarnation.applied == 1
        assert [letter.letter.code for letter in staged.letters] == ["bad_record"]
        assert len(s.broker.topics[DEAD][0]) == 1  # sent at once, confirmed when resolved


def test_a_redelivered_event_is_a_duplicate_and_changes_nothing(redis_url: str) -> None:
    with steps(redis_url) as s:
        value = record(event("u-1", "m1"))
        list(s.apply(batch(value)))
        [again] = s.apply(batch(value, first_offset=1))
        assert again.duplicates == 1 and again.channels == Counter() and not again.received_ms
        assert again.offsets == {TP: 2}


def test_parts_come_out_in_order_each_durable(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply_module, "parts", partial(parts, part_events=1))
    with steps(redis_url) as s:
        values = [record(event(f"u-{n}", f"m{n}")) for n in range(3)]
        found = list(s.apply(batch(*values)))
        assert [p.offsets for p in found] == [{TP: 1}, {TP: 2}, {TP: 3}]
        sequences = [p.sequence for p in found]  # at least the count after its own part
        assert sequences == sorted(sequences) and sequences[-1] == s.incarnation.applied == 3
        assert all(seq >= n for n, seq in enumerate(sequences, 1))
        total = found[0]
        for later in found[1:]:
            total.absorb(later)
        assert total.events == 3 and len(total.clusters) == 3 and total.offsets == {TP: 3}


def test_absorb_folds_a_later_part_into_an_earlier_one() -> None:
    first = Pending(1.0, {TP: 3}, {"a"}, 2, Counter({"web": 1}), [10], 1, [], 4)
    later = Pending(2.0, {TP: 5}, {"b"}, 3, Counter({"web": 2}), [20], 0, [], 6)
    first.absorb(later)
    assert (first.started, first.offsets, first.clusters) == (1.0, {TP: 5}, {"a", "b"})
    assert (first.events, first.channels, first.received_ms) == (5, Counter({"web": 3}), [10, 20])
    assert (first.duplicates, first.sequence) == (1, 6)
