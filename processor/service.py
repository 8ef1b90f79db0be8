"""The processor: its steps (stage: decode, apply, dead-letter; resolve), wiring and loop.

How the steps overlap and when offsets are committed is :mod:`processor.flow`'s part. No
input stops the processor: what it cannot use is dead-lettered and the partition moves on; a
dead-letter rate above the configured limit pauses consumption for a while
(:mod:`processor.pauses`), and ``/readyz`` answers 503 with the reasons while it holds back.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis

from infra import gc_tuning
from infra.kafka import BrokerUnavailable, ensure_topics
from infra.logs import configure_logging
from infra.observability import DEPENDENCY_UP
from infra.redis_clients import sync_client
from infra.retry import Backoff, retry
from infra.service_kit import serve_health
from infra.streams import Batch, Consumer, Producer, StreamError
from infra.streams.kafka import stream_consumer, stream_producer
from processor import metrics
from processor.dead_letters import DeadLetters
from processor.decode import Decoded, decode_batch
from processor.firing import start_firing
from processor.flow import Flow, Offsets, Staged, until_durable
from processor.lag import LagProbe, start_lag_monitor  # lag from durable offsets
from processor.offsets import Incarnation, OffsetStore, RedisRegressed, SeekOnAssignment
from processor.pauses import DeadLetterBrake, Pauses
from processor.publisher import OutboxPublisher
from processor.reevaluation import read_state, record_start, start_reevaluation
from processor.resolver import Resolver
from processor.store import (
    Applied,
    JourneyStore,
    PreparedApply,
    StoreBounds,
    migrate_layout,
)
from touchpath.effects import EventEffects
from touchpath.events import metric_channel
from touchpath.identity import IdentityPolicy
from touchpath.settings import Settings
from touchpath.stages import StageModel, load_stage_model
from touchpath.triggers import load_triggers

log = logging.getLogger(__name__)
STAGE_PART_EVENTS = 5000  # small enough to overlap, large enough to group by anchor


@dataclass
class Processor:
    """One consumer-group member's processing steps, each small and testable."""

    settings: Settings
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
        # applies run here, in order, while the polling thread decodes the next part
        self._applier = ThreadPoolExecutor(1, thread_name_prefix="applier")

    def stage(self, batch: Batch) -> Iterator[Staged]:
        """Decode and apply a polled batch a part (about ``STAGE_PART_EVENTS`` events) at a
        time, dead-letter what cannot be processed, and yield each part once it is durable,
        with the clusters it leaves to resolve (raises on Redis/Kafka errors).

        A part's arguments are built here and it is applied on the applier thread while the
        next one is decoded, so Redis and Python work at once; when resolution starts is
        :class:`processor.flow.Flow`'s decision."""
        previous: tuple[float, Part, PreparedApply, Future[list[Any]]] | None = None
        for part in _parts(batch, self.model, self.policy):
            prepared = self.store.prepare_apply(part.decoded.effects)
            applying = self._applier.submit(self.store.run_apply, prepared, self.incarnation)
            if previous is not None:
                yield self._applied(*previous)
            previous = (time.perf_counter(), part, prepared, applying)
        if previous is not None:
            yield self._applied(*previous)

    def _applied(
        self, started: float, part: Part, prepared: PreparedApply, applying: Future[list[Any]]
    ) -> Staged:
        """A part as staged once its apply is done, its bad input sent to the dead-letter
        topic (confirmed by the round that resolves it)."""
        outcome = self.store.applied_of(prepared, applying.result())
        applied = outcome.applied
        for bound, count in outcome.overflows.items():
            metrics.BOUND_OVERFLOWS.labels(bound).inc(count)
        staged = Staged(started, part.offsets, set(), sequence=self.incarnation.applied)
        staged.letters = self.dead_letters.send(part.decoded.dead)
        _account(staged, part.decoded.effects, applied)
        log.debug(
            "part applied",
            extra={"events": staged.events, "seconds": round(time.perf_counter() - started, 3)},
        )
        return staged

    def close(self) -> None:
        """Stop the applier thread."""
        self._applier.shutdown()

    def resolve(self, staged: Staged) -> int:
        """Confirm the dead letters of a staged batch, derive and store its customers; returns
        how many clusters were resolved (raises on Redis and Kafka errors)."""
        self.dead_letters.confirm(staged.letters)
        report = self.resolver.resolve(staged.clusters)
        _observe(staged)  # processed = visible in the customer's stage
        metrics.MERGES.inc(report.merges)
        for reason, count in report.refused.items():
            metrics.MERGES_REFUSED.labels(reason).inc(count)
        elapsed = time.perf_counter() - staged.started
        metrics.BATCH_SECONDS.observe(elapsed)
        log.debug(
            "batch resolved",
            extra={
                "resolved": report.resolved,
                "retries": report.retries,
                "seconds": round(elapsed, 3),
            },
        )
        return report.resolved

    def publish(self) -> int:
        """Move waiting stage changes to Kafka."""
        return self.publisher.drain()


