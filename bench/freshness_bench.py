"""Freshness: event-to-stage time of the whole embedded stack (``touchpath up``) under load.

Starts ``touchpath up`` (durable broker on SeaweedFS by default, ``--ephemeral`` for memory)
in a data dir of its own, on free ports, with its own Redis and tansu. Warms it first: every
person of the ``--people`` population browses on a device, signs in (a tie), views and adds
a product (every background stage entered), and measuring waits until those are applied.
Then senders post batches of events (``/v1/batch``, the server key) on a steady open-loop
schedule of ``--rate`` events/s, ``--warmup`` seconds then ``--seconds`` measured: that
population browsing on (15 % on its device, 2 % signing in again) and, about ``--probes``
per second, probes: an ``Order Completed`` of a new customer, i.e. an event that changes a
stage. A probe's freshness is the time from its batch's 200 from the collector (and from the
send) until the API's SSE stream (``/v1/stream/stage-changes?stage=purchase``) announces its
customer in ``purchase``; the stream is written in the same Redis transaction as the
profile, so the stage look-up answers it from then on (a sample of probes is looked up at
the end to check). Both clocks are this machine's monotonic clock. Target: p99 < 1 s at
10,000 events/s.

Run: ``python bench/freshness_bench.py [--rate 10000] [--seconds 60] [--warmup 15]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import free_port  # noqa: E402

BROWSING: list[
    tuple[int, dict[str, Any]]
] = [  # (weight, event): the background, none of it a purchase
    (30, {"type": "page", "name": "Home", "properties": {"path": "/"}}),
    (15, {"type": "page", "name": "Pricing", "properties": {"path": "/pricing"}}),
    (25, {"type": "track", "event": "Product Viewed", "properties": {"product_id": "p1"}}),
    (10, {"type": "track", "event": "Product List Viewed"}),
    (8, {"type": "track", "event": "Product Added", "properties": {"product_id": "p1"}}),
    (10, {"type": "track", "event": "Video Playback Paused"}),
]
WEIGHTS = [w for w, _ in BROWSING]


@dataclass
class Probe:
    user: str
    sent: float = 0.0
    acked: float = 0.0
    seen: float = 0.0


@dataclass
class Load:
    """What the senders did."""

    accepted: int = 0
    failed_requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    behind_s: float = 0.0  # how late the last batch left against the schedule
    probes: dict[str, Probe] = field(default_factory=dict)


# --- the stack -------------------------------------------------------------------------------


def start_up(
    data_dir: Path, ephemeral: bool, log_level: str
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``touchpath up`` on free ports with its own Redis and broker; its banner once ready."""
    env = {
        **os.environ,
        "TOUCHPATH_DATA_DIR": str(data_dir),
        "TOUCHPATH_COLLECTOR_PORT": str(free_port()),
        "TOUCHPATH_API_PORT": str(free_port()),
        "TOUCHPATH_PROCESSOR_METRICS_PORT": str(free_port()),
        "TOUCHPATH_WEBHOOKS_METRICS_PORT": str(free_port()),
        "TOUCHPATH_LOG_LEVEL": log_level,
    }
    for configured in ("TOUCHPATH_KAFKA_BOOTSTRAP", "TOUCHPATH_REDIS_URL"):
        env.pop(configured, None)  # not configured: up starts its own (never :6379)
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "up", *(["--ephemeral"] if ephemeral else [])],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    banner: dict[str, str] = {}
    assert process.stdout is not None
    for line in process.stdout:
        print(f"  up: {line.rstrip()}", flush=True)
        text = line.strip()
        key, _, value = text.partition("  ")
        if text.startswith("server key "):  # one space only: the longest label
            key, value = "server key", text.removeprefix("server key ")
        banner[key.strip()] = value.strip()
        if text == "ready" or process.poll() is not None:
            break
    if "ready" not in banner:
        stop_up(process)
        raise SystemExit(f"touchpath up did not get ready: {banner}")
    threading.Thread(target=_drain, args=(process,), daemon=True).start()
    return process, banner


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for _ in process.stdout:
        pass


