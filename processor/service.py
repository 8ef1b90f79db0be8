"""The processor: wiring of its steps and its loop.

The steps are modules of their own — decode, apply, resolve, commit, with dead letters,
backpressure and retries as policies — and how they overlap and when offsets are committed is
:mod:`processor.pipeline`'s part. No input stops the processor: what it cannot use is
dead-lettered and the partition moves on; a dead-letter rate above the configured limit
pauses consumption for a while (:mod:`processor.pauses`), and ``/readyz`` answers 503 with
the reasons while it holds back.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from infra import gc_tuning
from infra.kafka import BrokerUnavailable, ensure_topics
from infra.logs import configure_logging
from infra.observability import DEPENDENCY_UP
from infra.redis_clients import sync_client
from infra.redis_tuning import shortfalls_of
from infra.retry import Backoff, retry
from infra.service_kit import serve_health
from infra.streams import Consumer, Producer, StreamError
from infra.streams.kafka import stream_consumer, stream_producer
from processor import metrics
from processor.apply import Applier
from processor.dead_letters import DeadLetters
from processor.durable import until_durable
from processor.firing import start_firing
from processor.lag import LagProbe, start_lag_monitor  # lag from durable offsets
from processor.offsets import Incarnation, OffsetStore, RedisRegressed, SeekOnAssignment
from processor.pauses import DeadLetterBrake, Pauses
from processor.pipeline import Pipeline
from processor.publisher import OutboxPublisher
from processor.reevaluation import read_state, record_start, start_reevaluation
from processor.resolve import Resolve
from processor.resolver import Resolver
from processor.store import JourneyStore, StoreBounds, migrate_layout
from touchpath.identity import IdentityPolicy
from touchpath.settings import Settings
from touchpath.settings_views import ProcessorSettings
from touchpath.stages import StageModel, load_stage_model
from touchpath.triggers import load_triggers

log = logging.getLogger(__name__)


@dataclass
class Processor:
    """One consumer-group member: its steps (each a module of its own) and what they share."""

    settings: ProcessorSettings
    store: JourneyStore
    resolver: Resolver
    producer: Producer
    publisher: OutboxPublisher
    model: StageModel
    policy: IdentityPolicy
    pauses: Pauses
    dead_letters: DeadLetters
    incarnation: Incarnation

    def __post_init__(self) -> None:
        self.apply = Applier(
            self.store, self.model, self.policy, self.dead_letters, self.incarnation
        )
        self.resolve = Resolve(self.dead_letters, self.resolver)

    def close(self) -> None:
        """Stop the applier thread."""
        self.apply.close()

    def publish(self) -> int:
        """Move waiting stage changes to Kafka."""
        return self.publisher.drain()


def update_stage_gauges(store: JourneyStore, model: StageModel) -> None:
    """Customers per stage, from the stage indexes."""
    pipe = store.client.pipeline(transaction=False)
    for stage in model.stages:
        pipe.zcard(store.keys.stage(stage))
    for stage, count in zip(model.stages, pipe.execute(), strict=True):
        metrics.CUSTOMERS_BY_STAGE.labels(stage).set(count)


def update_redis_memory(client: redis.Redis) -> None:
    """Redis's memory use and limit, for the alert before it refuses writes."""
    info = client.info("memory")
    metrics.REDIS_MEMORY_USED.set(int(info["used_memory"]))
    metrics.REDIS_MEMORY_MAX.set(int(info["maxmemory"]))


def build_resolver(settings: Settings, client: redis.Redis) -> Resolver:
    """The store and the resolver with the rules file (validated here, at start-up)."""
    model = load_stage_model(settings.rules_file)
    store = JourneyStore(
        client,
        settings.redis_prefix,
        StoreBounds.of(settings),
        settings.erasure_key,
        rules_version=model.version,
    )
    policy = IdentityPolicy.of(settings)
    return Resolver(
        store,
        model,
        policy,
        triggers=load_triggers(settings.rules_file),
        lapse_days=settings.lapse_days,
    )


