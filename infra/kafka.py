"""Kafka at the edge: topic set-up, an asyncio-friendly acks=all producer, consumer factory.

Only standard Kafka APIs are used, so the same code runs on the embedded tansu broker and on
Apache Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from touchpath.settings import Settings

log = logging.getLogger(__name__)


#: A record to write: topic, key, value.
Record = tuple[str, bytes | None, bytes]


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge a write in time; the client should retry later."""


def topics_of(settings: Settings) -> list[str]:
    """Every topic touchpath writes or reads."""
    return [
        settings.topic_touchpoints,
        settings.topic_dead_letter,
        settings.topic_stage_changes,
        settings.topic_trigger_firings,
    ]


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create touchpath's topics (idempotent), retrying until the broker answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap,
                request_timeout_ms=5000,
                client_id="touchpath-admin",
            )
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}"
                ) from exc
            time.sleep(0.2)
    retention = retention_ms(settings)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics_of(settings) if t not in existing]
        if missing:
            new = [
                NewTopic(
                    t,
                    settings.kafka_partitions,
                    settings.kafka_replication,
                    topic_configs={"retention.ms": str(retention[t])},
                )
                for t in missing
            ]
            with suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
            log.info("created topics", extra={"topics": missing})
        _set_retention(admin, {t: ms for t, ms in retention.items() if t in existing})
    finally:
        admin.close()


def retention_ms(settings: Settings) -> dict[str, int]:
    """How long each topic keeps records: touchpoints and dead letters (raw input, personal
    data) for ``TOUCHPATH_TOUCHPOINTS_RETENTION_HOURS``, stage changes for
    ``TOUCHPATH_STAGE_CHANGES_RETENTION_HOURS``."""
    raw = settings.touchpoints_retention_hours * 3_600_000
    return {
        settings.topic_touchpoints: raw,
        settings.topic_dead_letter: raw,
        settings.topic_stage_changes: settings.stage_changes_retention_hours * 3_600_000,
        settings.topic_trigger_firings: settings.stage_changes_retention_hours * 3_600_000,
    }


