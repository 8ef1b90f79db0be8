"""Garbage-collector settings for the services (for latency and throughput, not a leak fix)."""

from __future__ import annotations

import gc

# Collect young objects every 50,000 allocations instead of 700: a request allocates a few
# hundred objects (a 100-event batch some thousands), and each collection paused every request
# in flight (API p99 at 64 clients went from ~60 ms to ~15 ms together with gc.freeze(), see
# bench/api_bench.py; the collector's batch p99 is in bench/collector_bench.py).
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    """Freeze the start-up objects (never collected, never scanned again) and collect less
    often. Call once, at the end of start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
