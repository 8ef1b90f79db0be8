"""Every metric the dashboards and alerts use is really exported by a running stack."""

from __future__ import annotations

import base64
import os
import re
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, stack_env, start_service, wait_for

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


def listed() -> dict[str, str]:
    """deploy/metrics.txt: each exported family's name and type."""
    rows = (ROOT / "deploy" / "metrics.txt").read_text().splitlines()
    return dict(row.split() for row in rows if row.strip())


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
    wanted = set(listed())
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


# --- hostile label values (issue #18): names, types and a bounded number of series ------------


def series(text: str) -> list[str]:
    """The sample lines of an exposition."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def total(text: str, prefix: str) -> float:
    """The sum of the samples whose line starts with ``prefix``."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in series(text) if line.startswith(prefix))


UNUSUAL_METHODS = ("DELETE", "PATCH", "PROPFIND", "TRACE")


def hostile_round(urls: dict[str, str], tag: str, count: int) -> list[str]:
    """Client-chosen values in every place a label could come from: event channels (valid
    and invalid), paths, methods, CORS preflights (allowed and refused). Returns the values."""
    values = [f"{tag}{uuid.uuid4().hex[:10]}" for _ in range(count)]
    auth = (WRITE_KEY, "")
    events = [
        {
            "type": "track",
            "userId": f"hostile-{v}",
            "event": "Product Viewed",
            "context": {"channel": channel},
        }
        for v in values
        for channel in (v, f"BAD {v}")
    ]
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{urls['collector']}/v1/batch", json={"batch": events}, auth=auth)
        assert response.status_code == 200, response.text
        for value in values:
            for base in (urls["collector"], urls["api"]):
                client.get(f"{base}/{value}/x")  # no such route
                client.request(value.upper(), f"{base}/healthz")  # refused by the parser
                for method in UNUSUAL_METHODS:
                    client.request(method, f"{base}/healthz")
            for method in ("POST", "PUT"):
                client.options(
                    f"{urls['collector']}/v1/track",
                    headers={
                        "Origin": f"https://{value}.example",
                        "Access-Control-Request-Method": method,
                    },
                )
    return values


def caught_up(ports: dict[str, int]) -> bool:
    """The processor has handled every event the collector accepted."""
    accepted = total(scrape(ports["collector"]), "touchpath_collector_events_accepted_total")
    processor = scrape(ports["processor"])
    handled = total(processor, "touchpath_processor_events_processed_total") + total(
        processor, "touchpath_processor_events_duplicate_total"
    )
    return accepted > 0 and handled >= accepted


def counted(ports: dict[str, int]) -> dict[str, set[str]]:
    """Series per service once the processor has caught up."""
    wait_for(lambda: caught_up(ports), timeout_s=60)
    return {
        name: {line.rsplit(" ", 1)[0] for line in series(scrape(port))}
        for name, port in ports.items()
    }


def test_every_service_exports_listed_names_and_types_and_bounded_series(
    services: dict[str, int],
) -> None:
    urls = {name: f"http://127.0.0.1:{port}" for name, port in services.items()}
    for port in services.values():  # a scrape is a request too: its series exist from now on
        scrape(port)
    hostile_round(urls, "w", 2)  # every kind of value once: its series exist from now on
    before = counted(services)
    values = hostile_round(urls, "h", 150)
    after = counted(services)
    added = {
        name: sorted(after[name] - before[name]) for name in after if after[name] > before[name]
    }
    assert added == {}  # 150 of each hostile value added no series
    assert after == before
    types = listed()
    for name, port in services.items():
        text = scrape(port)
        assert "_created" not in text, name
        assert not [v for v in values if v in text], name
        for family in text_string_to_metric_families(text):
            exported = family.name + ("_total" if family.type == "counter" else "")
            if exported.startswith("touchpath_"):
                assert types.get(exported) == family.type, (name, exported, family.type)
    collector = scrape(services["collector"])
    assert 'route="preflight",status="200"' in collector
    assert 'route="preflight",status="400"' in collector
    # only the requests to paths that exist nowhere are unmatched, never a preflight
    unmatched = total(collector, 'touchpath_collector_requests_total{route="unmatched"')
    assert unmatched == 2 + 150


def live_gauge_pids(directory: Path) -> set[int]:
    """Processes with live-gauge files in a multiprocess metrics directory."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("gauge_live*_*.db")}


def test_multi_worker_gauges_of_gone_workers_are_dropped(
    bootstrap: str, redis_url: str, run_dir: Path, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "multiproc"
    metrics_dir.mkdir()
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_COLLECTOR_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    child = start_service("collector", env, run_dir)
    url = f"http://127.0.0.1:{child.port}"

    def both_workers_checked() -> set[int] | None:
        with httpx.Client() as fresh:  # new connections spread over both workers
            fresh.get(f"{url}/readyz")
        pids = live_gauge_pids(metrics_dir)
        return pids if len(pids) == 2 else None

    try:
        killed = min(wait_for(both_workers_checked))
        os.kill(killed, signal.SIGKILL)  # never cleans up; uvicorn starts a replacement
        wait_for(lambda: killed not in live_gauge_pids(metrics_dir) and child.alive())
    finally:
        child.stop()
    assert live_gauge_pids(metrics_dir) == set()  # each worker's own on its way out
