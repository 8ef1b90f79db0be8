"""Lag that means lag: how far what is *durable* trails the touchpoint topic.

The processor fetches ahead of what it has made durable (a backlog is staged before it is
resolved, and a stalled Redis holds a fetched batch for as long as it refuses writes), so the
distance from its fetch position to the high-water mark says little. Lag is measured here from
the durable offsets the processor records in Redis (``P:offsets:<topic>``, the same it commits
to Kafka) instead, for every partition of the topic (whoever holds it, so lag shows even
while no processor has partitions assigned):

* ``touchpath_processor_consumer_lag_records``: high-water mark minus the durable offset;
* ``touchpath_processor_consumer_lag_seconds``: the age of the first record past the durable
  offset (the oldest event not yet durable; 0 when there is none).

A reader of its own (:class:`infra.streams.Reader`, no group) reads one record at each
durable offset on a thread of its own, every ``TOUCHPATH_PROCESSOR_LAG_INTERVAL_S``; the
high-water marks come from those fetches (the broker's ListOffsets answer is not trusted:
tansu's is wrong). Every processor reports the same figures: aggregate with
``max by (partition)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from infra.streams import Partition, Reader, StreamError
from infra.streams.kafka import stream_reader
from processor import metrics
from touchpath.settings import Settings

log = logging.getLogger(__name__)
POLL_MS = 100
POLL_RECORDS = 500


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition's records past its durable offset and the age of the first of them."""

    records: int
    seconds: float


class LagProbe:
    """Measures every partition of one topic against the durable offsets."""

    def __init__(
        self,
        reader: Reader,
        topic: str,
        durable: Callable[[], Mapping[int, int]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader, self.topic, self.durable, self.clock = reader, topic, durable, clock

    @classmethod
    def of(cls, settings: Settings, durable: Callable[[], Mapping[int, int]]) -> LagProbe:
        """A probe of the touchpoint topic with a small reader of its own (no group: it
        reads one record per partition, never commits)."""
        reader = stream_reader(
            settings,
            client_id="touchpath-lag",
            max_partition_fetch_bytes=64 << 10,
            fetch_max_bytes=1 << 20,
            fetch_max_wait_ms=50,
        )
        return cls(reader, settings.topic_touchpoints, durable)

    def measure(self, timeout_s: float) -> dict[int, PartitionLag]:
        """Lag of every partition whose high-water mark a fetch reported within the timeout
        (a partition left out is unknown, not caught up)."""
        partitions = [Partition(self.topic, p) for p in self.reader.partitions(self.topic)]
        starts = self._position_at_durable(partitions)
        oldest_ms: dict[Partition, int] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._settled(starts, oldest_ms):
            for tp, records in self.reader.poll(POLL_MS, POLL_RECORDS).items():
                if records and tp not in oldest_ms:
                    oldest_ms[tp] = records[0].timestamp
                    self.reader.pause(tp)  # one record is all it takes
        return self._lags(starts, oldest_ms)

    def _position_at_durable(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Assign anew (forgetting earlier high-water marks) and seek each partition to its
        durable offset (its beginning if none is stored); returns those offsets."""
        stored = self.durable()
        self.reader.assign(partitions)
        for tp in partitions:
            if tp.partition in stored:
                self.reader.seek(tp, stored[tp.partition])
            else:
                self.reader.seek_to_beginning(tp)
        positions = {tp: self.reader.position(tp, timeout_ms=5000) for tp in partitions}
        return {tp: offset for tp, offset in positions.items() if offset is not None}

    def _settled(self, starts: Mapping[Partition, int], oldest: Mapping[Partition, int]) -> bool:
        """Every partition fetched, and either caught up or its first record read."""
        for tp, start in starts.items():
            highwater = self.reader.highwater(tp)
            if highwater is None or (highwater > start and tp not in oldest):
                return False
        return True

    def _lags(
        self, starts: Mapping[Partition, int], oldest_ms: Mapping[Partition, int]
    ) -> dict[int, PartitionLag]:
        now_ms = self.clock() * 1000
        lags = {}
        for tp, start in starts.items():
            highwater = self.reader.highwater(tp)
            if highwater is None:
                continue
            records = max(0, highwater - start)
            first = oldest_ms.get(tp)
            age = max(0.0, now_ms - first) / 1000 if records and first is not None else 0.0
            lags[tp.partition] = PartitionLag(records, age)
        return lags


def publish(lags: Mapping[int, PartitionLag]) -> None:
    """Set the gauges of the measured partitions."""
    for partition, lag in lags.items():
        metrics.CONSUMER_LAG.labels(str(partition)).set(lag.records)
        metrics.CONSUMER_LAG_SECONDS.labels(str(partition)).set(round(lag.seconds, 3))


def start_lag_monitor(
    probe: LagProbe, interval_s: float, stop: threading.Event
) -> threading.Thread:
    """Measure and publish every ``interval_s`` on a daemon thread until ``stop`` is set; a
    failure is one warning line (and one when it recovers), the gauges keep their values."""

    def run() -> None:
        failing = False
        try:
            while not stop.is_set():
                try:
                    publish(probe.measure(timeout_s=max(1.0, interval_s)))
                    if failing:
                        log.info("lag measured again")
                    failing = False
                except (StreamError, redis.RedisError, OSError) as exc:
                    if not failing:
                        log.warning("lag not measured, retrying", extra={"error": repr(exc)})
                    failing = True
                stop.wait(interval_s)
        finally:
            probe.reader.close()

    thread = threading.Thread(target=run, name="lag-monitor", daemon=True)
    thread.start()
    return thread
