"""The timeline entry's codec: stored by position without its time (the score), small codes
for known channels and types, the same bytes for the same entry, and entries of the format
before (JSON objects with ``at``) decoding to the same entry."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.codecs import (
    JOURNEY_CHANNELS,
    JOURNEY_TYPES,
    decode_journey,
    decode_journey_entry,
    encode_journey_entry,
)
from tests.reference import make_event
from touchpath.effects import MAX_ENTRY_TEXT, effects_of
from touchpath.events import CHANNELS, EVENT_TYPES
from touchpath.stages import load_stage_model, parse_stage_model

AT = 1768168328565
#: an entry of the benchmark population as the format before stored it
OLD = (
    b'{"at":1768168328565,"channel":"web","event":"Product List Viewed",'
    b'"id":"c6e843f1bd1b495a8137a5fb59fdc6a7","source":"bench","tb":"54290ac6487","type":"track"}'
)
ENTRY = {
    "id": "c6e843f1bd1b495a8137a5fb59fdc6a7",
    "at": AT,
    "channel": "web",
    "type": "track",
    "source": "bench",
    "event": "Product List Viewed",
    "tb": "54290ac6487",
}


def stored(entry: dict[str, Any]) -> dict[str, Any]:
    return decode_journey_entry(encode_journey_entry(entry), entry["at"])


def test_an_entry_is_stored_by_position_without_its_time_in_about_half_the_bytes() -> None:
    member = encode_journey_entry(ENTRY)
    assert member == (
        b'[1,"c6e843f1bd1b495a8137a5fb59fdc6a7",0,0,"54290ac6487","bench","Product List Viewed"]'
    )
    assert len(member) <= 0.6 * len(OLD)
    assert decode_journey_entry(member, float(AT)) == ENTRY


def test_an_entry_of_the_format_before_decodes_to_the_same_entry() -> None:
    assert decode_journey_entry(OLD, AT) == ENTRY
    assert decode_journey_entry(OLD.decode(), float(AT)) == ENTRY  # str members too
    assert decode_journey([(OLD, AT), (encode_journey_entry(ENTRY), AT)]) == [ENTRY, ENTRY]


def test_the_time_is_the_score() -> None:
    for member in (OLD, encode_journey_entry(ENTRY)):
        assert decode_journey_entry(member, 1234.0)["at"] == 1234


def test_missing_fields_are_nulls_and_trailing_ones_are_dropped() -> None:
    bare = {"id": "m", "at": 1, "channel": "web", "type": "identify", "source": None}
    assert encode_journey_entry(bare) == b'[1,"m",0,2]'
    assert stored(bare) == bare  # source: always there, null when the event had none
    campaign = {**bare, "tb": "1ab", "campaign": {"name": "spring"}}
    assert encode_journey_entry(campaign) == b'[1,"m",0,2,"1ab",null,null,null,{"name":"spring"}]'
    assert stored(campaign) == campaign
    empty = {**bare, "campaign": {}}  # a campaign without the fields kept: kept as it was
    assert stored(empty) == empty


def test_unknown_channels_stay_text_and_the_codes_only_grow_at_the_end() -> None:
    made_up = {**ENTRY, "channel": "made-up-7"}
    assert b'"made-up-7"' in encode_journey_entry(made_up)
    assert stored(made_up) == made_up
    assert stored({**ENTRY, "channel": "0"}) == {**ENTRY, "channel": "0"}  # text, not a code
    assert JOURNEY_CHANNELS[:16] == (
        *("web", "mobile", "email", "chat", "ads", "social", "search", "store", "support"),
        *("server", "sms", "push", "direct", "referral", "affiliate", "other"),
    )
    assert JOURNEY_TYPES[:6] == ("track", "page", "identify", "screen", "group", "alias")
    assert set(JOURNEY_CHANNELS) >= CHANNELS and set(JOURNEY_TYPES) >= EVENT_TYPES


def test_the_same_entry_has_the_same_bytes_whatever_the_order_of_its_objects() -> None:
    one = {**ENTRY, "properties": {"path": "/", "title": "Home"}, "r": {"b": 1, "a": 2}}
    other = {**ENTRY, "properties": {"title": "Home", "path": "/"}, "r": {"a": 2, "b": 1}}
    assert encode_journey_entry(one) == encode_journey_entry(other)


def test_the_member_is_one_per_event_and_its_time_only_the_score() -> None:
    model = load_stage_model()
    first = effects_of(make_event("track", "m1", AT, userId="u", event="X"), model)
    other = effects_of(make_event("track", "m2", AT, userId="u", event="X"), model)
    later = effects_of(make_event("track", "m1", AT + 5, userId="u", event="X"), model)
    assert encode_journey_entry(first.entry) != encode_journey_entry(other.entry)
    # a messageId sent again with another time (past the de-duplication window) moves the
    # entry's score instead of adding a second entry
    assert encode_journey_entry(first.entry) == encode_journey_entry(later.entry)


@pytest.mark.parametrize(
    "member",
    [
        *(b'[2,"m",0,0]', b'[1,"m"]', b"[]", b'"x"', b"3", b"null", b"not json"),
        *(b'[1,"m",16,0]', b'[1,"m",0,6]', b'[1,"m",-1,0]'),  # codes no entry uses
    ],
)
def test_what_is_not_an_entry_raises(member: bytes) -> None:
    with pytest.raises(ValueError):
        decode_journey_entry(member, 0)


text = st.text(max_size=30)
scalars = (
    text
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
)
entries = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {
            "id": st.text(min_size=1, max_size=40),
            "at": st.integers(0, 4_102_444_800_000),
            "channel": st.sampled_from(sorted(CHANNELS)) | text,
            "type": st.sampled_from(sorted(EVENT_TYPES)),
            "source": text | st.none(),
        }
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "event": text,
            "properties": st.dictionaries(st.sampled_from(["path", "title", "sku"]), scalars),
            "campaign": st.dictionaries(st.sampled_from(["name", "source", "medium"]), text),
            "tb": st.from_regex(r"[0-59][0-9a-f]{10}", fullmatch=True),
            "r": st.dictionaries(text, scalars),
        },
    ),
)


@given(entries)
def test_every_entry_round_trips_in_both_formats(entry: dict[str, Any]) -> None:
    assert stored(entry) == entry
    old = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)  # as the format before wrote it
    assert decode_journey_entry(old, entry["at"]) == entry


HOSTILE = [
    "a\x1fb",  # the field separator of other members
    '"],[1,"x',  # JSON that would close the array in a naive format
    "back\\slash",
    "Zoë 東京 🚀",
    "\u2028\u2029",
    "N" * 30_000,  # cut at MAX_ENTRY_TEXT by the entry builder
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_round_trip_from_the_event_on(value: str) -> None:
    model = parse_stage_model(
        "stages: [a]\nrules:\n  - {stage: a, when: {type: track, context: {locale: x}}}\n"
    )
    event = make_event(
        "track",
        "id-" + value[:100],
        AT,
        userId="u",
        event=value,
        channel="web",
        properties={"title": value, "path": value},
    )
    event["context"].update(campaign={"name": value, "medium": value}, locale=value)
    entry = effects_of(event, model).entry
    assert len(entry["event"]) == min(len(value), MAX_ENTRY_TEXT)
    assert entry["r"] == {"context.locale": value[:MAX_ENTRY_TEXT]}
    member = encode_journey_entry(entry)
    assert orjson.loads(member)[1] == "id-" + value[:100]  # valid JSON, the messageId in it
    assert stored(entry) == entry