def _set_retention(admin: KafkaAdminClient, retention: dict[str, int]) -> None:
    """Apply the configured retention to topics that exist already (e.g. made by an older
    version); a broker that refuses is logged, not fatal."""
    if not retention:
        return
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": str(ms)})
        for topic, ms in retention.items()
    ]
    try:
        admin.alter_configs(resources)
    except KafkaError as exc:
        log.warning("could not set topic retention", extra={"error": repr(exc)})


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Producer settings: acks=all, compression, short bounded blocking."""
    delivery_ms = int(settings.produce_timeout_s * 1000)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        # Not idempotent: a broker that restarts on memory storage forgets producer ids and an
        # idempotent producer then fails forever. Duplicates from retries are removed by the
        # processor (messageId de-duplication), so at-least-once here is exact end to end.
        "enable_idempotence": False,
        "compression_type": None
        if settings.kafka_compression == "none"
        else settings.kafka_compression,
        "linger_ms": 0,
        "batch_size": 1 << 20,
        "max_request_size": 8 << 20,
        "max_block_ms": 1000,
        "request_timeout_ms": max(200, delivery_ms * 3 // 4),
        "delivery_timeout_ms": delivery_ms,
        "retry_backoff_ms": 50,
        "reconnect_backoff_max_ms": 500,
        "client_id": "touchpath",
    }
    config.update(overrides)
    return config


class AsyncProducer:
    """A kafka-python producer used from asyncio: ``await send(...)`` returns once acked.

    Calls into kafka-python run on one worker thread (``send`` may block on metadata), acks
    come back through callbacks. After a failure the producer fails fast for a short while
    (no pile-up of requests waiting on a dead broker) and is recreated after repeated
    failures, which recovers from a broker that restarted and forgot its state.
    """

    FAIL_FAST_S = 0.25
    RECREATE_AFTER_FAILURES = 3

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self._config = producer_config(settings, **overrides)
        self._timeout_s = settings.produce_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-send")
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._failures = 0
        self._fail_fast_until = 0.0

    def _client(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(**self._config)
            return self._producer

    def _reset(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            threading.Thread(target=producer.close, kwargs={"timeout": 0}, daemon=True).start()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Write one record with acks=all; BrokerUnavailable if not acknowledged in time."""
        await self.send_many([(topic, key, value)])

    async def send_many(self, records: Iterable[Record]) -> None:
        """Write several ``(topic, key, value)`` records; returns when all are acknowledged."""
        if time.monotonic() < self._fail_fast_until:
            raise BrokerUnavailable("Kafka is unavailable (recent write failed)")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        batch = list(records)
        try:
            if self._metadata_known(batch):
                self._submit(batch, loop, waiter)  # send() will not block: no thread hop
            else:
                await asyncio.wait_for(
                    loop.run_in_executor(self._executor, self._submit, batch, loop, waiter),
                    self._timeout_s,
                )
            await asyncio.wait_for(waiter, self._timeout_s)
        except (TimeoutError, KafkaError, BrokerUnavailable) as exc:
            self._on_failure()
            raise BrokerUnavailable(f"Kafka did not acknowledge the write: {exc!r}") from exc
        self._failures = 0

    def _metadata_known(self, batch: list[Record]) -> bool:
        """True when every topic's partitions are known, so ``send`` cannot block on them."""
        producer = self._producer
        if producer is None or self._failures:
            return False
        cluster: Any = getattr(producer, "_metadata", None)  # kafka-python's cached metadata
        if cluster is None:
            return False
        return all(cluster.partitions_for_topic(t) for t in {t for t, _, _ in batch})

    def _submit(
        self,
        batch: list[Record],
        loop: asyncio.AbstractEventLoop,
        waiter: asyncio.Future[None],
    ) -> None:
        pending = len(batch)

        def ok(_: object) -> None:
            nonlocal pending
            pending -= 1
            if pending == 0:
                loop.call_soon_threadsafe(_resolve, waiter, None)

        def failed(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_resolve, waiter, exc)

        producer = self._client()
        for topic, key, value in batch:
            future = producer.send(topic, value=value, key=key)
            future.add_callback(ok)
            future.add_errback(failed)

    def _on_failure(self) -> None:
        self._failures += 1
        self._fail_fast_until = time.monotonic() + self.FAIL_FAST_S
        if self._failures >= self.RECREATE_AFTER_FAILURES:
            log.warning("recreating Kafka producer after %d failures", self._failures)
            self._failures = 0
            self._executor.submit(self._reset)

    async def ready(self, topic: str) -> bool:
        """True when a bootstrap broker accepts connections and ``topic`` has partitions
        (cached metadata alone would keep saying yes after the broker went away)."""
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(
            None, broker_reachable, self._config["bootstrap_servers"]
        ):
            return False
        try:
            parts = await asyncio.wait_for(
                loop.run_in_executor(self._executor, lambda: self._client().partitions_for(topic)),
                self._timeout_s,
            )
        except (TimeoutError, KafkaError):
            return False
        return bool(parts)

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is buffered and close."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.flush(timeout=timeout_s)
            finally:
                producer.close(timeout=timeout_s)
        self._executor.shutdown(wait=False)


def broker_reachable(bootstrap: str, timeout_s: float = 0.5) -> bool:
    """True when any bootstrap ``host:port`` accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _resolve(waiter: asyncio.Future[None], exc: BaseException | None) -> None:
    if waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)


def make_consumer(settings: Settings, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A group consumer with manual commits (offsets only after effects are durable)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": settings.consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        "heartbeat_interval_ms": max(300, settings.consumer_session_timeout_ms // 5),
        "max_poll_records": settings.processor_batch_size,
        # large fetches: a bigger batch folds more events of one customer into one resolution
        "max_partition_fetch_bytes": 8 << 20,
        "fetch_max_bytes": 64 << 20,
        "max_poll_interval_ms": 300_000,
        "client_id": "touchpath-processor",
    }
    config.update(overrides)
    return KafkaConsumer(*topics, **config)
