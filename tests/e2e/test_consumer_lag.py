"""Lag that means lag (issue #18): measured from the durable offsets, not the fetch position.

The reproduction: a backlog the processor has fetched but not made durable read as 0 lag. Here
the processor fetches a backlog while Redis refuses writes (so nothing becomes durable): the
lag gauge must show the whole backlog and the age of its oldest record must grow; once Redis
has room both fall back to 0.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import redis
from kafka import KafkaProducer

from infra.embedded import Child
from tests.e2e.conftest import stack_env, start_service, wait_for
from tests.reference import make_event
from touchpath.records import encode_touchpoints

RECORDS = 300
LAG = "touchpath_processor_consumer_lag_records"
AGE = "touchpath_processor_consumer_lag_seconds"


def samples(port: int, name: str) -> dict[str, float]:
    """One gauge's samples by their label text (e.g. ``{partition="0"}``)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def test_lag_counts_a_fetched_backlog_until_it_is_durable(
    bootstrap: str, small_redis: Child, run_dir: Path
) -> None:
    url = f"redis://127.0.0.1:{small_redis.port}/0"
    client = redis.Redis.from_url(url)
    env = stack_env(bootstrap, url, TOUCHPATH_PROCESSOR_LAG_INTERVAL_S="0.2")
    topic = env["TOUCHPATH_TOPIC_TOUCHPOINTS"]
    processor = start_service("processor", env, run_dir)
    port = processor.port
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        # every partition measured and caught up before the backlog
        wait_for(lambda: samples(port, LAG) == {f'{{partition="{p}"}}': 0 for p in range(3)})
        client.set("filler", b"x" * 2_000_000)
        client.config_set("maxmemory", "1mb")  # writes refused: nothing becomes durable
        for i in range(RECORDS):
            event = make_event(
                "track", f"lag-{i}", 1_767_225_600_000, userId=f"lag-{i % 7}", event="Viewed"
            )
            producer.send(topic, encode_touchpoints([event], "test"), partition=i % 3)
        producer.flush()

        wait_for(lambda: sum(samples(port, LAG).values()) == RECORDS, timeout_s=30)
        wait_for(lambda: min(samples(port, AGE).values()) >= 1.0, timeout_s=30)  # it grows
        assert sum(samples(port, LAG).values()) == RECORDS  # fetched, still not durable

        client.config_set("maxmemory", "0")  # room again: the backlog becomes durable
        wait_for(lambda: sum(samples(port, LAG).values()) == 0, timeout_s=60)
        wait_for(lambda: max(samples(port, AGE).values()) == 0, timeout_s=10)
        assert processor.alive()
    finally:
        producer.close()
        processor.stop()
        client.close()
