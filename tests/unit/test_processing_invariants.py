"""The invariant: the final state depends only on the SET of events.

Whatever the arrival order, however often an event is delivered again and however the
stream is cut into batches (or spread over instances), customers, identity sets, journeys,
stages and histories end the same; and every stage entry of the final state was announced
(for a customer holding one of its identities then), no announcement repeats what its customer was
told, and none reads ``from: X, to: X``.
"""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference import ReferenceStore, make_event
from touchpath.stages import StageModel, load_stage_model, parse_stage_model

MODEL = load_stage_model()
#: The default rules and two trait conditions (the customer's plan at the event's time).
_DEFAULT = resources.files("touchpath").joinpath("rules/default.yaml").read_text()
#: (inserted before the default file's ``triggers:`` section, which would swallow them)
TRAIT_MODEL = parse_stage_model(
    _DEFAULT.replace(
        "\ntriggers:",
        """
  - stage: decision
    when: {type: track, event: "Email Link Clicked", traits: {plan: [pro]}}
  - stage: post-purchase
    after: purchase
    when: {type: page, traits: {plan: {exists: true}}}

triggers:""",
        1,
    )
)
assert TRAIT_MODEL.trait_names == {"plan"}, "the trait rules must be among the rules"
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
        event = make_event(kind, f"m{index}", at_ms, **fields)
        if kind == "track" and draw(st.booleans()):
            event["context"]["traits"] = {"plan": draw(st.sampled_from(["free", "pro"]))}
        found.append(event)
    return found


def replay(batches: list[list[dict[str, Any]]], model: StageModel = MODEL) -> ReferenceStore:
    store = ReferenceStore(model)
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
def test_trait_conditions_are_independent_of_order_duplicates_and_batching(
    data: st.DataObject, base: list[dict[str, Any]]
) -> None:
    expected = replay([base], TRAIT_MODEL).state()
    assert replay(data.draw(deliveries(base)), TRAIT_MODEL).state() == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), events())
def test_every_entry_is_announced_once(data: st.DataObject, base: list[dict[str, Any]]) -> None:
    store = replay(data.draw(deliveries(base)))
    told: dict[str, dict[str, tuple[Any, ...]]] = {}
    for change in store.announcements:
        assert change["from"] != change["to"], change
        mine = told.setdefault(change["customer_id"], {})
        entry = (change["at_ms"], change["message_id"])
        if change["change"] == "removed":
            mine.pop(change["stage"], None)
            continue
        assert mine.get(change["stage"]) != entry, "same entry announced twice"
        mine[change["stage"]] = entry
    for profile in store.profiles.values():
        mine = set(profile["identities"])
        for stage, (at_ms, message_id, *_) in profile["history"].items():
            assert any(
                (c["stage"], c["at_ms"], c["message_id"]) == (stage, at_ms, message_id)
                and mine.intersection(c["identities"])
                for c in store.announcements
            ), f"{stage} of {profile['id']} never announced"


def test_post_purchase_needs_a_purchase_before_it() -> None:
    support = make_event("track", "s1", 1_000_000, userId="u9", event="Support Ticket Created")
    store = replay([[support]])
    assert next(iter(store.profiles.values()))["stage"] is None
    order = make_event("track", "o1", 500_000, userId="u9", event="Order Completed")
    store.apply_batch([order])
    profile = next(iter(store.profiles.values()))
    assert profile["stage"] == "post-purchase"
    assert profile["history"]["post-purchase"][1] == "s1"
