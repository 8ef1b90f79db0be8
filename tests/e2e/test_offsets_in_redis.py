"""Offsets live with the state (issue #20): a Redis that comes back older replays, never loses.

A processor runs against a private Redis with an AOF. After a first batch is processed the
AOF is copied aside; a second batch is processed (its offsets committed to Kafka and recorded
in Redis); then Redis is restarted from the copy, as if its last writes had never reached the
disk. Kafka's committed offsets are ahead of what Redis holds: the processor must notice and
read the second batch again from Redis's own offsets — while it runs, and when it starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from infra.embedded import Child, free_port, start_redis
from store.keys import Keys
from tests.e2e.conftest import stack_env, start_service, wait_for
from tests.e2e.test_processor import event
from touchpath.records import encode_touchpoints

PARTITIONS = 3


def produce(bootstrap: str, topic: str, prefix: str, start: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n in range(start, start + count):
        record = [
            event(
                "track",
                f"{prefix}-{n}",
                "2026-03-01T10:00:00.000Z",
                userId=f"u-{n}",
                event="Order Completed",
            )
        ]
        producer.send(topic, value=encode_touchpoints(record, "test"), partition=n % PARTITIONS)
    producer.flush(10)
    producer.close()


def counted(client: redis.Redis, prefix: str, users: range) -> bool:
    pipe = client.pipeline(transaction=False)
    for n in users:
        pipe.hget(Keys(prefix).anchor(f"user_id:u-{n}", "data"), "c:events")
    return all(value == b"1" for value in pipe.execute())


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    finally:
        consumer.close()


def restart_from(port: int, data: Path, copy: Path, run_dir: Path, child: Child) -> Child:
    child.stop()
    shutil.rmtree(data)
    shutil.copytree(copy, data)
    return start_redis(port, data, run_dir)


def test_a_redis_that_comes_back_older_is_replayed_from_its_own_offsets(
    bootstrap: str, run_dir: Path
) -> None:
    port = free_port()
    data, copy = run_dir / f"redis-cut-{port}", run_dir / f"redis-cut-{port}-copy"
    server = start_redis(port, data, run_dir)
    env = stack_env(bootstrap, f"redis://127.0.0.1:{port}/0", TOUCHPATH_KAFKA_PARTITIONS="3")
    topic, prefix = env["TOUCHPATH_TOPIC_TOUCHPOINTS"], env["TOUCHPATH_REDIS_PREFIX"]
    group = env["TOUCHPATH_CONSUMER_GROUP"]
    client = redis.Redis(port=port)
    processor = start_service("processor", env, run_dir)
    try:
        produce(bootstrap, topic, "a", 0, 30)
        wait_for(lambda: counted(client, prefix, range(0, 30)), timeout_s=60)
        wait_for(lambda: committed(bootstrap, group, topic) == 30)
        server.stop()  # a clean stop: the AOF holds the first batch, and its offsets
        shutil.copytree(data, copy)
        server = start_redis(port, data, run_dir)
        produce(bootstrap, topic, "b", 30, 30)
        wait_for(lambda: counted(client, prefix, range(30, 60)), timeout_s=60)
        wait_for(lambda: committed(bootstrap, group, topic) == 60)

        # while the processor runs: Redis comes back without the second batch
        server = restart_from(port, data, copy, run_dir, server)
        assert not counted(client, prefix, range(30, 60))
        wait_for(lambda: counted(client, prefix, range(0, 60)), timeout_s=60)

        # while it is down: the same, then it starts with Kafka's commits ahead of Redis
        processor.stop()
        server = restart_from(port, data, copy, run_dir, server)
        processor = start_service("processor", env, run_dir)
        wait_for(lambda: counted(client, prefix, range(0, 60)), timeout_s=60)
    finally:
        processor.stop()
        server.stop()
        client.close()
