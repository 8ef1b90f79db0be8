"""Cursor pagination: every item exactly once, in order, whatever the page sizes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.pagination import Position, decode_cursor, encode_cursor, filtered_page, page_before
from infra.problems import Problem

keys = st.lists(st.tuples(st.integers(0, 30), st.text("abc", max_size=3)), unique=True)


@settings(max_examples=300, deadline=None)
@given(keys, st.integers(1, 7))
def test_newest_first_pages_return_every_item_once(items: list[Position], limit: int) -> None:
    ordered = sorted(items, reverse=True)
    seen: list[Position] = []
    before = None
    for _ in range(len(ordered) + 2):
        page, before = page_before(ordered, lambda item: item, before, limit)
        assert len(page) <= limit
        seen.extend(page)
        if before is None:
            break
        before = decode_cursor(encode_cursor(before), (int, str))  # what a client sends back
    assert seen == ordered


@settings(max_examples=300, deadline=None)
@given(
    keys,
    st.sets(st.integers(0, 30)),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 4),
)
def test_filtered_pages_return_every_match_once(
    items: list[Position], wanted: set[int], limit: int, batch: int, max_batches: int
) -> None:
    ordered = sorted(items)

    async def fetch(after: Position | None, count: int) -> Sequence[tuple[Position, Position]]:
        later = [item for item in ordered if after is None or item > after]
        return [(item, item) for item in later[:count]]

    def keep(item: Position) -> bool:
        return item[0] in wanted

    seen: list[Position] = []
    cursor = None
    for _ in range(len(ordered) + 2):  # every call advances: it examines at least one item
        page, cursor = asyncio.run(filtered_page(fetch, keep, cursor, limit, batch, max_batches))
        assert len(page) <= limit
        seen.extend(page)
        if cursor is None:
            break
    else:
        pytest.fail("pagination did not end")
    assert seen == [item for item in ordered if keep(item)]


@given(st.tuples(st.integers(-(2**53), 2**53), st.text()))
def test_cursor_round_trip(position: Position) -> None:
    assert decode_cursor(encode_cursor(position), (int, str)) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        "e30",
        encode_cursor(("a", 1)),
        encode_cursor((1,)),
        encode_cursor((True, "")),
    ],
)
def test_foreign_cursors_are_a_400_problem(cursor: str) -> None:
    with pytest.raises(Problem) as raised:
        decode_cursor(cursor, (int, str))
    assert raised.value.status == 400


def test_no_cursor_means_the_start() -> None:
    assert decode_cursor(None, (int, str)) is None
    assert decode_cursor("", (int, str)) is None
