"""Cursor pagination: opaque cursors and pure page selection.

A cursor is the position of the last item a page returned (a small JSON array, base64url
encoded); the next page starts strictly after it. Positions are totally ordered keys, so
items inserted or removed between two calls never make a page repeat or skip the others.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson

from infra.problems import Problem

T = TypeVar("T")
Position = tuple[Any, ...]


def encode_cursor(position: Position) -> str:
    """The opaque cursor standing for ``position``."""
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(cursor: str | None, kinds: Sequence[type]) -> Position | None:
    """The position a cursor stands for (None without one); a 400 problem when it is not a
    cursor this API issued, i.e. not a list of values of ``kinds``."""
    if not cursor:
        return None
    try:
        position = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        position = None
    if (
        not isinstance(position, list)
        or len(position) != len(kinds)
        or not all(_is(value, kind) for value, kind in zip(position, kinds, strict=True))
    ):
        raise Problem(400, "Bad Request", "cursor is not one this API issued")
    return tuple(position)


def _is(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def page_before(
    items: Sequence[T], key: Callable[[T], Position], before: Position | None, limit: int
) -> tuple[list[T], Position | None]:
    """A newest-first page: up to ``limit`` items whose key is below ``before``.

    ``items`` are sorted by ``key`` descending. Returns the page and the position to pass
    as ``before`` for the next page (None when nothing follows).
    """
    start = 0
    if before is not None:
        start = next((i for i, item in enumerate(items) if key(item) < before), len(items))
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    return page, (key(page[-1]) if more and page else None)


Fetch = Callable[[Position | None, int], Awaitable[Sequence[tuple[Position, T]]]]


async def filtered_page(
    fetch: Fetch[T],
    keep: Callable[[T], bool],
    after: Position | None,
    limit: int,
    batch: int,
    max_batches: int,
) -> tuple[list[T], Position | None]:
    """An oldest-first page of the items ``keep`` accepts, scanning at most ``max_batches``.

    ``fetch(after, n)`` returns up to ``n`` ``(position, item)`` pairs strictly after
    ``after`` in ascending position order (fewer only when the source is exhausted). When
    the scan budget runs out before the page is full, the page is returned short with a
    cursor at the last position examined, so a selective filter never hides later matches:
    callers continue until the cursor is None.
    """
    page: list[T] = []
    position = after
    for _ in range(max_batches):
        found = await fetch(position, batch)
        for at, item in found:
            position = at
            if keep(item):
                page.append(item)
                if len(page) == limit:
                    return page, at
        if len(found) < batch:
            return page, None
    return page, position
