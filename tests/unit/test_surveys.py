"""Survey answers: validation, the stage at answer time, NPS and CSAT arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchpath.anchors import AnchorData
from touchpath.effects import effects_of
from touchpath.events import IngestContext, InvalidEvent, normalize_event
from touchpath.identity import IdentityPolicy
from touchpath.profiles import build_customer
from touchpath.stages import load_stage_model
from touchpath.surveys import NO_STAGE, Satisfaction, stage_at, survey_answer

CTX = IngestContext(source="t", default_channel="web", received_at=datetime.now(UTC))


def answer(name: str, score: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": name, "properties": {"score": score}}


@pytest.mark.parametrize(
    ("name", "score"),
    [
        ("NPS Survey Answered", 11),
        ("NPS Survey Answered", -1),
        ("NPS Survey Answered", "9"),
        ("CSAT Survey Answered", 0),
        ("CSAT Survey Answered", 6),
        ("CSAT Survey Answered", None),
        ("CSAT Survey Answered", True),
        ("NPS Survey Answered", 7.5),
    ],
)
def test_out_of_range_scores_are_rejected_with_a_reason(name: str, score: Any) -> None:
    with pytest.raises(InvalidEvent, match=r"properties\.score") as caught:
        normalize_event(answer(name, score), CTX)
    assert caught.value.code == "bad_survey_score"


def test_valid_answers_and_other_events() -> None:
    assert survey_answer(answer("nps survey answered", 10.0)) == ("nps", 10)
    assert survey_answer(answer("CSAT Survey Answered", 1)) == ("csat", 1)
    assert survey_answer(answer("Order Completed", 99)) is None


def test_stage_at_is_the_furthest_stage_entered_by_then() -> None:
    stages = ["awareness", "consideration", "purchase"]
    history = {"awareness": [100], "purchase": [300]}
    assert stage_at(history, 50, stages) == NO_STAGE
    assert stage_at(history, 100, stages) == "awareness"
    assert stage_at(history, 299, stages) == "awareness"
    assert stage_at(history, 1000, stages) == "purchase"


@given(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=200))
def test_nps_is_promoters_minus_detractors_percent(scores: list[int]) -> None:
    totals = Satisfaction()
    totals.add_all(["nps", s, 0, "awareness"] for s in scores)
    report = totals.report(["awareness"])
    promoters = sum(s >= 9 for s in scores)
    detractors = sum(s <= 6 for s in scores)
    assert report["nps"] == round(100 * (promoters - detractors) / len(scores), 1)
    assert -100 <= report["nps"] <= 100
    assert report["stages"][0]["nps_answers"] == len(scores)
    assert report["csat"] is None


def test_profile_answers_carry_the_stage_at_answer_time() -> None:
    model = load_stage_model(None)
    policy = IdentityPolicy()
    events = [
        {"type": "page", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"},
        answer("CSAT Survey Answered", 4) | {"timestamp": "2026-01-02T00:00:00Z"},
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "timestamp": "2026-01-03T00:00:00Z",
        },
        answer("NPS Survey Answered", 10) | {"timestamp": "2026-01-04T00:00:00Z"},
    ]
    anchor = AnchorData()
    for raw in events:
        effects = effects_of(normalize_event(raw, CTX), model, policy)
        for stage, candidate in effects.stages.items():
            anchor.stages[stage] = min(candidate, anchor.stages.get(stage, candidate))
        anchor.conditional.extend(effects.conditional.items())
        anchor.surveys.extend(effects.surveys.values())
    profile = build_customer(["user_id:u1"], {"user_id:u1": anchor}, {}, [], model, policy)
    assert [(a[0], a[1], a[3]) for a in profile["surveys"]] == [
        ("csat", 4, "awareness"),
        ("nps", 10, "post-purchase"),
    ]
