"""The retry policy alone: Redis and Kafka errors are retried with the same input, a bug
surfaces, a full Redis holds ``redis_full`` until a write lands."""

from __future__ import annotations

import threading

import pytest
import redis

from infra.streams import StreamError
from processor.durable import until_durable
from processor.pauses import REDIS_FULL, Pauses


def _failing(*errors: BaseException) -> tuple[list[int], object]:
    seen: list[int] = []
    pending = list(errors)

    def step(work: int) -> int:
        seen.append(work)
        if pending:
            raise pending.pop(0)
        return work * 2

    return seen, step


def test_transient_errors_are_retried_with_the_same_input() -> None:
    seen, step = _failing(redis.ConnectionError("away"), StreamError("broker"), OSError("reset"))
    assert until_durable(step, 21, threading.Event(), Pauses()) == 42  # type: ignore[arg-type]
    assert seen == [21, 21, 21, 21]


def test_a_full_redis_holds_redis_full_until_a_write_lands() -> None:
    pauses = Pauses()
    observed: list[list[str]] = []

    def step(work: int) -> int:
        observed.append(pauses.active())
        if len(observed) == 1:
            raise redis.OutOfMemoryError("OOM command not allowed")
        return work

    assert until_durable(step, 1, threading.Event(), pauses) == 1
    assert observed == [[], [REDIS_FULL]] and pauses.active() == []


def test_a_bug_surfaces_at_once() -> None:
    seen, step = _failing(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        until_durable(step, 1, threading.Event(), Pauses())  # type: ignore[arg-type]
    assert seen == [1]


def test_stopped_while_retrying_is_none() -> None:
    stop = threading.Event()

    def step(work: int) -> int:
        stop.set()
        raise redis.ConnectionError("away")

    assert until_durable(step, 1, stop, Pauses()) is None
