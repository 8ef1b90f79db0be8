"""Triggers, the pure part: the rules' ``triggers`` section, occurrences, decisions, and the
property that the final set of firings does not depend on arrival order, the clock's steps
or the number of firing loops (a simulated store with the real claim/commit semantics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from touchpath.stages import RulesError, load_stage_model, parse_stage_model
from touchpath.triggers import (
    Trigger,
    TriggerModel,
    evaluate,
    load_triggers,
    occurrences,
    parse_duration,
    parse_triggers,
    wake_ms,
)

STAGES = ["awareness", "consideration", "decision", "purchase", "post-purchase"]
CART = Trigger("cart", 10, entered="decision", unless_entered=("purchase",))
LAPSE = Trigger("lapse", 10, entered="purchase", unless_any_event=True)


def parse(*triggers: dict[str, Any]) -> TriggerModel:
    return parse_triggers({"triggers": list(triggers)}, STAGES, "rules.yaml")


def profile(**history: int) -> dict[str, Any]:
    return {
        "id": "c1",
        "identities": ["user_id:u1"],
        "stage": max(history, key=STAGES.index) if history else None,
        "history": {s: [at, f"m-{s}", "web"] for s, at in history.items()},
        "surveys": [],
        "first_touch": None,
    }


# --- parsing ---------------------------------------------------------------------------------


def test_the_default_rules_ship_cart_abandonment_and_lapsing() -> None:
    model = load_triggers()
    cart, lapsing = model.get("cart-abandonment"), model.get("lapsing")
    assert cart is not None and lapsing is not None
    assert (cart.entered, cart.unless_entered, cart.after_ms) == ("decision", ("purchase",), 7.2e6)
    assert lapsing.unless_any_event and lapsing.after_ms == 60 * 86_400_000
    load_stage_model()  # the stage parser accepts the section


def test_a_rules_file_with_triggers_still_parses_as_a_stage_model() -> None:
    text = "stages: [a, b]\nrules: [{stage: a, when: {type: page}}]\ntriggers: []\n"
    assert parse_stage_model(text).stages == ("a", "b")


@pytest.mark.parametrize(
    ("value", "ms"),
    [("2h", 7_200_000), ("90m", 5_400_000), ("60d", 5_184_000_000), ("30s", 30_000),
     ("500ms", 500), (0, 0), ("1.5s", 1500), (2, 2000)],
)  # fmt: skip
def test_durations(value: object, ms: int) -> None:
    assert parse_duration(value, "x") == ms


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "when": {"entered": "nope"}, "after": "1h"}, "unknown stage 'nope'"),
        ({"name": "x", "when": {"entered": "decision"}}, "'after' is required"),
        ({"name": "x", "when": {"entered": "decision"}, "after": "soon"}, "must be a duration"),
        ({"name": "x", "when": {"entered": "decision"}, "after": True}, "must be a duration"),
        ({"name": "X Y", "when": {"entered": "decision"}, "after": 1}, "lower-case slug"),
        ({"name": "x", "when": {}, "after": 1}, "non-empty mapping"),
        ({"name": "x", "when": {"entered": "decision", "survey": "nps"}, "after": 1}, "exactly"),
        ({"name": "x", "when": {"survey": "vibes"}, "after": 1}, "unknown survey 'vibes'"),
        ({"name": "x", "when": {"survey": "nps", "score_at_most": "6"}, "after": 1}, "integer"),
        ({"name": "x", "when": {"entered": "decision"}, "after": 1, "unless": {"bought": 1}},
         "unknown key(s) ['bought']"),
        ({"name": "x", "when": {"entered": "decision"}, "after": 1,
          "unless": {"entered": "later"}}, "unless.entered: unknown stage"),
        ({"name": "x", "when": {"entered": "decision"}, "after": 1,
          "unless": {"any_event": "yes"}}, "any_event must be true or false"),
        ({"name": "x", "when": {"survey": "nps"}, "after": 1, "where": {"channel": "email"}},
         "use it with when.entered"),
        ({"name": "x", "when": {"entered": "decision"}, "after": 1, "where": {"channel": 3}},
         "text value"),
        ({"name": "x", "when": {"entered": "decision"}, "after": 1, "oops": 1}, "unknown key"),
    ],
)  # fmt: skip
def test_invalid_triggers_are_refused_with_the_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(RulesError, match=r"rules\.yaml") as caught:
        parse(spec)
    assert message in str(caught.value)


def test_a_trigger_named_twice_is_refused() -> None:
    spec = {"name": "x", "when": {"entered": "decision"}, "after": 1}
    with pytest.raises(RulesError, match="names a trigger twice"):
        parse(spec, spec)


# --- occurrences and decisions ---------------------------------------------------------------


def test_cart_abandonment_fires_after_its_duration_plus_the_lateness() -> None:
    p = profile(decision=100)
    assert evaluate(CART, p, {}, now_ms=112, lateness_ms=3).fire == []
    assert evaluate(CART, p, {}, now_ms=112, lateness_ms=3).next_ms == 110
    fired = evaluate(CART, p, {}, now_ms=113, lateness_ms=3).fire
    found = [(o.start_ms, o.due_ms, o.cause["message_id"]) for o in fired]
    assert found == [(100, 110, "m-decision")]


def test_a_purchase_in_time_prevents_it_and_a_late_one_cancels_it() -> None:
    assert occurrences(CART, profile(decision=100, purchase=110)) == []
    fired = evaluate(CART, profile(decision=100), {}, 200, 3).fire[0]
    later = evaluate(CART, profile(decision=100, purchase=105), {fired.firing_id: 100}, 300, 3)
    assert later.cancel == [fired.firing_id] and later.fire == []
    # a purchase after the due time proves nothing wrong
    kept = evaluate(CART, profile(decision=100, purchase=111), {fired.firing_id: 100}, 300, 3)
    assert kept.cancel == [] and kept.next_ms is None


def test_lapsing_fires_for_each_quiet_stretch_after_the_purchase() -> None:
    events = [(105, "e1"), (130, "e2"), (135, "e3")]  # quiet: 105→130 and after 135
    found = occurrences(LAPSE, profile(purchase=100), events)
    assert [(o.start_ms, o.due_ms) for o in found] == [(105, 115), (135, 145)]
    assert found[0].cause["message_id"] == "e1"


def test_where_filters_on_the_entry_channel_and_first_campaign() -> None:
    (email,) = parse(
        {"name": "x", "when": {"entered": "decision"}, "after": 0, "where": {"channel": "Email"}}
    ).triggers
    p = profile(decision=5)
    assert occurrences(email, p) == []
    p["history"]["decision"][2] = "email"
    assert len(occurrences(email, p)) == 1
    (spring,) = parse(
        {"name": "y", "when": {"entered": "decision"}, "after": 0, "where": {"campaign": "spring"}}
    ).triggers
    assert occurrences(spring, p) == []
    p["first_touch"] = {"at_ms": 1, "channel": "ads", "campaign": "Spring"}
    assert len(occurrences(spring, p)) == 1


def test_each_detractor_answer_is_an_occurrence_at_once() -> None:
    (detractor,) = parse(
        {"name": "d", "when": {"survey": "nps", "score_at_most": 6}, "after": "0s"}
    ).triggers
    p = profile(purchase=1)
    p["surveys"] = [["nps", 3, 50, "purchase"], ["nps", 9, 60, "purchase"], ["csat", 1, 70, "x"]]
    p["surveys"].append(["nps", 6, 80, "purchase"])
    outcome = evaluate(detractor, p, {}, 80, 0)
    assert [o.start_ms for o in outcome.fire] == [50, 80]


def test_wake_is_the_earliest_due_of_old_and_new_armings() -> None:
    model = TriggerModel((CART, LAPSE))
    assert wake_ms(model, None, profile(decision=100)) == {"cart": 110}
    assert wake_ms(model, profile(decision=100), profile(decision=100, purchase=120)) == {
        "cart": 110,
        "lapse": 130,
    }


# --- the property: arrival order, clock steps and loops do not change the final firings -------

LATENESS, LEASE = 3, 5


@dataclass
class Sim:
    """One customer, the timer store (score + CAS on it), and in-flight evaluations."""

    model: TriggerModel
    arrived: list[tuple[int, str, str]] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    fired: dict[str, dict[str, int]] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)
    inflight: list[tuple[str, int, int, dict[str, Any], list[tuple[int, str]]]] = field(
        default_factory=list
    )

    def profile(self) -> dict[str, Any]:
        history: dict[str, list[Any]] = {}
        for at, mid, kind in sorted(self.arrived):
            if kind != "view" and kind not in history:
                history[kind] = [at, mid, "web"]
        return {**profile(), "history": history}

    def arrive(self, event: tuple[int, str, str]) -> None:
        before = self.profile()
        self.arrived.append(event)
        after = self.profile()
        if before != after:  # the resolver's ZADD LT
            for name, at in wake_ms(self.model, before, after).items():
                self.scores[name] = min(self.scores.get(name, at), at)

    def claim(self, now: int) -> None:
        cutoff = now - LATENESS
        for name, score in sorted(self.scores.items()):
            if score <= cutoff:
                self.scores[name] = cutoff + LEASE
                times = [(at, mid) for at, mid, _ in self.arrived]
                self.inflight.append((name, cutoff + LEASE, now, self.profile(), times))
                return

    def commit(self, index: int) -> None:
        name, lease, now, snapshot, times = self.inflight.pop(index)
        if self.scores.get(name) != lease:
            return  # woken meanwhile: evaluated again from fresh data
        trigger = self.model.get(name)
        assert trigger is not None
        mine = self.fired.setdefault(name, {})
        history = snapshot["history"]
        since = history.get(trigger.entered or "", [0])[0]
        relevant = [t for t in times if t[0] >= since]
        outcome = evaluate(trigger, snapshot, mine, now, LATENESS, relevant, recheck_ms=7)
        for o in outcome.fire:
            if o.firing_id not in mine:
                mine[o.firing_id] = o.start_ms
                self.log.append(("fire", o.firing_id))
        for fid in outcome.cancel:
            if mine.pop(fid, None) is not None:
                self.log.append(("cancel", fid))
        if outcome.next_ms is None:
            del self.scores[name]
        else:
            self.scores[name] = outcome.next_ms


KINDS = st.sampled_from(["view", "view", "decision", "purchase"])
EVENTS = st.lists(st.tuples(st.integers(0, 80), KINDS, st.integers(0, 25)), min_size=1, max_size=12)
ACTIONS = st.lists(st.tuples(st.sampled_from(["claim", "commit", "drop"]), st.integers(0, 3)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, actions=ACTIONS, ticks=st.lists(st.integers(1, 6), min_size=1))
def test_final_firings_do_not_depend_on_arrival_order_clock_or_loops(
    events: list[tuple[int, str, int]], actions: list[tuple[str, int]], ticks: list[int]
) -> None:
    model = TriggerModel((CART, LAPSE))
    facts = [(at, f"e{i}", kind) for i, (at, kind, _) in enumerate(events)]
    arrivals = sorted((at + delay, i) for i, (at, _, delay) in enumerate(events))
    sim = Sim(model)
    now, step, act = 0, 0, 0
    end = max(at for at, _ in arrivals) + 60
    while now <= end:
        while arrivals and arrivals[0][0] <= now:
            sim.arrive(facts[arrivals.pop(0)[1]])
        for _ in range(2):  # some loop claims or commits (or dies: its lease runs out)
            what, which = actions[act % len(actions)] if actions else ("commit", 0)
            act += 1
            if what == "claim":
                sim.claim(now)
            elif sim.inflight:
                index = which % len(sim.inflight)
                if what == "commit":
                    sim.commit(index)
                else:
                    sim.inflight.pop(index)
        now += ticks[step % len(ticks)]
        step += 1
    for _ in range(100):  # every loop healthy again: the clock runs on
        while sim.inflight:
            sim.commit(0)
        now += 1
        sim.claim(now)
    while sim.inflight:
        sim.commit(0)
    final = {fid for mine in sim.fired.values() for fid in mine}
    expected = {
        o.firing_id
        for t in model.triggers
        for o in occurrences(t, sim.profile(), [(at, mid) for at, mid, _ in facts])
    }
    assert final == expected
    fired_ids = [fid for kind, fid in sim.log if kind == "fire"]
    assert len(fired_ids) == len(set(fired_ids)), "a firing was published twice"


# --- where firings go: webhook subscriptions and the SSE stream ------------------------------


def test_subscriptions_choose_triggers_as_they_choose_stages() -> None:
    from touchpath.webhooks import Subscription, SubscriptionError, matches, new_subscription

    firing = {"firing_id": "f", "trigger": "cart", "kind": "trigger.fired", "to": None}
    change = {"to": "purchase", "from": "decision"}
    everything = Subscription("s", "https://x.example", "k")
    carts = Subscription("s", "https://x.example", "k", triggers=("cart",))
    assert matches(everything, change) and not matches(everything, firing)
    assert matches(carts, firing) and not matches(carts, change)
    assert not matches(Subscription("s", "u", "k", triggers=("lapse",)), firing)
    assert matches(Subscription("s", "u", "k", stages=("purchase",), triggers=("*",)), change)
    with pytest.raises(SubscriptionError, match="unknown trigger"):
        new_subscription("https://x.example", [], [], STAGES, None, "", (), ["nope"], ["cart"])
    made = new_subscription("https://x.example", [], [], STAGES, None, "", (), ["cart"], ["cart"])
    assert made.public()["triggers"] == ["cart"]
    assert Subscription.from_json(made.to_json()).triggers == ("cart",)


def test_firings_have_their_own_sse_event_type() -> None:
    from api.routes_stream import _event

    fired = b'{"firing_id":"f","change_id":"f","kind":"trigger.fired","trigger":"cart"}'
    cancelled = fired.replace(b"trigger.fired", b"trigger.cancelled")
    assert b"event: trigger-fired\n" in _event("1-0", fired, set())
    assert b"event: trigger-cancelled\n" in _event("1-0", cancelled, set())
    assert _event("1-0", fired, {"purchase"}) == b""
    assert b"event: stage-change\n" in _event("1-0", b'{"to":"purchase"}', set())
