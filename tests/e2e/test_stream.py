"""The stage-change stream (Server-Sent Events) end to end: filtering, resuming with
Last-Event-ID after a cut connection, the per-process cap, one Redis reader per process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import redis.asyncio as aioredis

from api.stream_hub import StreamHub
from tests.e2e.conftest import (
    READ_TOKEN,
    WRITE_KEY,
    services,
    stack_env,
    start_service,
    urls,
    wait_for,
)

READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def test_stream_relays_stage_changes_filtered_by_stage(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    env = stack_env(bootstrap, redis_url)
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    collector, _, api = (f"http://127.0.0.1:{c.port}" for c in children)
    received: list[dict] = []
    ids: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {READ_TOKEN}"}
        with httpx.stream(
            "GET",
            f"{api}/v1/stream/stage-changes",
            params={"stage": "purchase"},
            headers=headers,
            timeout=30,
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                connected.set()
                if line.startswith("id: "):
                    ids.append(line[4:])
                if line.startswith("data: "):
                    received.append(orjson.loads(line[6:]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        assert connected.wait(10)
        batch = {
            "batch": [
                {"type": "page", "userId": "sse-1", "messageId": "sse-a"},
                {
                    "type": "track",
                    "userId": "sse-1",
                    "event": "Order Completed",
                    "messageId": "sse-b",
                    "timestamp": "2030-01-01T00:00:00Z",
                },
            ]
        }
        assert (
            httpx.post(f"{collector}/v1/batch", json=batch, auth=(WRITE_KEY, "")).status_code == 200
        )
        listener.join(20)
        assert received and received[0]["to"] == "purchase"
        assert len(ids) == 1 and ids[0].partition("-")[0].isdigit()  # id: <stream entry id>
        assert received[0]["message_id"] == "sse-b"
        assert "user_id:sse-1" in received[0]["identities"]
        unauthorized = httpx.get(f"{api}/v1/stream/stage-changes", timeout=5)
        assert unauthorized.status_code == 401
    finally:
        time.sleep(0.1)
        for child in children:
            child.stop()


class Events:
    """Reads a stream on a thread over a plain socket (so it can be cut at any moment):
    (id, change) pairs as they come."""

    def __init__(
        self, api: str, last_event_id: str | None = None, cut_after: int | None = None
    ) -> None:
        self.cut_after = cut_after
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.lines: list[str] = []
        self.connected = threading.Event()
        self.stop = threading.Event()
        host, port = api.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self.sock.sendall(
            f"GET /v1/stream/stage-changes HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {READ_TOKEN}\r\n{resume}\r\n".encode()
        )
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.connected.wait(10)
        assert self.lines[0].startswith("HTTP/1.1 200"), self.lines[0]

    def _read(self) -> None:
        buffer, entry_id = b"", ""
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in (raw.decode().rstrip("\r") for raw in lines):
                self.lines.append(line)
                if line.startswith("id: "):
                    entry_id = line[4:]
                elif line.startswith("data: "):
                    self.got.append((entry_id, orjson.loads(line[6:])))
                    if len(self.got) == self.cut_after:
                        self.sock.close()  # mid-stream: whatever came after is dropped
                        return
                elif line.startswith(": connected"):
                    self.connected.set()

    def cut(self) -> None:
        """Hang up, whatever is in flight."""
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    def done(self) -> bool:
        return not self.thread.is_alive()


def _buy(collector: str, users: list[str]) -> None:
    batch = {"batch": [{"type": "track", "userId": u, "event": "Order Completed"} for u in users]}
    assert httpx.post(f"{collector}/v1/batch", json=batch, auth=(WRITE_KEY, "")).status_code == 200


def _users(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [i.removeprefix("user_id:") for _, c in events for i in c["identities"]]


@contextlib.contextmanager
def _stack(bootstrap: str, redis_url: str, run_dir: Path, **extra: str) -> Iterator[list[str]]:
    names = ("collector", "processor", "api")
    with services(stack_env(bootstrap, redis_url, **extra), run_dir, *names) as children:
        yield urls(children, *names)


def test_a_cut_stream_resumes_from_last_event_id_without_gaps_or_repeats(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    with _stack(bootstrap, redis_url, run_dir) as (collector, _, api):
        first = Events(api, cut_after=3)
        before = [f"res-a{i}" for i in range(6)]
        _buy(collector, before)
        wait_for(first.done)  # cut mid-stream: three of the six changes were read
        seen = list(first.got)
        assert len(seen) == 3
        after = [f"res-b{i}" for i in range(4)]
        _buy(collector, after)  # while nobody listens

        resumed = Events(api, last_event_id=seen[-1][0])
        wait_for(lambda: len(seen) + len(resumed.got) >= 10)
        everything = seen + resumed.got
        assert sorted(_users(everything)) == sorted(before + after)  # no gap, no repeat
        ids = [entry_id for entry_id, _ in everything]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        _buy(collector, ["res-c0"])  # and it goes on live
        wait_for(lambda: "res-c0" in _users(resumed.got))
        assert len(resumed.got) == 10 - len(seen) + 1
        resumed.cut()

        # an id older than anything kept: told so first, then everything kept
        oldest = Events(api, last_event_id="0-1")
        wait_for(lambda: len(oldest.got) >= 11)
        assert not any(line.startswith("event: gap") for line in oldest.lines)  # none trimmed
        oldest.cut()
        bad = httpx.get(
            f"{api}/v1/stream/stage-changes", headers={**READ, "Last-Event-ID": "x"}, timeout=5
        )
        assert bad.status_code == 400


def test_streams_are_capped_per_process_and_share_one_redis_reader(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    with _stack(bootstrap, redis_url, run_dir, TOUCHPATH_STREAM_MAX_CLIENTS="4") as urls:
        collector, _, api = urls
        admin = redis.Redis.from_url(redis_url)
        blocked_before = _blocked_readers(admin)
        streams = [Events(api) for _ in range(4)]
        full = httpx.get(f"{api}/v1/stream/stage-changes", headers=READ, timeout=5)
        assert full.status_code == 503
        assert full.headers["content-type"] == "application/problem+json"
        assert "TOUCHPATH_STREAM_MAX_CLIENTS" in full.json()["detail"]
        assert int(full.headers["retry-after"]) > 0
        # four idle streams, one blocking read for all of them
        wait_for(lambda: _blocked_readers(admin) == blocked_before + 1)

        _buy(collector, ["cap-1"])
        wait_for(lambda: all(s.got for s in streams))
        streams[0].cut()  # a slot frees as soon as a client hangs up
        again = wait_for(lambda: _status(api) == 200 or None)
        assert again
        for stream in streams[1:]:
            stream.cut()
        admin.close()


def _blocked_readers(admin: redis.Redis) -> int:
    return sum(1 for c in admin.client_list() if c.get("cmd") == "xread" and "b" in c["flags"])


def _status(api: str) -> int:
    with httpx.stream("GET", f"{api}/v1/stream/stage-changes", headers=READ, timeout=5) as r:
        return r.status_code


def test_a_resume_from_trimmed_entries_is_told_the_oldest_kept(redis_url: str) -> None:
    """The stream is capped: resuming from before what is kept reports where it resumes."""

    async def check() -> None:
        client = aioredis.Redis.from_url(redis_url)
        key = f"t-trim-{time.time_ns()}"
        hub = StreamHub(client, key, 1)
        assert await hub.trimmed_after("0-0") is None  # no stream yet
        ids = [
            (await client.xadd(key, {"change": b"{}"}, maxlen=5, approximate=False)).decode()
            for _ in range(20)
        ]
        assert await hub.trimmed_after(ids[0]) == ids[15]
        assert await hub.trimmed_after(ids[16]) is None
        assert [i async for i, _ in hub.since(ids[16])] == ids[17:]
        await client.aclose()

    asyncio.run(check())
