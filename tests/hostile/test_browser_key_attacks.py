"""Issue #13 as a suite: every hostile case, with only the public website write key, against a
live collector, processor and Redis while normal identified traffic flows.

Asserted after all cases: every service is still alive, every normal event is visible exactly
once with the right stage, each hostile request was rejected or stored within its caps, and no
normal request took longer than 2 s. The figures (cases, losses, worst delays) are printed and
written to ``bench/results/hostile.json`` for the README's reliability section.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from infra.embedded import Child
from store.codecs import decode_journey_entry, decode_profile
from store.keys import Keys
from tests.e2e.conftest import BROWSER_KEY as WRITE_KEY
from tests.e2e.conftest import stack_env, start_service, wait_for
from tests.fuzz.test_collector_parsers import refuse_bad_requests
from touchpath.effects import MAX_ENTRY_TEXT
from touchpath.events import CHANNELS, MAX_NESTING
from touchpath.profiles import MAX_PROFILE_TRAITS

MAX_NORMAL_DELAY_S = 2.0
CLUSTER_IDS = 50
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "hostile.json"


@dataclass
class Live:
    """The live stack: its services, the collector's URL, Redis and the key prefix."""

    children: list[Child]
    url: str
    redis: redis.Redis
    prefix: str
    cases: list[str] = field(default_factory=list)

    def post(self, body: object, path: str = "/v1/batch", timeout: float = 20) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, auth=(WRITE_KEY, ""), timeout=timeout)

    def customer(self, identifier: str) -> dict[str, Any] | None:
        cid = self.redis.get(Keys(self.prefix).customer_of(identifier))
        blob = self.redis.get(Keys(self.prefix).customer(cid.decode())) if cid else None
        return decode_profile(blob) if blob else None

    def events_of(self, identifier: str) -> int:
        return int(self.redis.hget(Keys(self.prefix).anchor(identifier, "data"), "c:events") or 0)


class NormalTraffic:
    """Identified customers browsing and buying in the background, each request timed."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.stop = threading.Event()
        self.users: list[str] = []
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                user = f"normal-{n}"
                batch = [
                    {"type": "page", "userId": user, "properties": {"path": "/"}},
                    {"type": "track", "event": "Product Viewed", "userId": user},
                    {
                        "type": "track",
                        "event": "Order Completed",
                        "userId": user,
                        "properties": {"revenue": 10},
                    },
                ]
                started = time.perf_counter()
                answer = client.post(f"{self.live.url}/v1/batch", json={"batch": batch})
                self.latencies.append(time.perf_counter() - started)
                if answer.status_code != 200 or answer.json().get("accepted") != 3:
                    self.failures.append(f"{user}: {answer.status_code} {answer.text[:200]}")
                self.users.append(user)
                n += 1
                self.stop.wait(0.05)


@pytest.fixture(scope="module")
def live(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[Live]:
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_MAX_CLUSTER_IDENTIFIERS=str(CLUSTER_IDS),
        TOUCHPATH_MAX_REQUEST_BYTES="120000",  # the corpus' oversized batch is 144 KB
        TOUCHPATH_LOG_LEVEL="WARNING",
    )
    children = [start_service(name, env, run_dir) for name in ("collector", "processor")]
    client = redis.Redis.from_url(redis_url)
    stack = Live(
        children, f"http://127.0.0.1:{children[0].port}", client, env["TOUCHPATH_REDIS_PREFIX"]
    )
    stack.post({"batch": [{"type": "track", "event": "Warm Up", "userId": "warm-up"}]})
    wait_for(lambda: stack.customer("user_id:warm-up"), timeout_s=60)  # the group is joined
    yield stack
    for child in children:
        child.stop()
    client.close()


def visible_within(live: Live, check: Callable[[], object], timeout_s: float = 30) -> float:
    started = time.perf_counter()
    wait_for(check, timeout_s=timeout_s)
    return time.perf_counter() - started


def probe(live: Live) -> float:
    """Seconds until a new, unrelated customer's event shows its stage."""
    user = f"probe-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    live.post({"batch": [{"type": "track", "event": "Order Completed", "userId": user}]})
    wait_for(lambda: (live.customer(f"user_id:{user}") or {}).get("stage") == "purchase", 30)
    return time.perf_counter() - started


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def case_year_999(live: Live) -> None:
    """1,001 events dated 0999: a browser key's times are clamped to the week before receipt
    (a server key's would each be rejected with the range: tests/unit/test_event_contract.py),
    and the processor stores every one."""
    batch = [
        {"type": "track", "event": "X", "userId": f"old-{n}", "timestamp": "0999-01-01T00:00:00Z"}
        for n in range(1001)
    ]
    answer = live.post({"batch": batch})
    assert answer.status_code == 200 and answer.json()["accepted"] == 1001, answer.text
    wait_for(lambda: live.events_of("user_id:old-1000") == 1)
    journey = Keys(live.prefix).anchor("user_id:old-1000", "journey")
    entry = decode_journey_entry(*live.redis.zrange(journey, 0, 0, withscores=True)[0])
    assert entry["at"] >= (time.time() - 7 * 24 * 3600 - 60) * 1000