def stop_up(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def url_of(banner: dict[str, str], name: str) -> str:
    return banner[name].split()[0]


# --- observing -------------------------------------------------------------------------------


def watch(api: str, token: str, load: Load, stop: threading.Event) -> None:
    """Record when the SSE stream announces each probe's customer in ``purchase`` (a thread of
    its own, so a busy sender loop does not delay the timestamps)."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{api}/v1/stream/stage-changes"
    with (
        contextlib.suppress(httpx.HTTPError),  # the stack stopping ends the stream
        httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", url, params={"stage": "purchase"}, headers=headers) as answer,
    ):
        answer.raise_for_status()
        for line in answer.iter_lines():
            if stop.is_set():
                return
            if not line.startswith("data:"):
                continue
            now = time.monotonic()
            change = orjson.loads(line[5:])
            if change.get("stage") != "purchase" or change.get("change") != "entered":
                continue
            for identity in change.get("identities", ()):
                probe = load.probes.get(identity.removeprefix("user_id:"))
                if probe is not None and not probe.seen:
                    probe.seen = now


# --- sending ---------------------------------------------------------------------------------


def batch_body(rnd: random.Random, size: int, people: int, probe: str | None) -> bytes:
    """``size`` background events of random people (some anonymous, some identifying) and
    the probe's purchase, if any, last."""
    events: list[dict[str, Any]] = []
    for template in rnd.choices([e for _, e in BROWSING], WEIGHTS, k=size - (probe is not None)):
        person = rnd.randrange(people)
        event: dict[str, Any] = dict(template)
        roll = rnd.random()
        if roll < 0.15:  # not signed in yet
            event["anonymousId"] = f"anon-{person}"
        elif roll < 0.17:  # signing in: ties the device to the user
            event = {
                "type": "identify",
                "userId": f"user-{person}",
                "anonymousId": f"anon-{person}",
            }
        else:
            event["userId"] = f"user-{person}"
        events.append(event)
    if probe is not None:
        events.append(
            {
                "type": "track",
                "userId": probe,
                "event": "Order Completed",
                "properties": {"revenue": 10},
            }
        )
    return orjson.dumps({"batch": events})


def journeys(people: int) -> list[bytes]:
    """The warm-up: each person's device browsing, signing in and the rest of the browsing
    stages under the user (every background stage entered), in batches of 100 events."""
    events: list[dict[str, Any]] = []
    for person in range(people):
        user, device = f"user-{person}", f"anon-{person}"
        events += [
            {"type": "page", "anonymousId": device, "properties": {"path": "/"}},
            {"type": "identify", "userId": user, "anonymousId": device},
            {"type": "track", "userId": user, "event": "Product Viewed"},
            {"type": "track", "userId": user, "event": "Product Added"},
        ]
    return [orjson.dumps({"batch": events[i : i + 100]}) for i in range(0, len(events), 100)]


async def prewarm(collector: str, key: str, bodies: list[bytes], senders: int) -> None:
    """Send the warm-up journeys as fast as the collector takes them."""
    queue = iter(bodies)
    async with httpx.AsyncClient(base_url=collector, auth=(key, ""), timeout=60) as client:

        async def sender() -> None:
            for body in queue:
                headers = {"Content-Type": "application/json"}
                answer = await client.post("/v1/batch", content=body, headers=headers)
                answer.raise_for_status()

        await asyncio.gather(*(sender() for _ in range(senders)))


def wait_processed(banner: dict[str, str], count: int, timeout_s: float = 600) -> float:
    """Wait until the processor applied ``count`` new events; seconds it took."""
    started = time.monotonic()
    while processor_totals(banner)["events"] < count:
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"the processor did not apply the {count} warm-up events in time")
        time.sleep(0.5)
    return time.monotonic() - started


async def send(
    collector: str,
    key: str,
    args: argparse.Namespace,
    load: Load,
    measure_from: float,
) -> None:
    """Open-loop: batch ``i`` leaves at ``start + i * size / rate`` (or as soon as a sender is
    free when behind); ``--senders`` requests in flight at most."""
    run = uuid.uuid4().hex[:6]
    rnd = random.Random(1)
    interval = args.batch / args.rate
    probe_every = max(1, round(args.rate / args.batch / args.probes))
    total = int((args.warmup + args.seconds) * args.rate / args.batch)
    start = time.monotonic()
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=args.senders * 2)
    limits = httpx.Limits(max_connections=args.senders, max_keepalive_connections=args.senders)
    async with httpx.AsyncClient(
        base_url=collector, auth=(key, ""), limits=limits, timeout=30
    ) as client:

        async def sender() -> None:
            while (index := await queue.get()) is not None:
                probe = None
                if index % probe_every == 0:
                    probe = Probe(f"probe-{run}-{index}")
                user = probe.user if probe is not None else None
                body = batch_body(rnd, args.batch, args.people, user)
                sent = time.monotonic()
                try:
                    answer = await client.post(
                        "/v1/batch", content=body, headers={"Content-Type": "application/json"}
                    )
                    status = answer.status_code
                except httpx.HTTPError:
                    status = 0
                acked = time.monotonic()
                load.statuses[status] = load.statuses.get(status, 0) + 1
                if status != 200:
                    load.failed_requests += 1
                    continue
                if sent >= measure_from:
                    load.accepted += args.batch
                    if probe is not None:
                        probe.sent, probe.acked = sent, acked
                        load.probes[probe.user] = probe

        workers = [asyncio.create_task(sender()) for _ in range(args.senders)]
        for index in range(total):
            due = start + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await queue.put(index)
            load.behind_s = max(0.0, time.monotonic() - due)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)


def processor_totals(banner: dict[str, str]) -> dict[str, float]:
    """The processor's counters of new events applied and stage changes announced."""
    url = banner["processor"].split()[-1]  # "metrics at http://…/metrics"
    text = httpx.get(url, timeout=10).text
    totals = {"events": 0.0, "stage_changes": 0.0}
    for line in text.splitlines():
        for name, metric in (
            ("events", "touchpath_processor_events_processed_total"),
            ("stage_changes", "touchpath_processor_stage_changes_total"),
        ):
            if re.match(rf"{metric}[{{ ]", line):
                totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


