"""Stage rules: loading, validation errors, matching, gating and history properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchpath.stages import (
    RulesError,
    StageCandidate,
    StageModel,
    _match,
    current_stage,
    load_stage_model,
    matching_stages,
    parse_stage_model,
    stage_history,
)

MODEL = load_stage_model()


def event(kind: str, **fields: object) -> dict:
    return {"type": kind, "context": {"channel": "web"}, **fields}


@pytest.mark.parametrize(
    "sample,stage",
    [
        (event("page", properties={"path": "/"}), "awareness"),
        (event("track", event="product viewed"), "consideration"),
        (event("page", properties={"path": "/pricing/teams"}), "consideration"),
        (event("track", event="Checkout Started"), "decision"),
        (event("track", event="Order Completed"), "purchase"),
    ],
)
def test_default_rules_reach_each_stage(sample: dict, stage: str) -> None:
    assert stage in matching_stages(sample, MODEL)


def test_post_purchase_is_gated_on_purchase() -> None:
    assert matching_stages(event("track", event="Support Ticket Created"), MODEL) == {
        "post-purchase": "purchase"
    }
    gated = [("post-purchase", StageCandidate(100, "s", "web", "purchase"))]
    assert "post-purchase" not in stage_history(gated, MODEL)
    late_purchase = [*gated, ("purchase", StageCandidate(50, "o", "web"))]
    assert stage_history(late_purchase, MODEL)["post-purchase"].message_id == "s"


def test_ignored_events_never_move_a_stage() -> None:
    assert (
        matching_stages(
            event("track", event="Email Opened", properties={"machine_open": True}), MODEL
        )
        == {}
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ("stages: [a, b]\nrules: [{stage: c, when: {type: page}}]", "unknown stage"),
        ("stages: [a, a]\nrules: [{stage: a, when: {type: page}}]", "twice"),
        ("stages: []\nrules: []", "non-empty"),
        ("stages: [a, b]\nrules: [{stage: a, when: {type: page}, after: b}]", "'after'"),
        ("stages: [a]\nrules: [{stage: a, when: {colour: red}}]", "unknown key"),
        ("stages: [a]\nrules: [{stage: a, when: {properties: {p: {gt: 1}}}}]", "operator"),
        ("stages: [a]\nrules: [{stage: a, when: {type: page}}]\nextra: 1", "unknown key"),
        ("- just a list", "mapping"),
        ("stages: [a\n", "YAML"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        parse_stage_model(text, "rules.yaml")


candidates = st.lists(
    st.tuples(
        st.sampled_from(MODEL.stages),
        st.builds(
            StageCandidate,
            st.integers(0, 50),
            st.sampled_from("abc"),
            st.just("web"),
            st.sampled_from([None, None, "purchase"]),
        ),
    ),
    max_size=12,
)


@given(candidates, st.randoms())
def test_history_depends_only_on_the_set_of_candidates(found: list, rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = found + found[: len(found) // 2]
    rnd.shuffle(shuffled)
    assert stage_history(shuffled, MODEL) == stage_history(found, MODEL)


@given(candidates, candidates)
def test_more_candidates_never_lower_the_current_stage(first: list, more: list) -> None:
    def rank(items: list) -> int:
        stage = current_stage(stage_history(items, MODEL), MODEL)
        return -1 if stage is None else MODEL.index(stage)

    assert rank(first + more) >= rank(first)


def _uncached(sample: dict, model: StageModel) -> dict[str, str | None]:
    """Every rule tried in file order: what matching means without the index or cache."""
    return dict(_match(sample, model, model.rules).stages)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 2),
    st.sampled_from(["/", "/pricing", "/PRICING/x", " /blog ", "web", "email", "ads"]),
    st.lists(st.integers(0, 1), max_size=1),
)
random_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["page", "track", "identify", "screen"]),
        "event": st.one_of(
            st.none(),
            st.sampled_from(["Product Viewed", "order completed ", "Email Opened", "Other", 5]),
        ),
        "context": st.fixed_dictionaries({"channel": values}),
        "properties": st.dictionaries(
            st.sampled_from(["path", "machine_open", "link_scanner", "plan"]), values, max_size=3
        ),
    }
)


@given(st.lists(random_events, max_size=30))
def test_cached_matching_agrees_with_trying_every_rule(samples: list[dict]) -> None:
    model = load_stage_model()  # a fresh cache per example
    for sample in samples + samples:  # the second pass answers from the cache
        assert dict(matching_stages(sample, model)) == _uncached(sample, model)
