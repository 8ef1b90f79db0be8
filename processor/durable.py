"""Retry policy of the steps that write: a step failing on Redis or Kafka is retried with the
same input (nothing committed meanwhile), backing off from 0.1 s to 5 s; any other error is a
bug and surfaces. While Redis refuses writes (``maxmemory`` reached) the processor holds
``redis_full`` (:mod:`processor.pauses`): unready, though Redis is reachable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from infra.observability import DEPENDENCY_UP
from infra.retry import retry
from infra.streams import StreamError
from processor.pauses import REDIS_FULL, Pauses

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def until_durable(
    step: Callable[[T], R], work: T, stop: threading.Event, pauses: Pauses
) -> R | None:
    """Retry a step on Redis and Kafka errors (same input, nothing committed) until it lands;
    None when stopped first; any other error is a bug and surfaces. While Redis refuses
    writes (``maxmemory`` reached), ``redis_full`` holds: the processor is unready but Redis
    is reachable."""

    def failed(exc: BaseException) -> None:
        if isinstance(exc, redis.OutOfMemoryError):  # (its text quotes the arguments)
            DEPENDENCY_UP.labels("redis").set(1)
            pauses.hold(REDIS_FULL, float("inf"), "used memory > maxmemory")
            log.warning("Redis refuses writes (maxmemory reached), retrying")
        elif isinstance(exc, redis.RedisError | OSError):
            DEPENDENCY_UP.labels("redis").set(0)
            log.warning("batch not durable yet, retrying", extra={"error": repr(exc)})
        else:  # Kafka errors while dead-lettering
            log.warning("batch not finished, retrying", extra={"error": repr(exc)})

    def landed() -> R:
        result = step(work)
        DEPENDENCY_UP.labels("redis").set(1)
        pauses.release(REDIS_FULL)
        return result

    return retry(landed, (redis.RedisError, OSError, StreamError), stop, failed)