def case_trait_flood(live: Live) -> None:
    """An order and 42 identifies of 100 distinct traits each, all for the victim."""
    batch: list[dict[str, Any]] = [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "victim",
            "properties": {"revenue": 99},
        },
    ]
    batch += [
        {"type": "identify", "userId": "victim", "traits": {f"t{n}_{k}": k for k in range(100)}}
        for n in range(42)
    ]
    assert live.post({"batch": batch}).json()["accepted"] == 43
    wait_for(lambda: live.events_of("user_id:victim") == 43)
    profile = wait_for(lambda: live.customer("user_id:victim"))
    assert profile["orders"] == 1 and profile["stage"] == "purchase"
    assert len(profile["traits"]) <= MAX_PROFILE_TRAITS


def case_poisoned_nesting(live: Live) -> None:
    """A deeply nested event among 30 requests sent at once: only it fails, none waits."""
    poison = {
        "type": "track",
        "event": "X",
        "userId": "p",
        "messageId": "poison",
        "properties": nested(252),
    }
    others = [
        {"type": "track", "event": "Order Completed", "userId": f"crowd-{n}"} for n in range(30)
    ]

    def send(body: dict[str, Any]) -> tuple[int, float]:
        started = time.perf_counter()
        answer = live.post(body, path="/v1/track", timeout=10)
        return answer.status_code, time.perf_counter() - started

    with ThreadPoolExecutor(31) as pool:
        results = list(pool.map(send, [poison, *others]))
    assert results[0][0] == 400
    assert all(status == 200 for status, _ in results[1:]), results
    assert max(seconds for _, seconds in results[1:]) < MAX_NORMAL_DELAY_S
    for n in range(30):
        wait_for(lambda n=n: live.customer(f"user_id:crowd-{n}"))
    deep = live.post(
        {"type": "track", "event": "X", "userId": "p", "properties": nested(MAX_NESTING + 300)},
        path="/v1/track",
    )
    assert deep.status_code == 400 and "levels" in deep.json()["detail"]


def case_separator(live: Live) -> None:
    answer = live.post({"type": "identify", "userId": "u\u001fx"}, path="/v1/identify")
    assert answer.status_code == 400 and "control character" in answer.json()["detail"]


