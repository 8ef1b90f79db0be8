"""The API's Prometheus metrics (``touchpath_api_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "touchpath_api_requests", "API requests answered, by route and status.", ["route", "status"]
)
REQUEST_SECONDS = Histogram(
    "touchpath_api_request_duration_seconds",
    "Time to answer an API request.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
