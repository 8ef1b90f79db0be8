"""The pipeline alone: applying, when rounds start, commits only after durable, drop and
reposition — against the in-memory consumer, with pure fakes for the apply and resolve steps."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from infra.streams import Batch, Partition
from infra.streams.memory import MemoryBroker, MemoryConsumer, MemoryProducer
from processor import pipeline as pipeline_module
from processor.apply import Pending
from processor.pauses import DEAD_LETTER_LIMIT, Pauses
from processor.pipeline import Pipeline

TOPIC = "touchpoints"
TP = Partition(TOPIC, 0)


def apply_each_batch(batch: Batch) -> Iterator[Pending]:
    """One part per partition: a record is an event touching the cluster named by its value."""
    for tp, records in batch.items():
        clusters = {(r.value or b"").decode() for r in records}
        yield Pending(time.perf_counter(), {tp: records[-1].offset + 1}, clusters, len(records))


@dataclass
class Resolver:
    """Records each round; holds a round while ``gate`` is clear; fails as told first."""

    gate: threading.Event = field(default_factory=threading.Event)
    failures: list[BaseException] = field(default_factory=list)
    rounds: list[Pending] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def __call__(self, pending: Pending) -> int:
        self.gate.wait(10)
        if self.failures:
            raise self.failures.pop(0)
        self.rounds.append(pending)
        return len(pending.clusters)


@dataclass
class Setup:
    broker: MemoryBroker
    consumer: MemoryConsumer
    resolver: Resolver
    flow: Pipeline
    pauses: Pauses
    recorded: list[tuple[dict[int, int], int]]

    def produce(self, *values: str) -> None:
        producer = MemoryProducer(self.broker)
        for value in values:
            producer.send(TOPIC, value.encode())

    def step_until(self, check: Callable[[], object], steps: int = 200) -> None:
        for _ in range(steps):
            self.flow.step()
            if check():
                return
        raise AssertionError("condition not met within the steps")


@pytest.fixture
def setup() -> Iterator[Setup]:
    with _setup() as flow:
        yield flow


@contextlib.contextmanager
def _setup(
    batch_records: int = 100,
    max_pending: int = 1000,
    apply: Callable[[Batch], Iterator[Pending]] = apply_each_batch,
) -> Iterator[Setup]:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, 1)
    consumer = MemoryConsumer(broker, "processors")
    consumer.subscribe([TOPIC], lambda _: None)
    resolver, pauses = Resolver(), Pauses()
    recorded: list[tuple[dict[int, int], int]] = []
    stop = threading.Event()
    flow = Pipeline(
        consumer,
        apply,
        resolver,
        stop,
        pauses,
        batch_records,
        max_pending,
        lambda offsets, sequence: recorded.append((dict(offsets), sequence)),
    )
    yield Setup(broker, consumer, resolver, flow, pauses, recorded)
    stop.set()
    resolver.gate.set()
    flow.close()


def test_caught_up_a_round_starts_at_once_and_commits_once_durable(setup: Setup) -> None:
    setup.produce("a", "b", "a")
    setup.step_until(lambda: setup.consumer.committed(TP) == 3)
    assert [r.clusters for r in setup.resolver.rounds] == [{"a", "b"}]
    assert setup.recorded == [({0: 3}, 0)]  # into Redis before Kafka


def test_nothing_is_committed_before_the_round_is_durable(setup: Setup) -> None:
    setup.resolver.gate.clear()
    setup.produce("a")
    for _ in range(5):
        setup.flow.step()
    assert setup.consumer.committed(TP) is None
    assert setup.recorded == []
    setup.resolver.gate.set()
    setup.step_until(lambda: setup.consumer.committed(TP) == 1)


def test_a_backlog_is_applied_before_it_is_resolved() -> None:
    with _setup(batch_records=2) as setup:
        setup.produce(*"abcdefghij")
        setup.step_until(lambda: setup.consumer.committed(TP) == 10, steps=20)
        assert [r.events for r in setup.resolver.rounds] == [10]
        assert setup.resolver.rounds[0].clusters == set("abcdefghij")


def test_too_much_pending_starts_a_round_before_catching_up() -> None:
    with _setup(batch_records=2, max_pending=4) as setup:
        setup.produce(*"abcdefghij")
        setup.flow.step()
        assert setup.resolver.rounds == []  # 2 pending, behind: wait for more
        setup.step_until(lambda: setup.consumer.committed(TP) == 10, steps=20)
        assert setup.resolver.rounds[0].events == 4


def test_an_overdue_part_starts_a_round_while_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    with _setup(batch_records=2) as late:
        monkeypatch.setattr(pipeline_module, "MAX_ROUND_WAIT_S", 0.0)
        late.produce(*"abcdefghij")
        late.step_until(lambda: late.resolver.rounds)
        assert late.resolver.rounds[0].events == 2


def test_rounds_never_overlap_and_run_in_order(setup: Setup) -> None:
    setup.resolver.gate.clear()
    setup.produce("a", "b")
    setup.flow.step()  # caught up: the round starts (and waits at the gate)
    setup.produce("c", "d")
    setup.flow.step()  # applied, but the resolver is busy
    assert setup.resolver.rounds == []
    setup.resolver.gate.set()
    setup.step_until(lambda: setup.consumer.committed(TP) == 4)
    assert [r.clusters for r in setup.resolver.rounds] == [{"a", "b"}, {"c", "d"}]


def test_a_redis_error_retries_the_round_with_the_same_input(setup: Setup) -> None:
    setup.resolver.failures.append(redis.ConnectionError("away"))
    setup.produce("a")
    setup.step_until(lambda: setup.consumer.committed(TP) == 1)
    assert [r.clusters for r in setup.resolver.rounds] == [{"a"}]


def test_a_bug_in_a_step_surfaces() -> None:
    def broken(batch: Batch) -> Iterator[Pending]:
        raise ValueError("a bug")
        yield  # pragma: no cover

    with _setup(apply=broken) as setup:
        setup.produce("a")
        with pytest.raises(ValueError, match="a bug"):
            setup.step_until(lambda: False, steps=5)


def test_offsets_not_recorded_in_redis_are_not_committed_to_kafka(setup: Setup) -> None:
    attempts: list[dict[int, int]] = []

    def record(offsets: dict[int, int], sequence: int) -> None:
        attempts.append(dict(offsets))
        if len(attempts) == 1:
            raise redis.ConnectionError("away")

    setup.flow._commits._record = record
    setup.produce("a")
    setup.step_until(lambda: attempts)
    assert setup.consumer.committed(TP) is None
    setup.step_until(lambda: setup.consumer.committed(TP) == 1)
    assert attempts == [{0: 1}, {0: 1}]


def test_drop_forgets_what_is_not_committed(setup: Setup) -> None:
    setup.resolver.gate.clear()
    setup.produce("a", "b")
    setup.flow.step()
    setup.resolver.gate.set()
    setup.flow.drop()  # waits for the round in flight, then forgets it
    for _ in range(3):
        setup.flow.step()
    assert setup.consumer.committed(TP) is None


def test_reposition_reads_again_from_the_stored_offsets(setup: Setup) -> None:
    setup.produce("a", "b", "c")
    setup.step_until(lambda: setup.consumer.committed(TP) == 3)
    setup.flow.reposition({0: 1})
    setup.step_until(lambda: len(setup.resolver.rounds) == 2)
    assert setup.resolver.rounds[1].clusters == {"b", "c"}
    setup.flow.reposition({})  # no stored offset: from the beginning
    setup.step_until(lambda: len(setup.resolver.rounds) == 3)
    assert setup.resolver.rounds[2].clusters == {"a", "b", "c"}


def test_the_dead_letter_limit_pauses_every_partition_until_released(setup: Setup) -> None:
    setup.flow.step()  # joins the group
    setup.pauses.hold(DEAD_LETTER_LIMIT, 60, "test")
    setup.produce("a")
    setup.flow.step()
    assert setup.consumer.paused() == {TP}
    assert setup.resolver.rounds == []
    setup.pauses.release(DEAD_LETTER_LIMIT)
    setup.step_until(lambda: setup.consumer.committed(TP) == 1)
    assert setup.consumer.paused() == set()
