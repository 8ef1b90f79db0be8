"""The processor never exits because of data or a full Redis: it pauses, says so, resumes.

* A burst of dead letters above ``TOUCHPATH_PROCESSOR_MAX_DEAD_LETTERS_PER_MINUTE`` pauses
  consumption for a while (``/readyz`` 503 with the reason, ``touchpath_processor_paused``),
  every bad record is in the dead-letter topic and the normal events after it land.
* A Redis refusing writes (``maxmemory`` reached, ``noeviction``) makes the processor back off
  and report unready; once Redis has room again the waiting events land exactly once.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import redis
from kafka import KafkaProducer

from infra.embedded import Child
from store.keys import Keys
from tests.e2e.conftest import read_topic, stack_env, start_service, wait_for
from tests.reference import make_event
from touchpath.records import encode_touchpoints

BAD_RECORDS = 1001  # one more than the default limit of 1000 dead letters a minute
PAUSE_S = 3
PEOPLE, PER_PERSON = 12, 4


def readyz(port: int) -> tuple[int, dict]:
    """Status and JSON body of the processor's /readyz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:  # not listening (e.g. the process exited)
        return 0, {}


def unready(port: int) -> dict | None:
    """The /readyz body while it answers 503."""
    status, body = readyz(port)
    return body if status == 503 else None


def metric(port: int, name: str) -> float:
    """The sum of one metric's samples (e.g. ``touchpath_processor_paused{reason="x"}``)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def normal_events(tag: str) -> dict[str, list[dict]]:
    """Identified events, by person."""
    return {
        f"{tag}-{person}": [
            make_event(
                "track",
                f"{tag}-{person}-{i}",
                1_767_225_600_000 + i,
                userId=f"{tag}-{person}",
                event="Product Viewed",
            )
            for i in range(PER_PERSON)
        ]
        for person in range(PEOPLE)
    }


def send_people(producer: KafkaProducer, topic: str, people: dict[str, list[dict]]) -> None:
    for index, events in enumerate(people.values()):
        producer.send(topic, encode_touchpoints(events, "test"), partition=index % 3)
    producer.flush()


def counts(client: redis.Redis, prefix: str, people: dict[str, list[dict]]) -> dict[str, int]:
    """Events counted per person (``c:events`` of their anchor)."""
    pipe = client.pipeline(transaction=False)
    for person in people:
        pipe.hget(Keys(prefix).anchor(f"user_id:{person}", "data"), "c:events")
    return {p: int(c or 0) for p, c in zip(people, pipe.execute(), strict=True)}


def landed(client: redis.Redis, prefix: str, people: dict[str, list[dict]]) -> Callable[[], bool]:
    """A check: every person's events counted exactly once and the person resolved."""

    def check() -> bool:
        keys = Keys(prefix)
        resolved = all(client.get(keys.customer_of(f"user_id:{person}")) for person in people)
        return resolved and counts(client, prefix, people) == dict.fromkeys(people, PER_PERSON)

    return check


def test_dead_letter_burst_pauses_and_resumes_instead_of_exiting(
    bootstrap: str, redis_url: str, redis_client: redis.Redis, run_dir: Path
) -> None:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_PROCESSOR_DEAD_LETTER_PAUSE_S=str(PAUSE_S))
    topic, prefix = env["TOUCHPATH_TOPIC_TOUCHPOINTS"], env["TOUCHPATH_REDIS_PREFIX"]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    # the request: events whose timestamp the processor cannot parse, then records
    # that are not even JSON, all on partition 0, followed by normal traffic everywhere
    year_999 = {
        "v": 1,
        "source": "x",
        "events": [
            {
                **make_event("track", f"y999-{i}", 0, userId="attacker", event="x"),
                "timestamp": "999-01-01T00:00:00.000Z",
            }
            for i in range(50)
        ],
    }
    producer.send(topic, orjson.dumps(year_999), partition=0)
    for i in range(BAD_RECORDS):
        producer.send(topic, f"not json {i}".encode(), partition=0)
    people = normal_events("dl")
    send_people(producer, topic, people)

    processor = start_service("processor", env, run_dir)
    port = processor.port
    try:
        paused = wait_for(lambda: unready(port), timeout_s=60)
        assert paused["reasons"] == ["dead_letter_limit"]
        assert metric(port, 'touchpath_processor_paused{reason="dead_letter_limit"}') == 1
        assert processor.alive()
        later = normal_events("dl-later")  # sent while paused: held back one pause at most
        send_people(producer, topic, later)
        for wave in (people, later):
            wait_for(landed(redis_client, prefix, wave), PAUSE_S + 15)
        wait_for(lambda: readyz(port)[0] == 200, timeout_s=30)
        assert metric(port, 'touchpath_processor_pauses_total{reason="dead_letter_limit"}') >= 1
        assert metric(port, 'touchpath_processor_paused{reason="dead_letter_limit"}') == 0
        dead = read_topic(bootstrap, env["TOUCHPATH_TOPIC_DEAD_LETTER"], BAD_RECORDS + 50, 30)
        raw = {d["raw"] for d in dead if isinstance(d.get("raw"), str)}
        assert {f"not json {i}" for i in range(BAD_RECORDS)} <= raw
        assert processor.alive()
    finally:
        producer.close()
        processor.stop()


def test_full_redis_makes_the_processor_unready_and_nothing_is_lost(
    bootstrap: str, small_redis: Child, run_dir: Path
) -> None:
    url = f"redis://127.0.0.1:{small_redis.port}/0"
    client = redis.Redis.from_url(url, decode_responses=True)
    env = stack_env(bootstrap, url)
    topic, prefix = env["TOUCHPATH_TOPIC_TOUCHPOINTS"], env["TOUCHPATH_REDIS_PREFIX"]
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert client.config_get("maxmemory")["maxmemory"] == str(64 << 20)
    client.set("filler", "x" * 4_000_000)
    client.config_set("maxmemory", "2mb")  # now over the limit: writes are refused
    processor = start_service("processor", env, run_dir)  # starts on a full Redis
    port = processor.port
    try:
        people = normal_events("oom")
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        send_people(producer, topic, people)
        producer.close()

        refused = wait_for(lambda: unready(port), timeout_s=60)
        assert refused["reasons"] == ["redis_full"]
        assert metric(port, 'touchpath_processor_paused{reason="redis_full"}') == 1
        assert counts(client, prefix, people) == dict.fromkeys(people, 0)
        assert processor.alive()

        client.config_set("maxmemory", "0")  # room again
        wait_for(landed(client, prefix, people), timeout_s=60)
        wait_for(lambda: readyz(port)[0] == 200, timeout_s=30)
        for person in people:  # exactly once: the timeline agrees with the counter
            assert client.zcard(Keys(prefix).anchor(f"user_id:{person}", "journey")) == PER_PERSON
        assert metric(port, 'touchpath_processor_pauses_total{reason="redis_full"}') >= 1
        assert processor.alive()
    finally:
        processor.stop()
        client.close()
