"""Start-up without Kafka: one clear line per attempt, no traceback, and no kafka-python noise."""

from __future__ import annotations

import logging
import threading

import pytest

from infra.kafka import BrokerUnavailable
from infra.logs import configure_logging
from infra.retry import Backoff
from processor.service import wait_for_kafka


def test_an_unreachable_kafka_is_one_line_per_attempt(caplog: pytest.LogCaptureFixture) -> None:
    attempts = iter([BrokerUnavailable("cannot reach Kafka at k:9"), BrokerUnavailable("again")])

    def prepare() -> None:
        error = next(attempts, None)
        if error:
            raise error

    with caplog.at_level(logging.WARNING, logger="processor.service"):
        assert wait_for_kafka(prepare, threading.Event(), Backoff(0.001, 0.002))
    lines = [r for r in caplog.records if r.name == "processor.service"]
    assert [r.getMessage().split(";")[0] for r in lines] == ["cannot reach Kafka at k:9", "again"]
    assert all(r.exc_info is None for r in lines)


def test_a_stop_while_waiting_ends_the_start_up() -> None:
    stop = threading.Event()

    def prepare() -> None:
        stop.set()
        raise BrokerUnavailable("down")

    assert not wait_for_kafka(prepare, stop, Backoff(0.001, 0.002))


def test_kafka_pythons_own_connection_errors_are_not_logged() -> None:
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    saved = root.handlers[:], root.level, kafka.level
    try:
        configure_logging("processor", "INFO")
        assert logging.getLogger("kafka.net.manager").getEffectiveLevel() > logging.ERROR
        configure_logging("processor", "DEBUG")
        assert kafka.getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        kafka.setLevel(saved[2])