def build_processor(settings: Settings, client: redis.Redis) -> Processor:
    """Wire a Processor from settings (rules file validated here, at start-up)."""
    own = ProcessorSettings.of(settings)
    resolver = build_resolver(settings, client)
    store, model, policy = resolver.store, resolver.model, resolver.policy
    metrics.declare_stages(model.stages)
    producer = stream_producer(
        settings, delivery_timeout_ms=30_000, request_timeout_ms=10_000, max_block_ms=10_000
    )
    consumer_name = f"{socket.gethostname()}-{os.getpid()}"
    publisher = OutboxPublisher(
        client, store.keys.outbox, producer, own.topic_stage_changes, consumer_name
    )
    pauses = Pauses()
    brake = DeadLetterBrake(
        pauses,
        own.processor_max_dead_letters_per_minute,
        own.processor_dead_letter_pause_s,
        own.processor_dead_letter_max_pause_s,
    )
    dead_letters = DeadLetters(producer, own.topic_dead_letter, brake)
    incarnation = Incarnation(client, own.redis_prefix, consumer_name)
    return Processor(
        own,
        store,
        resolver,
        producer,
        publisher,
        model,
        policy,
        pauses,
        dead_letters,
        incarnation,
    )


def run_processor(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (non-zero exit only on an unexpected error)."""
    own = ProcessorSettings.of(settings)
    configure_logging("processor", own.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    client = sync_client(settings, socket_timeout=10, health_check_interval=10)
    if not wait_for_kafka(lambda: ensure_topics(settings), stop):
        return 0  # stopped while waiting for Kafka
    processor = build_processor(settings, client)
    server = serve_health(  # first: while Redis is full or away, /readyz says why
        own.processor_host,
        own.processor_metrics_port,
        lambda: _unready(client, processor.pauses),
    )
    until_redis_takes(
        lambda: migrate_layout(client, own.redis_prefix, _now_ms()), processor.pauses, stop
    )
    until_redis_takes(processor.incarnation.start, processor.pauses, stop)
    for line in shortfalls_of(client):
        log.warning("redis: %s", line)
    reevaluation = start_rules(processor, own, stop)  # issue #15: rules versions
    offsets = OffsetStore(client, own.redis_prefix, own.topic_touchpoints, processor.incarnation)
    start_lag_monitor(LagProbe.of(settings, offsets.read), own.processor_lag_interval_s, stop)
    consumer = stream_consumer(settings)
    consumer.subscribe([own.topic_touchpoints], SeekOnAssignment(offsets, consumer, stop))
    firing = start_firing(own, client, processor.producer, stop)  # issue #21
    gc_tuning.tune_gc()  # a batch allocates millions of short-lived objects
    log.info("processor started", extra={"group": own.consumer_group})
    try:
        return _loop(processor, consumer, offsets, stop)
    except Exception:
        log.exception("processor stopped on an unrecoverable error")
        return 1
    finally:
        stop.set()
        if firing is not None:
            firing.join(10)
        if reevaluation is not None:
            reevaluation.join(10)
        processor.close()
        consumer.close()
        processor.producer.close(10)
        server.shutdown()


def start_rules(
    processor: Processor, settings: ProcessorSettings, stop: threading.Event
) -> threading.Thread | None:
    """Record the rules version in force; when it changed, re-evaluate every customer in the
    background (unless ``TOUCHPATH_REEVALUATE=manual``)."""
    client, keys = processor.store.client, processor.store.keys
    version = processor.model.version
    until_redis_takes(lambda: record_start(client, keys, version), processor.pauses, stop)
    state = read_state(client, keys)
    processor.resolver.unversioned = state.unversioned or version
    if state.state == "reevaluating":
        log.warning(
            "the rules changed (%s → %s): customers are re-evaluated %s",
            state.previous,
            version,
            "in the background" if settings.reevaluate == "background" else "on their next event",
        )
    if settings.reevaluate != "background":
        return None
    owner = f"{socket.gethostname()}-{os.getpid()}"
    return start_reevaluation(client, processor.resolver, owner, stop, settings.reevaluate_silently)


def until_redis_takes(write: Callable[[], object], pauses: Pauses, stop: threading.Event) -> None:
    """Run a start-up write as the durable steps run theirs: retried while Redis is away or
    full (``redis_full`` held meanwhile)."""
    until_durable(lambda _: write(), None, stop, pauses)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _loop(
    processor: Processor, consumer: Consumer, offsets: OffsetStore, stop: threading.Event
) -> int:
    pipeline = Pipeline(
        consumer,
        processor.apply,
        processor.resolve,
        stop,
        processor.pauses,
        processor.settings.processor_batch_size,
        processor.settings.processor_max_pending_events,
        offsets.record,
    )
    last_housekeeping = 0.0
    backoff = Backoff()
    try:
        while not stop.is_set():
            try:
                pipeline.step()
                backoff.reset()
                if time.monotonic() - last_housekeeping > 5:
                    last_housekeeping = time.monotonic()
                    _housekeeping(processor, consumer)
            except RedisRegressed as exc:
                _read_again(pipeline, offsets, processor.incarnation, stop, exc)
                continue
            except (StreamError, OSError) as exc:
                # broker unreachable or a rebalance took our partitions: nothing was
                # committed for the batches in hand, so they are delivered again
                # (idempotently) after recovery
                pipeline.drop()
                DEPENDENCY_UP.labels("kafka").set(0)
                log.warning("Kafka unavailable, retrying", extra={"error": repr(exc)})
                stop.wait(backoff.next())
                continue
            _publish(processor)
    finally:
        pipeline.close()
    return 0


def _read_again(
    pipeline: Pipeline,
    offsets: OffsetStore,
    incarnation: Incarnation,
    stop: threading.Event,
    cause: RedisRegressed,
) -> None:
    """Redis lost writes: forget what is in hand, count anew, read again from its offsets."""
    log.warning(
        "Redis came back older: reading again from its offsets", extra={"cause": str(cause)}
    )
    metrics.REDIS_REGRESSIONS.inc()

    def again() -> None:
        incarnation.start()
        pipeline.reposition(offsets.read())

    retry(again, (redis.RedisError,), stop, _redis_away)


def wait_for_kafka(
    prepare: Callable[[], object], stop: threading.Event, backoff: Backoff | None = None
) -> bool:
    """Run the start-up step that needs Kafka until it succeeds, saying once per attempt that
    Kafka is unreachable (one line, no traceback); False when stopped first."""
    delays = backoff or Backoff(1.0, 15.0)

    def away(exc: BaseException) -> None:
        log.warning(f"{exc}; retrying in {delays.current:g} s")

    retry(prepare, (BrokerUnavailable,), stop, away, delays)
    return not stop.is_set()


def _redis_away(exc: BaseException) -> None:
    log.warning("Redis unavailable, retrying", extra={"error": repr(exc)})


def _housekeeping(processor: Processor, consumer: Consumer) -> None:
    """Gauges, and the check that Redis did not come back older (raises RedisRegressed)."""
    try:
        processor.incarnation.verify()
        update_stage_gauges(processor.store, processor.model)
        update_redis_memory(processor.store.client)
    except (StreamError, redis.RedisError, OSError) as exc:
        log.warning("metrics not refreshed", extra={"error": repr(exc)})


def _publish(processor: Processor) -> None:
    try:
        processor.publish()
    except Exception as exc:  # the outbox keeps the changes; next round retries
        log.warning("stage changes not published yet", extra={"error": repr(exc)})


def _unready(client: redis.Redis, pauses: Pauses) -> list[str]:
    """Why the processor is not ready (empty: ready): Redis unreachable, or a pause."""
    try:
        reachable = bool(client.ping())
    except redis.RedisError:
        reachable = False
    return pauses.active() + ([] if reachable else ["redis_unreachable"])
