"""A processor killed with SIGKILL mid-stream loses no event and counts none twice."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from kafka import KafkaProducer

from store.keys import Keys
from tests.conftest import redis_for
from tests.e2e.conftest import stack_env, start_service
from tests.reference import make_event
from touchpath.records import encode_touchpoints

PEOPLE, RECORDS, PER_RECORD = 40, 60, 10


def processed(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("touchpath_processor_events_processed_total")
    )


def test_sigkill_mid_stream_loses_nothing_and_double_counts_nothing(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_PROCESSOR_BATCH_SIZE="1")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    expected: dict[str, int] = {}
    for record in range(RECORDS):
        events = []
        for i in range(PER_RECORD):
            person = (record * PER_RECORD + i) % PEOPLE
            events.append(
                make_event(
                    "track",
                    f"crash-{record}-{i}",
                    1_767_225_600_000 + record,
                    userId=f"p{person}",
                    event="Product Viewed",
                )
            )
            expected[f"p{person}"] = expected.get(f"p{person}", 0) + 1
        producer.send(
            env["TOUCHPATH_TOPIC_TOUCHPOINTS"],
            encode_touchpoints(events, "t"),
            partition=record % 3,
        )
    producer.flush()
    producer.close()

    first = start_service("processor", env, run_dir)
    port = first.port
    deadline = time.monotonic() + 60
    while processed(port) < PER_RECORD * 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    done_before_kill = processed(port)
    first.kill()
    assert 0 < done_before_kill < RECORDS * PER_RECORD, "the kill must land mid-stream"

    second = start_service("processor", env, run_dir)
    client = redis_for(redis_url, decode_responses=True)
    prefix = env["TOUCHPATH_REDIS_PREFIX"]
    try:
        deadline = time.monotonic() + 60
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            pipe = client.pipeline(transaction=False)
            for person in expected:
                pipe.hget(Keys(prefix).anchor(f"user_id:{person}", "data"), "c:events")
            counts = {p: int(c or 0) for p, c in zip(expected, pipe.execute(), strict=True)}
            if counts == expected:
                break
            time.sleep(0.2)
        assert counts == expected  # every event counted exactly once
        for person in expected:
            journey = client.zcard(Keys(prefix).anchor(f"user_id:{person}", "journey"))
            assert journey == expected[person]
            assert client.get(Keys(prefix).customer_of(f"user_id:{person}"))
    finally:
        second.stop()
