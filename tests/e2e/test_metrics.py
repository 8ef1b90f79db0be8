"""Every metric the dashboards and alerts use is really exported by a running stack."""

from __future__ import annotations

import base64
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, stack_env, start_service

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def families(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            for suffix in SUFFIXES:
                name = name.removesuffix(suffix)
            names.add(name)
    return names


@pytest.fixture(scope="module")
def services(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, int]]:
    env = stack_env(bootstrap, redis_url)
    children = {
        name: start_service(name, env, run_dir)
        for name in ("collector", "processor", "api", "webhooks")
    }
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(env["TOUCHPATH_TOPIC_TOUCHPOINTS"], b"not a record").get(10)
    producer.close()
    yield {name: child.port for name, child in children.items()}
    for child in children.values():
        child.stop()


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_dashboards_and_alerts_only_use_exported_metrics(services: dict[str, int]) -> None:
    collector = f"http://127.0.0.1:{services['collector']}"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    batch = {
        "batch": [
            {"type": "identify", "userId": "alice", "anonymousId": "shared-device-0001"},
            {
                "type": "identify",
                "userId": "bob",
                "anonymousId": "shared-device-0001",
                "timestamp": "2030-01-01T00:00:00Z",
            },
            {"type": "track", "userId": "alice", "event": "Order Completed"},
            {"type": "track", "event": "no identifier"},
        ]
    }
    assert httpx.post(f"{collector}/v1/batch", json=batch, headers=auth).status_code == 200
    httpx.get(f"http://127.0.0.1:{services['api']}/readyz")
    httpx.get(
        f"http://127.0.0.1:{services['api']}/healthz",
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
    )
    httpx.get(f"{collector}/readyz")
    wanted = set((ROOT / "deploy" / "metrics.txt").read_text().split())
    wanted = {name.removesuffix("_total") for name in wanted} | wanted
    deadline = time.monotonic() + 30
    exported: set[str] = set()
    while time.monotonic() < deadline:
        exported = set().union(*(families(scrape(port)) for port in services.values()))
        exported |= {name.removesuffix("_total") for name in exported}
        if wanted <= exported:
            break
        time.sleep(0.5)
    assert sorted(wanted - exported) == []


def test_multi_worker_collector_exports_the_sum_of_its_workers(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_COLLECTOR_WORKERS="2")
    child = start_service("collector", env, run_dir)
    url = f"http://127.0.0.1:{child.port}"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    try:
        for i in range(20):
            with httpx.Client() as fresh:  # new connections spread over both workers
                response = fresh.post(
                    f"{url}/v1/track",
                    headers=auth,
                    json={"userId": f"mw-{i}", "event": "Product Viewed"},
                )
                assert response.status_code == 200
        for _ in range(5):  # whichever worker answers the scrape reports all of them
            text = scrape(child.port)
            accepted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("touchpath_collector_events_accepted_total{")
            )
            assert accepted == 20
    finally:
        child.stop()
