"""The funnel row's codec: the stored bytes unchanged, decoded by name, old short rows too."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from store.codecs import StoredFunnelRow, decode_funnel_row, encode_funnel_row
from tests.unit.test_api_views import PROFILE
from touchpath.funnel_rows import funnel_row

stages = st.sampled_from(["awareness", "consideration", "purchase"])
rows = st.tuples(
    st.sampled_from(["ads", "web", None]),
    st.sampled_from(["spring", None]),
    st.dictionaries(stages, st.integers(0, 10**13)),
    st.dictionaries(st.sampled_from(["plan", "seats"]), st.sampled_from(["pro", 3, True])),
    st.floats(0, 10**6),
    st.integers(0, 10**13) | st.none(),
    st.dictionaries(stages, st.sampled_from(["web", "email"])),
    st.just({"active": 5}) | st.just({}),
).map(list)


def test_the_encoder_writes_the_bytes_the_row_builder_always_wrote() -> None:
    persona = ("seats",)
    assert encode_funnel_row(PROFILE, persona) == orjson.dumps(funnel_row(PROFILE, persona))


def test_a_profile_round_trips_by_name() -> None:
    row = decode_funnel_row(encode_funnel_row(PROFILE))
    assert row == StoredFunnelRow(
        channel="ads",
        campaign="spring",
        entered={"awareness": 1_000, "consideration": 2_000, "purchase": 4_000},
        traits={"plan": "pro", "beta": True, "seats": 3},
        revenue=120.5,
        first_ms=1_000,
        entered_by={"awareness": "ads", "consideration": "web", "purchase": "web"},
        lifecycle=funnel_row(PROFILE)[7],
    )


@given(rows, st.integers(4, 8))
def test_rows_of_every_version_decode_with_empty_values_for_what_they_lack(
    full: list[Any], size: int
) -> None:
    row = decode_funnel_row(orjson.dumps(full[:size]))
    assert row is not None
    assert (row.channel, row.campaign, row.entered, row.traits) == tuple(full[:4])
    assert row.revenue == (float(full[4]) if size > 4 else 0.0)
    assert row.first_ms == (full[5] if size > 5 else None)
    assert row.entered_by == (full[6] if size > 6 else {})
    assert row.lifecycle == (full[7] if size > 7 else {})


def test_what_is_not_a_row_decodes_to_none() -> None:
    for raw in (b"not json", b"{}", b"[1]", b'["web", null, []]', b'["web", null, 3, {}]'):
        assert decode_funnel_row(raw) is None
    odd = decode_funnel_row(b'["web", null, {}, "x", true, 1.5, [], 2]')
    assert odd == StoredFunnelRow("web", None, {}, {}, 0.0, None, {}, {})
