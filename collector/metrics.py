"""The collector's Prometheus metrics (all ``touchpath_collector_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

EVENTS_ACCEPTED = Counter(
    "touchpath_collector_events_accepted",
    "Events written to the touchpoint topic.",
    ["source", "channel"],
)
EVENTS_REJECTED = Counter(
    "touchpath_collector_events_rejected",
    "Events or requests refused, by reason.",
    ["source", "reason"],
)
REQUESTS = Counter(
    "touchpath_collector_requests",
    "HTTP requests answered, by route template and status.",
    ["route", "status"],
)
REQUEST_SECONDS = Histogram(
    "touchpath_collector_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
PRODUCE_SECONDS = Histogram(
    "touchpath_collector_produce_duration_seconds",
    "Time from handing records to Kafka to their acks=all acknowledgement.",
    buckets=LATENCY_BUCKETS,
)
PRODUCE_ERRORS = Counter(
    "touchpath_collector_produce_errors", "Writes Kafka did not acknowledge in time."
)
