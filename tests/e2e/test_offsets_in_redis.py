"""Offsets live with the state (issue #20): a Redis that comes back older replays, never loses.

A processor runs against a private Redis with an AOF. After a first batch is processed the
AOF is copied aside; a second batch is processed (its offsets committed to Kafka and recorded
in Redis); then Redis is restarted from the copy, as if its last writes had never reached the
disk. Kafka's committed offsets are ahead of what Redis holds: the processor must notice and
read the second batch again from Redis's own offsets — while it runs, and when it starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from infra.embedded import Child, free_port, start_redis
from store.codecs import decode_profile
from store.keys import Keys
from tests.e2e.conftest import read_topic, stack_env, start_service, wait_for
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


def aof_commands(path: Path) -> list[tuple[int, list[bytes]]]:
    """Each command of an AOF file (RESP arrays): its starting byte and its arguments."""
    raw, at, found = path.read_bytes(), 0, []
    while at < len(raw):
        start = at
        end = raw.index(b"\r\n", at)
        count, at = int(raw[at + 1 : end]), end + 2
        args = []
        for _ in range(count):
            end = raw.index(b"\r\n", at)
            size = int(raw[at + 1 : end])
            args.append(raw[end + 2 : end + 2 + size])
            at = end + 2 + size + 2
        found.append((start, args))
    return found


def incremental_aof(data: Path) -> Path:
    """The AOF file Redis appends to (its manifest's ``type i`` entry)."""
    manifest = next((data / "appendonlydir").glob("*.manifest")).read_text()
    name = next(line.split()[1] for line in manifest.splitlines() if line.endswith(" i"))
    return data / "appendonlydir" / name


def cut_points(aof: Path, offsets_key: str) -> dict[str, int]:
    """Where to cut the AOF: just before the last offsets write (effects kept, offsets not),
    in the middle of the command before it, and at a few command boundaries of the second
    half (a part applied but not resolved, resolved but not recorded, …)."""
    commands = aof_commands(aof)
    writes = [i for i, (_, args) in enumerate(commands) if offsets_key.encode() in args]
    last = writes[-1]
    while commands[last - 1][1][0].upper() == b"MULTI":  # a script's effects come as MULTI
        last -= 1
    before = commands[last - 1][0]
    points = {"before the last offsets": commands[last][0], "inside a command": before + 7}
    half = len(commands) // 2
    for n in range(1, 5):
        points[f"boundary {n}/5 of the second half"] = commands[half + n * half // 5][0]
    return points


def test_an_aof_cut_anywhere_replays_each_event_once(bootstrap: str, run_dir: Path) -> None:
    """Redis restarted from its AOF cut at points a crash could leave (effects without their
    offsets, a torn command, anywhere among a round's writes), while Kafka's commits are at
    the end: every event ends applied exactly once and its customer in the stage it reached."""
    port = free_port()
    data, whole = run_dir / f"redis-aof-{port}", run_dir / f"redis-aof-{port}-whole"
    server = start_redis(port, data, run_dir)
    env = stack_env(bootstrap, f"redis://127.0.0.1:{port}/0", TOUCHPATH_KAFKA_PARTITIONS="3")
    topic, prefix = env["TOUCHPATH_TOPIC_TOUCHPOINTS"], env["TOUCHPATH_REDIS_PREFIX"]
    group, keys = env["TOUCHPATH_CONSUMER_GROUP"], Keys(env["TOUCHPATH_REDIS_PREFIX"])
    client = redis.Redis(port=port)
    processor = start_service("processor", env, run_dir)
    try:
        for total in (20, 40, 60):  # three rounds, so the AOF holds several offsets writes
            produce(bootstrap, topic, "c", total - 20, 20)
            wait_for(partial(counted, client, prefix, range(0, total)), timeout_s=60)
            wait_for(partial(at_least, total, partial(committed, bootstrap, group, topic)))
        processor.stop()
        server.stop()
        shutil.copytree(data, whole)
        points = cut_points(incremental_aof(whole), keys.offsets(topic))
        for where, point in points.items():
            shutil.rmtree(data)
            shutil.copytree(whole, data)
            with incremental_aof(data).open("r+b") as aof:
                aof.truncate(point)
            server = start_redis(port, data, run_dir)
            assert recorded(client, keys.offsets(topic)) < 60, f"cut {where}: not behind Kafka"
            processor = start_service("processor", env, run_dir)
            try:
                wait_for(lambda: counted(client, prefix, range(0, 60)), timeout_s=60)
                wait_for(lambda: all_in_purchase(client, keys, range(0, 60)), timeout_s=30)
                wait_for(lambda: recorded(client, keys.offsets(topic)) == 60, timeout_s=30)
            except AssertionError as failed:
                raise AssertionError(f"cut {where} (byte {point})") from failed
            finally:
                processor.stop()
                server.stop()
        changes = env["TOUCHPATH_TOPIC_STAGE_CHANGES"]
        told = wait_for(lambda: announced_purchases(read_topic(bootstrap, changes, 10**6, 1)))
        assert len(told) == 60
    finally:
        processor.stop()
        server.stop()
        client.close()


def announced_purchases(messages: list[dict]) -> set[str] | None:
    """The customers announced in ``purchase`` once all 60 are (None before); a change told
    again after a replay must be told alike (its ``change_id`` is what consumers de-duplicate
    by)."""
    by_id: dict[str, dict] = {}
    for message in messages:
        assert by_id.setdefault(message["change_id"], message) == message
    told = {m["customer_id"] for m in by_id.values() if m["to"] == "purchase"}
    return told if len(told) == 60 else None


def at_least(total: int, count: Callable[[], int]) -> bool:
    return count() >= total


def recorded(client: redis.Redis, offsets: str) -> int:
    """The sum of the partitions' offsets Redis holds (60: every event's round recorded)."""
    return sum(int(offset) for offset in client.hvals(offsets))


def all_in_purchase(client: redis.Redis, keys: Keys, users: range) -> bool:
    """Every user's customer is stored, in ``purchase`` (one Order Completed each)."""
    customers = client.mget([keys.customer_of(f"user_id:u-{n}") for n in users])
    if not all(customers):
        return False
    profiles = client.mget([keys.customer(c.decode()) for c in customers if isinstance(c, bytes)])
    return all(p and decode_profile(p)["stage"] == "purchase" for p in profiles)
