"""The decode step alone: records → effects or dead letters, a part at a time (pure)."""

from __future__ import annotations

from infra.streams import Partition
from processor.decode import decode_batch, parts
from tests.unit.processor.records import MODEL, POLICY, TOPIC, batch, event, record

TP = Partition(TOPIC, 0)


def test_every_event_of_a_record_becomes_effects_and_bad_input_dead_letters() -> None:
    good = record(event("u-1", "m1"), event("u-2", "m2"))
    decoded = decode_batch([good, b"not json", None], MODEL, POLICY)
    assert [e.anchor for e in decoded.effects] == ["user_id:u-1", "user_id:u-2"]
    assert [d.code for d in decoded.dead] == ["bad_record", "bad_record"]
    assert decoded.dead[0].raw == b"not json"


def test_an_event_the_core_cannot_use_is_a_bad_event() -> None:
    broken = {**event("u-1", "m1"), "timestamp": "not a time"}
    decoded = decode_batch([record(broken)], MODEL, POLICY)
    assert decoded.effects == [] and [d.code for d in decoded.dead] == ["bad_event"]


def test_parts_end_after_the_record_that_fills_them_with_the_offsets_that_follow() -> None:
    values = [record(event("u", f"m{n}a"), event("u", f"m{n}b")) for n in range(5)]
    found = list(parts(batch(*values, b"{", first_offset=10), MODEL, POLICY, part_events=3))
    assert [len(p.decoded.effects) for p in found] == [4, 4, 2]
    assert [p.offsets for p in found] == [{TP: 12}, {TP: 14}, {TP: 16}]
    assert [len(p.decoded.dead) for p in found] == [0, 0, 1]


def test_a_batch_of_dead_letters_only_still_moves_its_offsets() -> None:
    [only] = parts(batch(b"{", b"["), MODEL, POLICY)
    assert only.decoded.effects == [] and len(only.decoded.dead) == 2
    assert only.offsets == {TP: 2}


def test_an_empty_batch_has_no_parts() -> None:
    assert list(parts({}, MODEL, POLICY)) == []