# --- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figures(values: list[float], missing: int) -> dict[str, Any]:
    """Percentiles in ms; a probe never announced counts as infinitely late."""
    everything = [*values, *([float("inf")] * missing)]
    if not everything:
        return {}
    found: dict[str, Any] = {}
    for name, share in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        value = percentile(everything, share)
        found[name] = round(1000 * value, 1) if value != float("inf") else None
    found["max_ms"] = round(1000 * max(values), 1) if values else None
    return found


def check_lookups(api: str, token: str, probes: list[Probe], sample: int) -> int:
    """How many of a sample of announced probes the stage look-up shows in ``purchase``."""
    right = 0
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}) as client:
        for probe in random.Random(2).sample(probes, min(sample, len(probes))):
            answer = client.get(f"/v1/customers/{probe.user}/stage")
            right += answer.status_code == 200 and answer.json().get("stage") == "purchase"
    return right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="events per second")
    parser.add_argument("--seconds", type=float, default=60, help="measured, after the warm-up")
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--senders", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--people", type=int, default=10_000, help="background population")
    parser.add_argument("--probes", type=float, default=20, help="probes per second")
    parser.add_argument("--ephemeral", action="store_true", help="touchpath up --ephemeral")
    parser.add_argument(
        "--log-level", default="WARNING", help="the services' (DEBUG logs each round started)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "freshness.json"))
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="touchpath-freshness-")) / "data"
    load = Load()
    before: dict[str, float] = {}
    loads: list[tuple[float, ...]] = []
    process, banner = start_up(data_dir, args.ephemeral, args.log_level)
    stop = threading.Event()
    try:
        api, token = url_of(banner, "api"), banner["api token"]
        watcher = threading.Thread(target=watch, args=(api, token, load, stop), daemon=True)
        watcher.start()
        time.sleep(1)  # the stream is open (nothing is sent before: nothing is missed)
        collector, key = url_of(banner, "collector"), banner["server key"]
        warm = journeys(args.people)
        asyncio.run(prewarm(collector, key, warm, args.senders))
        warmed_in = wait_processed(banner, 4 * args.people)
        print(f"warm: {4 * args.people} journey events applied {warmed_in:.1f} s after sending")
        loads.append(os.getloadavg())
        started = time.monotonic()
        measure_from = started + args.warmup
        sampler = threading.Thread(
            target=_sample_load, args=(loads, stop, args.warmup + args.seconds), daemon=True
        )
        sampler.start()
        threading.Timer(args.warmup, lambda: before.update(processor_totals(banner))).start()
        asyncio.run(send(collector, key, args, load, measure_from))
        sent_for = time.monotonic() - measure_from
        after = processor_totals(banner)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(not p.seen for p in load.probes.values()):
            time.sleep(0.2)
        loads.append(os.getloadavg())
        probes = list(load.probes.values())
        seen = [p for p in probes if p.seen]
        looked_up = check_lookups(api, token, seen, 50)
    finally:
        stop.set()
        stop_up(process)
    missing = len(probes) - len(seen)
    results: dict[str, Any] = {
        "target_rate_per_s": args.rate,
        "achieved_rate_per_s": round(load.accepted / sent_for),
        "measured_s": round(sent_for, 1),
        "warmup_s": args.warmup,
        "batch": args.batch,
        "senders": args.senders,
        "people": args.people,
        "warm_up_journey_events": 4 * args.people,
        "broker": "tansu on memory (--ephemeral)" if args.ephemeral else "tansu on SeaweedFS",
        "processor_events_per_s": round((after["events"] - before["events"]) / sent_for),
        "processor_stage_changes_per_s": round(
            (after["stage_changes"] - before["stage_changes"]) / sent_for
        ),
        "requests": {str(k): v for k, v in sorted(load.statuses.items())},
        "schedule_behind_s_at_end": round(load.behind_s, 2),
        "probes": len(probes),
        "probes_never_announced": missing,
        "from_200": figures([p.seen - p.acked for p in seen], missing),
        "from_send": figures([p.seen - p.sent for p in seen], missing),
        "lookups_in_purchase": f"{looked_up}/{min(50, len(seen))}",
        "load_average_1m": [round(sample[0], 2) for sample in loads],
        "cpus": os.cpu_count(),
        "target_p99_ms": 1000,
    }
    print(json.dumps(results, indent=2))
    print(f"the stack's logs: {data_dir / 'logs'}")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def _sample_load(loads: list[tuple[float, ...]], stop: threading.Event, seconds: float) -> None:
    """The 1-minute load average every 10 s while sending."""
    end = time.monotonic() + seconds
    while not stop.wait(10) and time.monotonic() < end:
        loads.append(os.getloadavg())


if __name__ == "__main__":
    main()
