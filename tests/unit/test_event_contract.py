"""One validity contract: whatever the collector accepts, the processor can decode and store.

Each hostile case of issue #13 that the core decides is here; the round trip is a property
test over accepted events (any accepted year, unicode, the largest sizes and deepest nesting
the limits allow) through the collector's encoding and the processor's decoding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.decode import decode_batch
from touchpath.events import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_NESTING,
    IngestContext,
    InvalidEvent,
    metric_channel,
    normalize_event,
    parse_time,
)
from touchpath.identifiers import MAX_IDENTIFIER_LENGTH, identifiers_of
from touchpath.identity import IdentityPolicy
from touchpath.records import encode_touchpoints
from touchpath.stages import load_stage_model

MODEL = load_stage_model(None)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def ctx(**fields: Any) -> IngestContext:
    return IngestContext(source="website", default_channel="web", received_at=NOW, **fields)


def accept(raw: dict[str, Any]) -> dict[str, Any]:
    return normalize_event(raw, ctx())


def reason(raw: dict[str, Any]) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        accept(raw)
    return caught.value


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def decodes(events: list[dict[str, Any]]) -> int:
    """How many of the accepted events the processor turns into effects (the rest it
    would dead-letter)."""
    value = encode_touchpoints(events, "website")
    decoded = decode_batch([value], MODEL, IdentityPolicy())
    assert not decoded.dead, decoded.dead
    return len(decoded.effects)


# --- timestamps --------------------------------------------------------------------------


def test_a_year_before_1970_is_rejected_with_the_range_not_stored_unreadable() -> None:
    error = reason(
        {"type": "track", "event": "X", "userId": "u", "timestamp": "0999-01-01T00:00:00Z"}
    )
    assert error.code == "bad_timestamp"
    assert "0999-01-01" in str(error) and "1970-01-01" in str(error)


def test_a_year_after_the_latest_is_rejected() -> None:
    error = reason(
        {"type": "track", "event": "X", "userId": "u", "timestamp": "2999-01-01T00:00:00Z"}
    )
    assert error.code == "bad_timestamp" and "2100-01-01" in str(error)


def test_a_skew_correction_out_of_range_names_sent_at() -> None:
    raw = {
        "type": "track",
        "event": "X",
        "userId": "u",
        "timestamp": "1970-01-01T00:00:01Z",
        "sentAt": "2026-12-30T12:00:00Z",
    }
    assert "sentAt" in str(reason(raw))


def test_segments_own_doc_example_with_a_one_digit_month_is_accepted() -> None:
    event = accept(
        {"type": "track", "event": "X", "userId": "u", "timestamp": "2015-2-02T00:30:08.276Z"}
    )
    assert event["timestamp"] == "2015-02-02T00:30:08.276Z"


def test_a_non_iso_date_says_so_not_out_of_range() -> None:
    error = reason({"type": "track", "event": "X", "userId": "u", "timestamp": "yesterday"})
    assert "ISO-8601" in str(error) and "range" not in str(error)


def test_the_edges_of_the_range_round_trip() -> None:
    for moment in (EARLIEST_TIME, LATEST_TIME - timedelta(milliseconds=1)):
        stamp = moment.isoformat(timespec="milliseconds")
        event = accept({"type": "track", "event": "X", "userId": "u", "timestamp": stamp})
        assert parse_time(event["timestamp"], "timestamp") == moment
        assert decodes([event]) == 1


# --- nesting -----------------------------------------------------------------------------


def test_nesting_deeper_than_the_limit_is_rejected() -> None:
    error = reason(
        {"type": "track", "event": "X", "userId": "u", "properties": nested(MAX_NESTING)}
    )
    assert error.code == "too_deep" and str(MAX_NESTING) in str(error)


def test_nesting_at_the_limit_is_accepted_and_decodes() -> None:
    event = accept(
        {"type": "track", "event": "X", "userId": "u", "properties": nested(MAX_NESTING - 1)}
    )
    assert decodes([event]) == 1


# --- identifiers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "identify", "userId": "u\u001fx"},
        {"type": "identify", "anonymousId": "a\u0000b"},
        {"type": "alias", "userId": "u-1", "previousId": "p\u001e1"},
        {"type": "group", "userId": "u-1", "groupId": "g\nx"},
        {"type": "identify", "userId": "u-1", "traits": {"email": "a\u0001b@example.com"}},
        {
            "type": "identify",
            "userId": "u-1",
            "context": {"traits": {"phone": "+44\u001f2079460123"}},
        },
        {
            "type": "track",
            "event": "X",
            "userId": "u-1",
            "context": {"externalIds": [{"id": "e\u007f", "type": "crm"}]},
        },
    ],
)
def test_control_characters_in_any_identifier_are_rejected(raw: dict[str, Any]) -> None:
    error = reason(raw)
    assert error.code == "bad_identifier" and "control character" in str(error)


def test_an_identifier_over_the_length_limit_is_rejected_not_dropped() -> None:
    error = reason({"type": "identify", "userId": "u" * (MAX_IDENTIFIER_LENGTH + 1)})
    assert error.code == "bad_identifier" and str(MAX_IDENTIFIER_LENGTH) in str(error)


def test_no_stored_identifier_can_be_read_back_as_two() -> None:
    # the processor's own extraction never yields a value holding the tie separator
    found = identifiers_of({"type": "identify", "userId": "u\u001fx", "anonymousId": "a-1"})
    assert all("\u001f" not in i.value for i in found)


# --- revenue -----------------------------------------------------------------------------


def test_revenue_out_of_range_is_rejected() -> None:
    raw = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u",
        "properties": {"revenue": 1e308},
    }
    assert reason(raw).code == "bad_field"


# --- the round trip ----------------------------------------------------------------------

_text = st.text(min_size=1, max_size=40)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    _text,
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=30,
)
_moment = st.datetimes(
    min_value=EARLIEST_TIME.replace(tzinfo=None), max_value=datetime(2099, 12, 31, 23, 59, 59)
)


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]))
    raw: dict[str, Any] = {
        "type": kind,
        "userId": draw(_text),
        "timestamp": draw(_moment).isoformat() + "Z",
        "properties": draw(st.dictionaries(_text, _json, max_size=6)),
        "traits": draw(st.dictionaries(_text, _json, max_size=6)),
        "context": {"channel": draw(st.sampled_from(["web", "email", "Zz", "mobile"]))},
    }
    if draw(st.booleans()):
        raw["anonymousId"] = draw(_text)
    if draw(st.booleans()):
        raw["messageId"] = draw(_text)
    if draw(st.booleans()):
        raw["properties"]["deep"] = nested(draw(st.integers(1, MAX_NESTING - 2)))
    raw["event"] = draw(_text)
    raw["groupId"] = draw(_text)
    raw["previousId"] = draw(_text)
    return raw


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(raw_events())
def test_every_accepted_event_decodes_into_effects(raw: dict[str, Any]) -> None:
    try:
        event = accept(raw)
    except InvalidEvent:
        return
    # what went into Kafka is what comes out, and the processor can use it
    assert orjson.loads(encode_touchpoints([event], "website"))["events"] == [
        orjson.loads(orjson.dumps(event))
    ]
    assert decodes([event]) == 1


# --- metric labels -----------------------------------------------------------------------


def test_client_chosen_channels_are_stored_as_sent_but_labelled_other() -> None:
    event = accept({"type": "track", "event": "X", "userId": "u", "context": {"channel": "zz-9"}})
    assert event["context"]["channel"] == "zz-9"
    assert metric_channel("zz-9") == "other" and metric_channel("email") == "email"
