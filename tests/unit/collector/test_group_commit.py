"""Group commit: a request's failure is its own, and a group's failure answers all of it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from collector.group_commit import MAX_GROUP_BYTES, GroupCommit
from infra.kafka import BrokerUnavailable, Record
from touchpath.records import (
    RecordError,
    decode_touchpoints,
    encode_touchpoints,
    join_touchpoints,
)


class MemoryProducer:
    """Keeps what it is asked to write; fails as told."""

    def __init__(self, error: Exception | None = None) -> None:
        self.records: list[Record] = []
        self.error = error

    async def send_many(self, records: list[Record]) -> None:
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        self.records.extend(records)


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "X", "userId": f"u-{n}", "messageId": f"m-{n}", **extra}


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


async def _write_all(
    commit: GroupCommit, requests: list[list[dict[str, Any]]]
) -> list[BaseException | None]:
    results = await asyncio.gather(
        *(commit.write(events, [], "website", 100) for events in requests),
        return_exceptions=True,
    )
    return list(results)


def test_joined_parts_are_the_bytes_of_one_encoding() -> None:
    events = [event(1), event(2, properties={"ü": [1, 2.5, None]}), event(3)]
    parts = [orjson.dumps(events[:2]), orjson.dumps([]), orjson.dumps(events[2:])]
    assert join_touchpoints(parts, 'we"b') == encode_touchpoints(events, 'we"b')


def test_an_event_that_cannot_be_encoded_fails_its_own_request_only() -> None:
    producer = MemoryProducer()
    commit = GroupCommit(producer, "touchpoints")  # type: ignore[arg-type]
    poisoned = [event(0, properties=deep(300))]  # deeper than orjson writes
    requests = [[event(n)] for n in range(1, 30)]
    results = asyncio.run(_write_all(commit, [*requests[:10], poisoned, *requests[10:]]))
    assert isinstance(results[10], orjson.JSONEncodeError)
    assert results[:10] + results[11:] == [None] * 29
    written = [
        e["messageId"] for _, _, value in producer.records for e in decode_touchpoints(value)
    ]
    assert sorted(written) == sorted(f"m-{n}" for n in range(1, 30))


@pytest.mark.parametrize("error", [BrokerUnavailable("down"), RuntimeError("a bug")])
def test_a_failed_write_answers_every_request_of_the_group(error: Exception) -> None:
    commit = GroupCommit(MemoryProducer(error), "touchpoints")  # type: ignore[arg-type]

    async def run() -> list[BaseException | None]:
        return await asyncio.wait_for(_write_all(commit, [[event(n)] for n in range(5)]), 5)

    assert all(isinstance(r, type(error)) for r in asyncio.run(run()))


def test_the_requests_of_one_turn_share_one_record_with_their_dead_letters() -> None:
    producer = MemoryProducer()
    commit = GroupCommit(producer, "touchpoints")  # type: ignore[arg-type]
    dead: Record = ("dead-letter", None, b"bad")

    async def run() -> list[None]:
        return await asyncio.gather(
            commit.write([event(1)], [dead], "website", 100),
            commit.write([event(2), event(3)], [], "website", 100),
            commit.write([event(4)], [], "backend", 100),
        )

    assert asyncio.run(run()) == [None, None, None]
    by_topic = sorted((topic, decode_or_raw(value)) for topic, _, value in producer.records)
    assert by_topic == [
        ("dead-letter", b"bad"),
        ("touchpoints", ["m-1", "m-2", "m-3"]),
        ("touchpoints", ["m-4"]),
    ]


def test_a_full_group_is_written_before_the_next_request_joins() -> None:
    producer = MemoryProducer()
    commit = GroupCommit(producer, "touchpoints")  # type: ignore[arg-type]
    half = MAX_GROUP_BYTES // 2 + 1

    async def run() -> None:
        await asyncio.gather(*(commit.write([event(n)], [], "website", half) for n in range(3)))

    asyncio.run(run())
    assert [decode_or_raw(value) for _, _, value in producer.records] == [
        ["m-0"],
        ["m-1"],
        ["m-2"],
    ]


def decode_or_raw(value: bytes) -> object:
    try:
        return [e["messageId"] for e in decode_touchpoints(value)]
    except RecordError:
        return value
