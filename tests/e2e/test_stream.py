"""The live stage-change stream (Server-Sent Events) end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, stack_env, start_service


def test_stream_relays_stage_changes_filtered_by_stage(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    env = stack_env(bootstrap, redis_url)
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    collector, _, api = (f"http://127.0.0.1:{c.port}" for c in children)
    received: list[dict] = []
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
        assert received[0]["message_id"] == "sse-b"
        assert "user_id:sse-1" in received[0]["identities"]
        unauthorized = httpx.get(f"{api}/v1/stream/stage-changes", timeout=5)
        assert unauthorized.status_code == 401
    finally:
        time.sleep(0.1)
        for child in children:
            child.stop()