def case_identifier_flood(live: Live) -> None:
    """1,000 identifies tying user ids to one anonymousId: the cluster stops growing."""
    for start in range(0, 1000, 250):
        batch = [
            {"type": "identify", "userId": f"flood-{n}", "anonymousId": "shared-anon"}
            for n in range(start, start + 250)
        ]
        assert live.post({"batch": batch}).json()["accepted"] == 250
    wait_for(lambda: live.customer("user_id:flood-999"))
    cluster = live.redis.get(Keys(live.prefix).identity("anonymous_id:shared-anon"))
    assert cluster is not None
    fields = live.redis.hkeys(Keys(live.prefix).cluster(cluster.decode()))
    assert sum(field.startswith(b"i:") for field in fields) <= CLUSTER_IDS
    shared = wait_for(lambda: live.customer("anonymous_id:shared-anon"))
    assert len(shared["refused_ties"]) <= 20
    assert len(orjson.dumps(shared)) < 50_000


def case_trait_fields(live: Live) -> None:
    """Three requests of 670 traits each for one customer."""
    for r in range(3):
        traits = {f"f{r}_{k}": "x" * 10 for k in range(670)}
        answer = live.post({"type": "identify", "userId": "wide", "traits": traits}, "/v1/identify")
        assert answer.status_code == 200, answer.text
    wait_for(lambda: live.events_of("user_id:wide") == 3)
    wide = wait_for(lambda: live.customer("user_id:wide"))
    assert len(wide["traits"]) <= MAX_PROFILE_TRAITS


def case_long_event_name(live: Live) -> None:
    name = "N" * 30_000
    live.post({"type": "track", "event": name, "userId": "long-name"}, path="/v1/track")
    wait_for(lambda: live.events_of("user_id:long-name") == 1)
    journey = Keys(live.prefix).anchor("user_id:long-name", "journey")
    entry = decode_journey_entry(*live.redis.zrange(journey, 0, 0, withscores=True)[0])
    assert len(entry["event"]) == MAX_ENTRY_TEXT


def case_channel_labels(live: Live) -> None:
    batch = [
        {"type": "track", "event": "X", "userId": "labels", "context": {"channel": f"made-up-{n}"}}
        for n in range(200)
    ]
    assert live.post({"batch": batch}).json()["accepted"] == 200
    text = httpx.get(f"{live.url}/metrics", timeout=10).text
    labels = {
        line.split('channel="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("touchpath_collector_events_accepted_total{")
    }
    assert labels <= CHANNELS, labels - CHANNELS


def case_bad_input_corpus(live: Live) -> None:
    refuse_bad_requests(live.url, WRITE_KEY)


CASES = [
    case_year_999,
    case_trait_flood,
    case_poisoned_nesting,
    case_separator,
    case_identifier_flood,
    case_trait_fields,
    case_long_event_name,
    case_channel_labels,
    case_bad_input_corpus,
]


def test_no_hostile_case_stops_loses_or_delays_normal_traffic(live: Live) -> None:
    normal = NormalTraffic(live)
    normal.thread.start()
    probes: dict[str, float] = {}
    try:
        for case in CASES:
            case(live)
            probes[case.__name__] = probe(live)
    finally:
        normal.stop.set()
        normal.thread.join(30)
    assert all(child.alive() for child in live.children), "a service died"
    assert not normal.failures, normal.failures[:5]

    def counted() -> bool:
        return all(live.events_of(f"user_id:{user}") >= 3 for user in normal.users)

    wait_for(counted, timeout_s=60)
    lost = [
        user
        for user in normal.users
        if live.events_of(f"user_id:{user}") != 3  # exactly once
        or (live.customer(f"user_id:{user}") or {}).get("stage") != "purchase"
    ]
    worst = max(normal.latencies)
    figures = {
        "cases": len(CASES),
        "normal_requests": len(normal.latencies),
        "normal_customers_wrong": len(lost),
        "worst_normal_request_s": round(worst, 3),
        "worst_probe_visible_s": round(max(probes.values()), 3),
        "probe_visible_s": {name: round(s, 3) for name, s in probes.items()},
    }
    print(json.dumps(figures, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=1) + "\n")
    assert not lost, lost[:5]
    assert worst < MAX_NORMAL_DELAY_S, figures
