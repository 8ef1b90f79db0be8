"""The processor's Prometheus metrics (``touchpath_processor_*``, ``touchpath_customers_*``)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter(
    "touchpath_processor_events_processed", "New events applied to journeys.", ["channel"]
)
EVENTS_DUPLICATE = Counter(
    "touchpath_processor_events_duplicate", "Events seen before (same messageId), ignored."
)
CONSUMER_LAG = Gauge(
    "touchpath_processor_consumer_lag_records",
    "Records past the durable offset (high-water mark minus the offset recorded in Redis and "
    "committed), per partition of the topic; every processor reports every partition.",
    ["partition"],
    multiprocess_mode="livemax",
)
CONSUMER_LAG_SECONDS = Gauge(
    "touchpath_processor_consumer_lag_seconds",
    "Age of the oldest record not yet durable (the first past the durable offset; 0 when "
    "none), per partition of the topic.",
    ["partition"],
    multiprocess_mode="livemax",
)
EVENT_TO_STAGE = Histogram(
    "touchpath_processor_event_to_stage_seconds",
    "From the collector receiving an event to its effect being visible in Redis.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
BOUND_OVERFLOWS = Counter(
    "touchpath_processor_bound_overflows",
    "What a store bound kept out: traits (distinct traits per identifier), ids (a tie that "
    "would grow a full cluster), ties (ties per cluster), window (events older than the "
    "de-duplication window), days / purchases (active days / purchase times per identifier, "
    "the oldest dropped: the lifecycle).",
    ["bound"],
)
for _bound in ("traits", "ids", "ties", "window", "days", "purchases"):
    BOUND_OVERFLOWS.labels(_bound)
REDIS_REGRESSIONS = Counter(
    "touchpath_processor_redis_regressions",
    "Times Redis came back older than the processor left it (lost writes); each time the "
    "processor read again from the offsets stored in Redis.",
)
MERGES = Counter("touchpath_processor_merges", "Customers merged into another customer.")
STALE_RESOLUTIONS = Counter(
    "touchpath_processor_stale_resolutions",
    "Clusters derived again because their version moved between the read and the write "
    "(another processor wrote them, or an erasure or split changed them).",
)
MERGES_REFUSED = Counter(
    "touchpath_processor_merges_refused",
    "Ties not made because they would break an identity limit.",
    ["reason"],
)
DEAD_LETTERS = Counter(
    "touchpath_processor_dead_letters",
    "Records or events written to the dead-letter topic.",
    ["reason"],
)
STAGE_CHANGES = Counter(
    "touchpath_processor_stage_changes",
    "Stage announcements (entries and corrections), by the stage they are about.",
    ["stage"],
)


def declare_stages(stages: Iterable[str]) -> None:
    """Export every stage's change counter from the start (0 until a customer reaches it)."""
    for stage in stages:
        STAGE_CHANGES.labels(stage)


PARTITIONS_ASSIGNED = Gauge(
    "touchpath_processor_partitions_assigned",
    "Partitions this instance holds (0 until it has joined the consumer group).",
    multiprocess_mode="livesum",
)
BATCH_SECONDS = Histogram(
    "touchpath_processor_batch_duration_seconds",
    "From staging a batch to the end of the resolution round that covered it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CUSTOMERS_BY_STAGE = Gauge(
    "touchpath_customers_by_stage",
    "Customers whose current stage is …",
    ["stage"],
    multiprocess_mode="livemax",
)
PAUSED = Gauge(
    "touchpath_processor_paused",
    "1 while the processor holds back for a reason (dead_letter_limit, redis_full).",
    ["reason"],
    multiprocess_mode="livemax",
)
PAUSES = Counter(
    "touchpath_processor_pauses", "Times the processor started holding back, by reason.", ["reason"]
)
REDIS_MEMORY_USED = Gauge(
    "touchpath_redis_memory_used_bytes",
    "Memory Redis uses (INFO used_memory), as the processor last read it.",
    multiprocess_mode="livemax",
)
REDIS_MEMORY_MAX = Gauge(
    "touchpath_redis_memory_max_bytes",
    "Redis's maxmemory (0: no limit), as the processor last read it.",
    multiprocess_mode="livemax",
)
REEVALUATED_CLUSTERS = Counter(
    "touchpath_processor_reevaluated_clusters",
    "Clusters resolved again because the rules changed (processor/reevaluation.py).",
)
REEVALUATION_PROGRESS = Gauge(
    "touchpath_processor_reevaluation_progress_ratio",
    "Share of the clusters re-evaluated under the current rules (1: none due).",
    multiprocess_mode="livemax",
)