@dataclass(slots=True)
class Part:
    """Consecutive records of a batch, decoded, and the offsets that follow them."""

    decoded: Decoded
    offsets: Offsets


def _parts(batch: Batch, model: StageModel, policy: IdentityPolicy) -> Iterator[Part]:
    """A batch's records decoded a part (about ``STAGE_PART_EVENTS`` events) at a time."""
    part = Part(Decoded(), {})
    for tp, records in batch.items():
        for record in records:
            decoded = decode_batch([record.value], model, policy)
            part.decoded.effects += decoded.effects
            part.decoded.dead += decoded.dead
            part.offsets[tp] = record.offset + 1
            if len(part.decoded.effects) >= STAGE_PART_EVENTS:
                yield part
                part = Part(Decoded(), {})
    if part.offsets:
        yield part


def _account(staged: Staged, effects: Sequence[EventEffects], applied: Sequence[Applied]) -> None:
    """Add a part's outcome to the staged batch: clusters to resolve and new-event counts."""
    staged.events += len(effects)
    staged.clusters.update(a.cluster for a in applied if a.needs_resolution)
    for effect, result in zip(effects, applied, strict=True):
        if result.new:
            staged.channels[metric_channel(effect.channel)] += 1
            staged.received_ms.append(effect.received_ms)
        else:
            staged.duplicates += 1


def _observe(staged: Staged) -> None:
    now_ms = time.time() * 1000
    for received in staged.received_ms:
        metrics.EVENT_TO_STAGE.observe(max(0.0, now_ms - received) / 1000)
    for channel, count in staged.channels.items():
        metrics.EVENTS_PROCESSED.labels(channel).inc(count)
    metrics.EVENTS_DUPLICATE.inc(staged.duplicates)


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
    resolver = build_resolver(settings, client)
    store, model, policy = resolver.store, resolver.model, resolver.policy
    metrics.declare_stages(model.stages)
    producer = stream_producer(
        settings, delivery_timeout_ms=30_000, request_timeout_ms=10_000, max_block_ms=10_000
    )
    consumer_name = f"{socket.gethostname()}-{os.getpid()}"
    publisher = OutboxPublisher(
        client, store.keys.outbox, producer, settings.topic_stage_changes, consumer_name
    )
    pauses = Pauses()
    brake = DeadLetterBrake(
        pauses,
        settings.processor_max_dead_letters_per_minute,
        settings.processor_dead_letter_pause_s,
        settings.processor_dead_letter_max_pause_s,
    )
    dead_letters = DeadLetters(producer, settings.topic_dead_letter, brake)
    incarnation = Incarnation(client, settings.redis_prefix, consumer_name)
    return Processor(
        settings,
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
    configure_logging("processor", settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    client = sync_client(settings, socket_timeout=10, health_check_interval=10)
    if not wait_for_kafka(lambda: ensure_topics(settings), stop):
        return 0  # stopped while waiting for Kafka
    processor = build_processor(settings, client)
    server = serve_health(  # first: while Redis is full or away, /readyz says why
        settings.processor_host,
        settings.processor_metrics_port,
        lambda: _unready(client, processor.pauses),
    )
    until_redis_takes(
        lambda: migrate_layout(client, settings.redis_prefix, _now_ms()), processor.pauses, stop
    )
    until_redis_takes(processor.incarnation.start, processor.pauses, stop)
    reevaluation = start_rules(processor, settings, stop)  # issue #15: rules versions
    offsets = OffsetStore(
        client, settings.redis_prefix, settings.topic_touchpoints, processor.incarnation
    )
    start_lag_monitor(LagProbe.of(settings, offsets.read), settings.processor_lag_interval_s, stop)
    consumer = stream_consumer(settings)
    consumer.subscribe([settings.topic_touchpoints], SeekOnAssignment(offsets, consumer, stop))
    firing = start_firing(settings, client, processor.producer, stop)  # issue #21
    gc_tuning.tune_gc()  # a batch allocates millions of short-lived objects
    log.info("processor started", extra={"group": settings.consumer_group})
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
    processor: Processor, settings: Settings, stop: threading.Event
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
    flow = Flow(
        consumer,
        processor.stage,
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
                flow.step()
                backoff.reset()
                if time.monotonic() - last_housekeeping > 5:
                    last_housekeeping = time.monotonic()
                    _housekeeping(processor, consumer)
            except RedisRegressed as exc:
                _read_again(flow, offsets, processor.incarnation, stop, exc)
                continue
            except (StreamError, OSError) as exc:
                # broker unreachable or a rebalance took our partitions: nothing was
                # committed for the batches in hand, so they are delivered again
                # (idempotently) after recovery
                flow.drop()
                DEPENDENCY_UP.labels("kafka").set(0)
                log.warning("Kafka unavailable, retrying", extra={"error": repr(exc)})
                stop.wait(backoff.next())
                continue
            _publish(processor)
    finally:
        flow.close()
    return 0


def _read_again(
    flow: Flow,
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
        flow.reposition(offsets.read())

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
