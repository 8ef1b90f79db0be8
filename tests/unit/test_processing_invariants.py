"""The invariant: the final state depends only on the SET of events.

Whatever the arrival order, however often an event is delivered again and however the
stream is cut into batches (or spread over instances), customers, identity sets, journeys,
stages and histories end the same; and the latest stage-change announcement per customer
agrees with the final state, with no entry announced twice in a row.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference import ReferenceStore, make_event
from touchpath.journey import current_entry
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
NAMES = [
    "Product Viewed",
    "Product Added",
    "Order Completed",
    "Support Ticket Created",
    "Checkout Started",
    "Email Link Clicked",
]


KINDS = ["page", "track", "identify", "track", "group", "alias"]
USERS = [None, None, "u0", "u1", "u2"]
DEVICES = [None, "a0-device", "a1-device", "a2-device", "a3-device"]


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events of every call type, ``group`` (account traits, a billing email among them) and
    ``alias`` from a former userId or from an anonymous id included, from server and browser
    keys, several often in the same millisecond."""
    count = draw(st.integers(1, 14))
    found = []
    for index in range(count):
        kind = draw(st.sampled_from(KINDS))
        user = draw(st.sampled_from(USERS[2:] if kind == "alias" else USERS))
        anon = draw(st.sampled_from(DEVICES))
        if user is None and anon is None:
            anon = "a0-device"
        fields: dict[str, Any] = {"trust": draw(st.sampled_from(["server", "server", "browser"]))}
        if user:
            fields["userId"] = user
        if anon and kind != "alias":
            fields["anonymousId"] = anon
        if kind == "alias":
            fields["previousId"] = draw(st.sampled_from([*USERS[2:], *DEVICES[1:]]))
        if kind == "track":
            fields["event"] = draw(st.sampled_from(NAMES))
        if kind == "page":
            fields["properties"] = {"path": draw(st.sampled_from(["/", "/pricing", "/cart"]))}
        if kind in ("identify", "group") and draw(st.booleans()):
            fields["traits"] = {
                "email": draw(st.sampled_from(["e0@x.io", "e1@x.io"])),
                "plan": draw(st.sampled_from(["free", "pro"])),
            }
        if kind == "group":
            fields["groupId"] = draw(st.sampled_from(["g0", "g1"]))
        at_ms = 1_700_000_000_000 + draw(st.integers(0, 40)) * 60_000
        found.append(make_event(kind, f"m{index}", at_ms, **fields))
    return found


def replay(batches: list[list[dict[str, Any]]]) -> ReferenceStore:
    store = ReferenceStore(MODEL)
    for batch in batches:
        store.apply_batch(batch)
    return store


@st.composite
def deliveries(draw: st.DrawFn, base: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The same events, shuffled, some delivered twice, cut into batches."""
    extra = draw(st.lists(st.sampled_from(base), max_size=len(base)))
    stream = draw(st.permutations(base + extra))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), events())
def test_final_state_is_independent_of_order_duplicates_and_batching(
    data: st.DataObject, base: list[dict[str, Any]]
) -> None:
    expected = replay([base]).state()
    assert replay(data.draw(deliveries(base))).state() == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), events())
def test_latest_announcement_agrees_with_final_state(
    data: st.DataObject, base: list[dict[str, Any]]
) -> None:
    store = replay(data.draw(deliveries(base)))
    latest: dict[str, dict[str, Any]] = {}
    for change in store.announcements:
        previous = latest.get(change["customer_id"])
        assert previous is None or (previous["to"], previous["at_ms"], previous["message_id"]) != (
            change["to"],
            change["at_ms"],
            change["message_id"],
        ), "same entry announced twice"
        latest[change["customer_id"]] = change
    for profile in store.profiles.values():
        entry = current_entry(profile)
        if entry is None:
            continue
        change = latest[profile["id"]]
        assert (change["to"], change["at_ms"], change["message_id"]) == entry


def test_post_purchase_needs_a_purchase_before_it() -> None:
    support = make_event("track", "s1", 1_000_000, userId="u9", event="Support Ticket Created")
    store = replay([[support]])
    assert next(iter(store.profiles.values()))["stage"] is None
    order = make_event("track", "o1", 500_000, userId="u9", event="Order Completed")
    store.apply_batch([order])
    profile = next(iter(store.profiles.values()))
    assert profile["stage"] == "post-purchase"
    assert profile["history"]["post-purchase"][1] == "s1"
