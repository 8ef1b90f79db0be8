"""Stage/channel flows (the Sankey links) from stored funnel rows."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from api.flows import FIRST_TOUCH, flows
from api.selection import Selection
from store.codecs import StoredFunnelRow, decode_funnel_row

STAGES = ["awareness", "consideration", "decision", "purchase"]
rows = st.lists(
    st.tuples(
        st.sampled_from(["ads", "email", None]),
        st.sampled_from(["spring", None]),
        st.dictionaries(st.sampled_from(STAGES), st.integers(0, 10), max_size=4),
        st.just({}),
        st.just(0.0),
        st.none(),
        st.dictionaries(st.sampled_from(STAGES), st.sampled_from(["web", "chat"]), max_size=4),
    ).map(list),
    max_size=40,
)


def stored(*rows: list[Any]) -> list[StoredFunnelRow]:
    """Rows as the store holds them, decoded as the API reads them."""
    decoded = [decode_funnel_row(orjson.dumps(row)) for row in rows]
    assert None not in decoded
    return decoded  # type: ignore[return-value]


@given(rows)
def test_every_customer_flows_in_once_and_links_conserve(found: list[list[Any]]) -> None:
    answer = flows(stored(*found), STAGES)
    links = answer["links"]
    entering = sum(link["customers"] for link in links if link["source"].startswith(FIRST_TOUCH))
    assert entering == answer["customers"] == sum(1 for r in found if r[2])
    for stage in STAGES:  # nobody leaves a stage more often than they entered it
        into = sum(link["customers"] for link in links if link["target"] == stage)
        out = sum(link["customers"] for link in links if link["source"] == stage)
        assert out <= into


def test_paths_follow_entry_time_and_name_the_entering_channel() -> None:
    row = [
        "ads",
        "spring",
        {"awareness": 1, "decision": 5, "consideration": 3},
        {},
        0.0,
        1,
        {"awareness": "ads", "consideration": "email", "decision": "chat"},
    ]
    old_row = ["email", None, {"purchase": 2}, {}, 0.0, 2]  # written before channels were kept
    answer = flows(stored(row, old_row), STAGES)
    got = {(link["source"], link["target"], link["channel"]) for link in answer["links"]}
    assert got == {
        ("first touch: ads", "awareness", "ads"),
        ("awareness", "consideration", "email"),
        ("consideration", "decision", "chat"),
        ("first touch: email", "purchase", "(unknown)"),
    }
    assert flows(stored(row, old_row), STAGES, Selection(channel="email"))["customers"] == 1
    assert flows(stored(row, old_row), STAGES, Selection(campaign="spring"))["customers"] == 1
