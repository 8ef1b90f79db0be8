"""Re-evaluation under changed rules gives what processing every event under them gives.

Events are stored under one rules file; the rules change; each anchor's candidates are
rewritten from its timeline (:func:`touchpath.reevaluation.rewrite`). The customers' stages,
histories and the record of what was announced must then equal those of a store that saw
the same events under the new rules from the start.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings

from store.codecs import decode_journey_entry, encode_journey_entry
from tests.reference import ReferenceStore, make_event
from tests.unit.test_processing_invariants import TRAIT_MODEL, events
from touchpath.effects import effects_of
from touchpath.reevaluation import candidates_of, event_of, rewrite
from touchpath.stages import load_stage_model, parse_stage_model

#: Other stage names, other events for them, a trait condition, a stage after another.
OTHER = parse_stage_model(
    """
stages: [seen, interested, bought, loyal]
rules:
  - {stage: seen, when: {type: page}}
  - {stage: interested, when: {type: track, event: [Product Viewed, Checkout Started]}}
  - {stage: interested, when: {type: page, properties: {path: {prefix: /pricing}}}}
  - {stage: bought, when: {type: track, event: Order Completed}}
  - {stage: bought, when: {type: track, event: Email Link Clicked, traits: {plan: [pro]}}}
  - {stage: loyal, after: bought, when: {type: track, event: Support Ticket Created}}
  - {stage: loyal, after: bought, when: {type: page, properties: {path: /cart}}}
"""
)


def profiles(store: ReferenceStore) -> dict[frozenset[str], tuple[Any, ...]]:
    return {
        frozenset(p["identities"]): (
            p["id"],
            p["stage"],
            orjson.dumps(p["history"]),
            orjson.dumps(p["cycles"]),
            p["orders"],
            round(p["revenue"], 6),
        )
        for p in store.profiles.values()
    }


def told(store: ReferenceStore) -> dict[str, Any]:
    """What each customer was told (a customer told nothing may have an empty record)."""
    return {cid: record for cid, record in store.announced.items() if record}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_reevaluated_store_equals_one_that_always_had_the_new_rules(
    base: list[dict[str, Any]],
) -> None:
    for before, after in ((TRAIT_MODEL, OTHER), (OTHER, TRAIT_MODEL)):
        changed = ReferenceStore(before)
        changed.apply_batch(base)
        changed.reevaluate(after)
        always = ReferenceStore(after)
        always.apply_batch(base)
        assert profiles(changed) == profiles(always)
        assert told(changed) == told(always)


def stored(entry: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry as re-evaluation reads it back from the store."""
    return decode_journey_entry(encode_journey_entry(entry), entry["at"])


@given(events())
@settings(max_examples=100, deadline=None)
def test_an_entry_gives_the_candidates_its_event_gave(base: list[dict[str, Any]]) -> None:
    for model in (TRAIT_MODEL, OTHER):
        for event in base:
            effect = effects_of(event, model)
            entry = stored(effect.entry)
            stages, cond = candidates_of([entry], model)
            assert stages == effect.stages
            assert cond == {m: at for m, at in effect.conditional.items() if m[0] != "~"}


def test_a_rule_on_a_field_the_entry_does_not_show_is_kept_for_re_evaluation() -> None:
    model = parse_stage_model(
        "stages: [a, b]\nrules:\n"
        "  - {stage: a, when: {type: track, properties: {tier: gold}}}\n"
        "  - {stage: b, when: {type: track, context: {locale: de-DE}}}\n"
    )
    event = make_event(
        "track", "m1", 1_700_000_000_000, userId="u", event="X", properties={"tier": "gold"}
    )
    event["context"]["locale"] = "de-DE"
    entry = stored(effects_of(event, model).entry)
    assert entry["r"] == {"properties.tier": "gold", "context.locale": "de-DE"}
    assert event_of(entry)["context"]["locale"] == "de-DE"
    assert set(candidates_of([entry], model)[0]) == {"a", "b"}


def test_candidates_of_events_no_longer_stored_are_kept_when_their_stage_still_exists() -> None:
    model = load_stage_model()
    purchase = make_event("track", "m-old", 1_700_000_000_000, userId="u", event="Order Completed")
    view = make_event("track", "m-new", 1_700_000_100_000, userId="u", event="Product Viewed")
    fields = {
        "s:purchase": effects_of(purchase, model).stages["purchase"],  # its entry was trimmed
        "s:gone": effects_of(purchase, model).stages["purchase"],  # a stage the rules dropped
    }
    change = rewrite([stored(effects_of(view, model).entry)], fields, [], model)
    assert change.delete == ("s:gone",)
    assert set(change.set) == {"s:consideration"}
