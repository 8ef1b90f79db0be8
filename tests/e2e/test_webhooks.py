"""Stage-change webhooks end to end: subscribe through the API, send events through the
collector, receive signed deliveries at a real local HTTP receiver; retries, dead letters,
replay, a dispatcher killed mid-delivery, internal destinations refused, and a receiver that
drips its answer never delaying another's deliveries.

The receivers listen on 127.0.0.1, which deliveries refuse by default: the stacks that
deliver to them allow it with ``TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS`` (:data:`LOOPBACK`)."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    READ_TOKEN,
    WRITE_KEY,
    services,
    stack_env,
    start_service,
    urls,
    wait_for,
)
from touchpath.signatures import verify_standard

LOOPBACK = "127.0.0.0/8,::1"
SERVICES = ("collector", "processor", "api", "webhooks")


class Receiver:
    """Records every delivery per path; ``fail`` says how many times a path answers 500
    first (-1: always), ``delay`` how long it takes to answer, ``drip`` for how many seconds
    a path answers 200 with a body of one byte a second (``hung_up`` then holds after how
    many seconds the dispatcher closed each such connection)."""

    def __init__(self) -> None:
        self.got: dict[str, list[tuple[dict[str, str], bytes]]] = defaultdict(list)
        self.fail: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.drip: dict[str, int] = {}
        self.hung_up: list[float] = []
        self.arrivals: dict[str, int] = defaultdict(int)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.arrivals[self.path] += 1
                if self.path in receiver.drip:
                    self._drip(receiver.drip[self.path])
                    return
                time.sleep(receiver.delay.get(self.path, 0))
                receiver.got[self.path].append(
                    ({k.lower(): v for k, v in self.headers.items()}, body)
                )
                left = receiver.fail.get(self.path, 0)
                if left:
                    receiver.fail[self.path] = left - 1 if left > 0 else left
                self.send_response(500 if left else 204)
                self.end_headers()

            def _drip(self, seconds: int) -> None:
                started = time.monotonic()
                self.send_response(200)
                self.send_header("content-length", str(seconds))
                self.end_headers()
                try:
                    for _ in range(seconds):
                        self.wfile.write(b".")
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:  # the dispatcher hung up
                    receiver.hung_up.append(time.monotonic() - started)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arrived(self, path: str) -> int:
        return self.arrivals.get(path, 0)

    def changes(self, path: str) -> list[dict[str, Any]]:
        return [orjson.loads(body)["data"] for _, body in self.got[path]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _in_flight(receiver: Receiver, path: str) -> bool:
    """A request arrived that is not recorded yet (the receiver is still answering it)."""
    return receiver.arrived(path) > len(receiver.got[path])


def subscribe(api: str, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{api}/v1/subscriptions", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return answer.json()


def send(collector: str, *events: dict[str, Any]) -> None:
    answer = httpx.post(f"{collector}/v1/batch", json={"batch": list(events)}, auth=(WRITE_KEY, ""))
    assert answer.status_code == 200, answer.text


def test_webhooks_signed_filtered_retried_dead_lettered_and_replayed(
    bootstrap: str, redis_url: str, run_dir: Path, receiver: Receiver
) -> None:
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_WEBHOOK_BACKOFF_BASE_S="0.05",
        TOUCHPATH_WEBHOOK_BACKOFF_CAP_S="0.2",
        TOUCHPATH_WEBHOOK_MAX_ATTEMPTS="3",
        TOUCHPATH_WEBHOOK_TIMEOUT_S="1",
        TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK,
    )
    with services(env, run_dir, *SERVICES) as children:
        collector, api = urls(children, "collector", "api")
        # access and validation
        read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
        body = {"url": f"{receiver.url}/ok"}
        refused = httpx.post(f"{api}/v1/subscriptions", json=body, headers=read_only)
        assert refused.status_code == 403
        for bad in (
            {"url": "ftp://x"},
            {"url": receiver.url, "stages": ["nope"]},
            {"url": receiver.url, "transitions": ["decision"]},
            {"url": receiver.url, "secret": "mysecret"},
            {"url": receiver.url.replace("//", "//user:pass@")},
        ):
            answer = httpx.post(f"{api}/v1/subscriptions", json=bad, headers=ADMIN)
            assert answer.status_code == 400 and answer.json()["detail"], bad

        buyers = subscribe(api, url=f"{receiver.url}/buyers", stages=["purchase"])
        leads = subscribe(api, url=f"{receiver.url}/leads", transitions=["*->decision"])
        everything = subscribe(api, url=f"{receiver.url}/down")
        receiver.fail["/leads"] = 2
        receiver.fail["/down"] = -1
        listed = httpx.get(f"{api}/v1/subscriptions", headers=ADMIN).json()["subscriptions"]
        assert {s["id"] for s in listed} == {buyers["id"], leads["id"], everything["id"]}
        assert all("secret" not in s for s in listed)

        send(collector, {"type": "track", "userId": "wh-1", "event": "Order Completed"})
        send(collector, {"type": "track", "userId": "wh-2", "event": "Product Added"})

        wait_for(lambda: receiver.got["/buyers"])
        ((headers, raw),) = receiver.got["/buyers"]
        assert verify_standard(buyers["secret"], headers, raw, time.time()) == headers["webhook-id"]
        assert Webhook(buyers["secret"]).verify(raw, headers)["type"] == "stage.changed"
        change = orjson.loads(raw)
        assert change["type"] == "stage.changed" and change["data"]["to"] == "purchase"
        assert "user_id:wh-1" in change["data"]["identities"]
        assert headers["webhook-id"] == f"msg_{change['data']['change_id']}"

        wait_for(lambda: len(receiver.got["/leads"]) >= 3)  # two failures, then delivered
        assert len({h["webhook-id"] for h, _ in receiver.got["/leads"]}) == 1
        assert receiver.changes("/leads")[0]["to"] == "decision"

        def dead() -> list[dict[str, Any]] | None:
            found = httpx.get(f"{api}/v1/subscriptions/dead-letters", headers=ADMIN).json()
            mine = [d for d in found["dead_letters"] if d["subscription_id"] == everything["id"]]
            return mine or None

        given_up = wait_for(lambda: (d := dead()) and len(d) == 2 and d)
        assert all(d["attempts"] == 3 and d["last_error"] == "http_5xx" for d in given_up)
        assert len(receiver.got["/down"]) == 6  # two changes, three attempts each

        receiver.fail["/down"] = 0  # the receiver is fixed: replay
        replay = f"{api}/v1/subscriptions/dead-letters/replay"
        replayed = httpx.post(replay, json={}, headers=ADMIN).json()["replayed"]
        assert sorted(replayed) == sorted(d["delivery_id"] for d in given_up)
        wait_for(lambda: len(receiver.got["/down"]) == 8)
        assert dead() is None

        # one batch takes a new customer through purchase to post-purchase: the purchase
        # subscriber hears of the purchase, not only of what followed it
        send(
            collector,
            {
                "type": "track",
                "userId": "wh-4",
                "event": "Order Completed",
                "timestamp": "2026-03-01T10:00:00Z",
            },
            {
                "type": "track",
                "userId": "wh-4",
                "event": "NPS Survey Answered",
                "properties": {"score": 9},
                "timestamp": "2026-03-01T10:05:00Z",
            },
        )

        def bought() -> list[dict[str, Any]] | None:
            mine = [c for c in receiver.changes("/buyers") if "user_id:wh-4" in c["identities"]]
            return mine or None

        (purchase,) = wait_for(bought)
        assert (purchase["stage"], purchase["change"], purchase["from"]) == (
            "purchase",
            "entered",
            None,
        )
        assert purchase["current"] == "post-purchase"

        # a dispatcher killed mid-delivery loses nothing: the lease runs out, another tries
        slow = subscribe(api, url=f"{receiver.url}/slow", stages=["post-purchase"])
        receiver.delay["/slow"], receiver.fail["/slow"] = 3.0, 1  # the attempt hangs, fails
        send(
            collector,
            {"type": "track", "userId": "wh-3", "event": "Order Completed"},
            {"type": "track", "userId": "wh-3", "event": "Review Submitted"},
        )
        wait_for(lambda: _in_flight(receiver, "/slow"))
        children["webhooks"].process.send_signal(signal.SIGKILL)  # … while the dispatcher dies
        children["webhooks"].process.wait()
        receiver.delay["/slow"] = 0
        children["webhooks"] = start_service("webhooks", env, run_dir)

        def redelivered() -> list[dict[str, Any]] | None:
            mine = [c for c in receiver.changes("/slow") if "user_id:wh-3" in c["identities"]]
            return mine if len(mine) >= 2 else None  # the failed attempt, then the re-delivery

        again = wait_for(redelivered, 30)
        assert again[-1]["to"] == "post-purchase"
        assert len({h["webhook-id"] for h, _ in receiver.got["/slow"]}) == 1  # same id: de-dup

        deleted = httpx.delete(f"{api}/v1/subscriptions/{slow['id']}", headers=ADMIN)
        assert deleted.status_code == 200
        gone = httpx.get(f"{api}/v1/subscriptions/{slow['id']}", headers=ADMIN)
        assert gone.status_code == 404


def test_internal_destinations_are_refused_by_default(
    bootstrap: str, redis_url: str, run_dir: Path, receiver: Receiver
) -> None:
    """No allow-list: IP literals of internal networks are a 400 at subscription time, and a
    name resolving to loopback (``localhost``) is refused at delivery, before connecting."""
    env = stack_env(bootstrap, redis_url, TOUCHPATH_WEBHOOK_TIMEOUT_S="1")
    port = receiver.server.server_address[1]
    with services(env, run_dir, *SERVICES) as children:
        collector, api = urls(children, "collector", "api")
        for url in (
            f"{receiver.url}/literal",
            f"http://[::1]:{port}/",
            f"http://0.0.0.0:{port}/",
            f"http://2130706433:{port}/",
            f"http://0x7f.1:{port}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
        ):
            answer = httpx.post(f"{api}/v1/subscriptions", json={"url": url}, headers=ADMIN)
            assert answer.status_code == 400, url
            assert "TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS" in answer.json()["detail"]

        by_name = subscribe(api, url=f"http://localhost:{port}/by-name", stages=["purchase"])
        send(collector, {"type": "track", "userId": "wh-ssrf", "event": "Order Completed"})

        def dead() -> list[dict[str, Any]] | None:
            found = httpx.get(f"{api}/v1/subscriptions/dead-letters", headers=ADMIN).json()
            return [d for d in found["dead_letters"] if d["subscription_id"] == by_name["id"]]

        (letter,) = wait_for(dead)
        assert letter["last_error"] == "blocked_destination" and letter["attempts"] == 1
        assert receiver.arrivals == {}  # nothing ever reached the receiver


def test_a_receiver_dripping_its_answer_never_delays_another_subscription(
    bootstrap: str, redis_url: str, run_dir: Path, receiver: Receiver
) -> None:
    """A receiver that would take 40 s to answer (one byte a second) next to a healthy one:
    every healthy delivery lands within a few seconds, the dripping one is cut at the
    attempt's deadline (3 s) however steadily the bytes come."""
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_WEBHOOK_TIMEOUT_S="3",
        TOUCHPATH_WEBHOOK_CONCURRENCY="4",
        TOUCHPATH_WEBHOOK_CONCURRENCY_PER_SUBSCRIPTION="2",
        TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK,
    )
    receiver.drip["/drip"] = 40
    with services(env, run_dir, *SERVICES) as children:
        collector, api = urls(children, "collector", "api")
        subscribe(api, url=f"{receiver.url}/drip", stages=["purchase"])
        subscribe(api, url=f"{receiver.url}/healthy", stages=["purchase"])
        users = [f"wh-iso-{i}" for i in range(8)]
        send(
            collector, *({"type": "track", "userId": u, "event": "Order Completed"} for u in users)
        )
        sent = time.monotonic()

        def healthy_done() -> bool:
            got = {i for c in receiver.changes("/healthy") for i in c["identities"]}
            return all(f"user_id:{u}" in got for u in users)

        wait_for(healthy_done, 30)
        took = time.monotonic() - sent
        assert took < 10, f"healthy deliveries took {took:.1f} s next to a dripping receiver"
        assert receiver.arrivals["/drip"] >= 1
        wait_for(lambda: receiver.hung_up, 15)  # the dripping attempt was cut at its deadline
        assert all(held < 3 + 2 for held in receiver.hung_up)
