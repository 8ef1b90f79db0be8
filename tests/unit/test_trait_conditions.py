"""Trait conditions match the customer's traits in force at the event's time, whatever the
order the events arrive in; a stage entry names the event and the rule that caused it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.reference import ReferenceStore, make_event
from touchpath.stages import RulesError, load_stage_model, parse_stage_model

RULES = """
stages: [lead, qualified, customer]
rules:
  - stage: lead
    when: {type: track}
  - stage: qualified
    when: {type: track, event: "Demo Requested", traits: {company_size: ["201+"]}}
  - stage: customer
    after: qualified
    when: {type: track, event: "Order Completed", traits: {plan: {exists: true}}}
"""
MODEL = parse_stage_model(RULES)
T = 1_700_000_000_000
MINUTE = 60_000


def identify(message_id: str, minute: int, **traits: Any) -> dict[str, Any]:
    return make_event("identify", message_id, T + minute * MINUTE, userId="u1", traits=traits)


def demo(message_id: str, minute: int, **fields: Any) -> dict[str, Any]:
    at = T + minute * MINUTE
    return make_event("track", message_id, at, event="Demo Requested", **fields)


def stage_after(*batches: list[dict[str, Any]], model: Any = MODEL) -> dict[str, Any]:
    store = ReferenceStore(model)
    for batch in batches:
        store.apply_batch(batch)
    (profile,) = [p for p in store.profiles.values() if "user_id:u1" in p["identities"]]
    return profile


def test_traits_from_an_earlier_identify_count() -> None:
    profile = stage_after([identify("i1", 1, company_size="201+"), demo("d1", 2, userId="u1")])
    assert profile["stage"] == "qualified"
    assert profile["history"]["qualified"][1] == "d1"


def test_context_traits_of_the_event_count() -> None:
    context = {"channel": "web", "traits": {"company_size": "201+"}}
    event = demo("d1", 2, userId="u1", context=context)
    assert stage_after([event])["stage"] == "qualified"


def test_traits_set_after_the_event_do_not_count() -> None:
    profile = stage_after([demo("d1", 2, userId="u1"), identify("i1", 3, company_size="201+")])
    assert profile["stage"] == "lead"


#: The company grows between two demo requests: only the second one qualifies.
GROWING = [
    identify("i1", 1, company_size="11-50"),
    demo("d1", 2, userId="u1"),
    identify("i2", 3, company_size="201+"),
    demo("d2", 4, userId="u1"),
]


def test_the_value_in_force_at_the_event_counts_not_the_latest() -> None:
    profile = stage_after(GROWING)
    assert profile["history"]["qualified"][1] == "d2"


def test_traits_known_through_another_identifier_count() -> None:
    tie = make_event("identify", "i0", T, userId="u1", anonymousId="dev-1")
    events = [tie, identify("i1", 1, company_size="201+"), demo("d1", 2, anonymousId="dev-1")]
    assert stage_after(events)["stage"] == "qualified"


def test_gated_stages_follow_their_after_stage() -> None:
    order = make_event("track", "o1", T + 5 * MINUTE, userId="u1", event="Order Completed")
    events = [identify("i1", 1, company_size="201+", plan="pro"), order]
    assert stage_after(events)["stage"] == "lead"  # not qualified yet: no customer either
    assert stage_after([*events, demo("d1", 2, userId="u1")])["stage"] == "customer"


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_the_outcome_does_not_depend_on_arrival_order(order: tuple[int, ...]) -> None:
    first = stage_after(GROWING)
    batches = [[GROWING[i]] for i in order]
    assert stage_after(*batches)["history"] == first["history"]


def test_a_rule_of_traits_alone_is_refused() -> None:
    with pytest.raises(RulesError, match="besides 'traits'"):
        parse_stage_model("stages: [a]\nrules:\n  - stage: a\n    when: {traits: {x: 1}}\n")


def test_the_default_rules_document_trait_conditions() -> None:
    from importlib import resources

    text = resources.files("touchpath").joinpath("rules/default.yaml").read_text()
    assert "traits: {company_size:" in text
    example = "\n".join(
        line.removeprefix("  # ") for line in text.splitlines() if line.startswith("  #   ")
    )
    assert "Demo Requested" in example
    assert load_stage_model().trait_names == frozenset()  # the example is commented out


def test_caused_by_names_the_event_and_the_rule() -> None:
    profile = stage_after([identify("i1", 1, company_size="201+"), demo("d1", 2, userId="u1")])
    cause = profile["history"]["qualified"][3]
    assert cause == {"type": "track", "event": "Demo Requested", "rule": 1}
    assert profile["history"]["lead"][3] == {"type": "track", "event": "Demo Requested", "rule": 0}
