"""Every stage entry is announced, in stage order, once; corrections say what changed.

The announcements of a customer, folded in order (``entered``/``inserted``/``moved`` set the
stage's entry, ``removed`` drops it), must give exactly the history the reference model
derives, whatever pattern the events arrive in.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.reference import ReferenceStore, make_event
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
T = 1_700_000_000_000
MINUTE = 60_000


def track(message_id: str, minute: int, name: str, user: str = "u1") -> dict[str, Any]:
    extra = {"properties": {"score": 9}} if "Survey" in name else {}
    return make_event("track", message_id, T + minute * MINUTE, userId=user, event=name, **extra)


def fold(announcements: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """Each customer's stage entries as a subscriber reconstructs them from the changes."""
    told: dict[str, dict[str, list[Any]]] = {}
    for change in announcements:
        mine = told.setdefault(change["customer_id"], {})
        if change["change"] == "removed":
            assert change["stage"] in mine, f"removed what was never announced: {change}"
            del mine[change["stage"]]
            continue
        entry = [change["at_ms"], change["message_id"]]
        assert mine.get(change["stage"]) != entry, f"announced twice: {change}"
        mine[change["stage"]] = entry
    return told


def history_of(store: ReferenceStore) -> dict[str, dict[str, list[Any]]]:
    return {
        cid: {stage: entry[:2] for stage, entry in p["history"].items()}
        for cid, p in store.profiles.items()
        if p["history"]
    }


def check(store: ReferenceStore) -> None:
    """The announcements agree with the history, and none reads ``from: X, to: X``."""
    assert fold(store.announcements) == history_of(store)
    for change in store.announcements:
        assert change["from"] != change["to"], change
        assert change["stage"] in MODEL.stages


def test_stages_entered_in_one_round_are_each_announced_in_stage_order() -> None:
    store = ReferenceStore(MODEL)
    store.apply_batch([track("o1", 1, "Order Completed"), track("n1", 2, "NPS Survey Answered")])
    told = [(c["stage"], c["from"], c["to"], c["kind"]) for c in store.announcements]
    assert told == [
        ("purchase", None, "purchase", "advance"),
        ("post-purchase", "purchase", "post-purchase", "advance"),
    ]
    assert [c["message_id"] for c in store.announcements] == ["o1", "n1"]
    check(store)


def test_a_late_earlier_stage_is_announced_as_inserted() -> None:
    store = ReferenceStore(MODEL)
    store.apply_batch([track("o1", 10, "Order Completed")])
    store.apply_batch([track("v1", 5, "Product Viewed")])  # late, earlier: consideration
    (inserted,) = store.announcements[1:]
    assert inserted["stage"] == "consideration" and inserted["change"] == "inserted"
    assert inserted["kind"] == "correction" and inserted["at_ms"] == T + 5 * MINUTE
    check(store)


def test_a_late_earlier_purchase_says_what_moved() -> None:
    store = ReferenceStore(MODEL)
    store.apply_batch([track("o1", 10, "Order Completed")])
    store.apply_batch([track("o0", 4, "Order Completed")])
    (moved,) = store.announcements[1:]
    assert moved["stage"] == "purchase" and moved["change"] == "moved"
    assert moved["kind"] == "correction"
    assert (moved["previous_at_ms"], moved["at_ms"]) == (T + 10 * MINUTE, T + 4 * MINUTE)
    assert moved["previous_message_id"] == "o1" and moved["message_id"] == "o0"
    assert moved["from"] != moved["to"]
    check(store)


def test_replays_and_re_resolution_announce_nothing_again() -> None:
    store = ReferenceStore(MODEL)
    events = [track("v1", 1, "Product Viewed"), track("o1", 2, "Order Completed")]
    store.apply_batch(events)
    before = list(store.announcements)
    store.apply_batch(events)
    store.apply_batch([])
    assert store.announcements == before


def test_change_ids_are_deterministic_and_distinct() -> None:
    events = [track("o1", 10, "Order Completed"), track("n1", 11, "NPS Survey Answered")]
    late = [track("o0", 4, "Order Completed"), track("v1", 3, "Product Viewed")]
    first, second = ReferenceStore(MODEL), ReferenceStore(MODEL)
    for store in (first, second):
        store.apply_batch(events)
        store.apply_batch(late)
    ids = [c["change_id"] for c in first.announcements]
    assert ids == [c["change_id"] for c in second.announcements]
    assert len(set(ids)) == len(ids)


PATTERNS: dict[str, list[list[tuple[str, int, str]]]] = {
    "one stage at a time": [
        [("p1", 1, "Product Viewed")],
        [("a1", 2, "Product Added")],
        [("o1", 3, "Order Completed")],
        [("r1", 4, "Review Submitted")],
    ],
    "several in one batch": [
        [("p1", 1, "Product Viewed"), ("a1", 2, "Product Added"), ("o1", 3, "Order Completed")],
        [("r1", 4, "Review Submitted"), ("n1", 5, "NPS Survey Answered")],
    ],
    "late inserts": [
        [("o1", 10, "Order Completed")],
        [("p1", 2, "Product Viewed")],
        [("a1", 5, "Product Added"), ("c1", 6, "Checkout Started")],
    ],
    "late earlier purchases": [
        [("o1", 10, "Order Completed"), ("r1", 12, "Review Submitted")],
        [("o0", 5, "Order Completed")],
        [("r0", 7, "Support Ticket Created"), ("o-1", 1, "Order Completed")],
    ],
    "post-purchase before its purchase arrives": [
        [("r1", 12, "Review Submitted")],
        [("o1", 10, "Order Completed")],
    ],
}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_every_pattern_announces_the_reference_history(pattern: str) -> None:
    store = ReferenceStore(MODEL)
    for batch in PATTERNS[pattern]:
        store.apply_batch([track(m, minute, name) for m, minute, name in batch])
        check(store)  # after every round, not only at the end
    assert store.announcements
