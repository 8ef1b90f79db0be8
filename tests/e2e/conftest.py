"""Fixtures for end-to-end tests: touchpath services as real child processes."""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from infra.embedded import Child, free_port, spawn, start_redis
from infra.kafka import ensure_topics
from tests.conftest import CLUSTER_URLS
from touchpath.records import encode_touchpoints
from touchpath.settings import load_settings

T = TypeVar("T")
WRITE_KEY = "wk_test_website"
SERVER_KEY = "wk_test_backend"
BROWSER_KEY = "wk_test_browser"  # a public website key: browser trust
READ_TOKEN = "tok_test_read"
ADMIN_TOKEN = "tok_test_admin"


def stack_env(bootstrap: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for services of one test stack, with topics of their own."""
    run = uuid.uuid4().hex[:8]
    cluster = redis_url in CLUSTER_URLS  # every key under one hash tag: {t…}
    env = {
        "TOUCHPATH_KAFKA_BOOTSTRAP": bootstrap,
        "TOUCHPATH_REDIS_URL": redis_url,
        "TOUCHPATH_REDIS_PREFIX": f"{{t{run}}}" if cluster else f"t{run}",
        "TOUCHPATH_REDIS_CLUSTER": "true" if cluster else "false",
        "TOUCHPATH_TOPIC_TOUCHPOINTS": f"tp.{run}.touchpoints",
        "TOUCHPATH_TOPIC_DEAD_LETTER": f"tp.{run}.dead-letter",
        "TOUCHPATH_TOPIC_STAGE_CHANGES": f"tp.{run}.stage-changes",
        "TOUCHPATH_KAFKA_PARTITIONS": "3",
        "TOUCHPATH_CONSUMER_GROUP": f"tp-{run}",
        "TOUCHPATH_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        # tests replay history with their own timestamps: the website key is trusted here,
        # and the public-key rules are tested with BROWSER_KEY
        "TOUCHPATH_WRITE_KEYS": f"{WRITE_KEY}=website:web:server,{SERVER_KEY}=backend:server,"
        f"{BROWSER_KEY}=browser:web:browser",
        "TOUCHPATH_API_TOKENS": f"{READ_TOKEN}=read,{ADMIN_TOKEN}=read+admin",
        "TOUCHPATH_DATA_DIR": "/tmp/touchpath-test",
        "TOUCHPATH_PRODUCE_TIMEOUT_S": "1.5",
        "TOUCHPATH_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    ensure_topics(
        load_settings(**{k.removeprefix("TOUCHPATH_").lower(): v for k, v in env.items()})
    )
    return env


def start_service(name: str, env: dict[str, str], log_dir: Path) -> Child:
    """Run ``touchpath <name>`` with ``env`` and wait for its /healthz."""
    port_var = {
        "collector": "TOUCHPATH_COLLECTOR_PORT",
        "api": "TOUCHPATH_API_PORT",
        "processor": "TOUCHPATH_PROCESSOR_METRICS_PORT",
        "webhooks": "TOUCHPATH_WEBHOOKS_METRICS_PORT",
    }[name]
    port = int(env.get(port_var) or free_port())
    env = {**env, port_var: str(port)}
    child = spawn(
        name,
        [sys.executable, "-m", "launcher.cli", name],
        port,
        log_dir / f"{name}-{port}.log",
        env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
            if r.status == 200:
                return child
        time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"{name} did not become healthy")


@contextlib.contextmanager
def services(env: dict[str, str], log_dir: Path, *names: str) -> Iterator[dict[str, Child]]:
    """``touchpath <name>`` for each name, stopped on the way out (the dict may be changed
    meanwhile, e.g. to restart one)."""
    children: dict[str, Child] = {}
    try:
        for name in names:
            children[name] = start_service(name, env, log_dir)
        yield children
    finally:
        for child in children.values():
            child.stop()


def urls(children: dict[str, Child], *names: str) -> list[str]:
    """Base URLs of the named services."""
    return [f"http://127.0.0.1:{children[n].port}" for n in names]


def wait_for(check: Callable[[], T | None], timeout_s: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 15.0) -> list[dict]:
    """Read ``count`` JSON records from the start of every partition of ``topic``."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found: list[dict] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                found.extend({"key": r.key, **orjson.loads(r.value)} for r in batch)
        return found
    finally:
        consumer.close()


def send(env: dict[str, str], *events: dict[str, Any]) -> None:
    """Put events on the stack's touchpoint topic directly, one record each."""
    producer = KafkaProducer(bootstrap_servers=env["TOUCHPATH_KAFKA_BOOTSTRAP"], acks="all")
    for event in events:
        producer.send(env["TOUCHPATH_TOPIC_TOUCHPOINTS"], encode_touchpoints([event], "t"))
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def module_env(bootstrap: str, redis_url: str) -> dict[str, str]:
    return stack_env(bootstrap, redis_url)


@pytest.fixture(scope="module")
def collector(module_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    """A collector process; yields its base URL."""
    child = start_service("collector", module_env, run_dir)
    yield f"http://127.0.0.1:{child.port}"
    child.stop()


ReadTopic = Callable[[str, int], list[dict]]


@pytest.fixture
def small_redis(run_dir: Path) -> Iterator[Child]:
    """A private redis-server started as ``touchpath up`` starts it (64 MB here)."""
    data = run_dir / f"redis-small-{free_port()}"
    child = start_redis(free_port(), data, run_dir, aof=False, maxmemory="64mb")
    yield child
    child.stop()
