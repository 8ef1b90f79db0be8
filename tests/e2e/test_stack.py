"""`touchpath up` end to end: the durable embedded stack starts, ingests, stops and keeps data."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import redis

from infra.embedded import free_port
from store.codecs import decode_profile
from store.keys import Keys
from tests.e2e.conftest import wait_for


def stack_env(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a stack of our own: its data dir, its own Redis, these ports."""
    env = {
        **os.environ,
        "TOUCHPATH_DATA_DIR": str(data_dir),
        "TOUCHPATH_COLLECTOR_PORT": str(ports["collector"]),
        "TOUCHPATH_API_PORT": str(ports["api"]),
        "TOUCHPATH_PROCESSOR_METRICS_PORT": str(ports["processor"]),
        "TOUCHPATH_WEBHOOKS_METRICS_PORT": str(ports["webhooks"]),
        "TOUCHPATH_CONSUMER_SESSION_TIMEOUT_MS": "3000",
    }
    env.pop("TOUCHPATH_KAFKA_BOOTSTRAP", None)
    env.pop("TOUCHPATH_REDIS_URL", None)  # not configured: up starts its own
    return env


@contextmanager
def stack_up(
    data_dir: Path, ports: dict[str, int], *flags: str, **extra: str
) -> Iterator[dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "up", *flags],
        env={**stack_env(data_dir, ports), **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    banner: dict[str, str] = {"pid": str(process.pid)}
    assert process.stdout is not None
    for line in process.stdout:
        key, _, value = line.strip().partition("  ")
        banner[key.strip()] = value.strip()
        if line.strip() == "ready" or process.poll() is not None:
            break
    try:
        assert "ready" in banner, banner
        yield banner
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[0]
        banner["output after ready"] = rest
        assert process.returncode == 0, rest + logs_of(data_dir)
        assert "stopped" in rest


def logs_of(data_dir: Path) -> str:
    """The stack's service logs, for a failure message."""
    logs = sorted((data_dir / "logs").glob("*.log"))
    return "".join(f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs)


def children_of_data_dir(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(data_dir) in line]


def assert_private(data_dir: Path) -> None:
    """The data dir and everything in it are the owner's only (0700 dirs, 0600 files), and the
    S3 keys are the data dir's own. SeaweedFS alone forces 0644 on its volume-info files
    (``*.vif``: version and replica settings, no content), kept private by the 0700 dirs."""
    found = {data_dir / "credentials.json", data_dir / "seaweedfs" / "s3.json"}
    assert (data_dir.stat().st_mode & 0o777) == 0o700
    for path in data_dir.rglob("*"):
        found.discard(path)
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        wanted = 0o700 if path.is_dir() else 0o644 if path.suffix == ".vif" else 0o600
        assert mode == wanted, f"{path}: {oct(mode)}"
    assert not found, f"missing: {found}"
    assert list((data_dir / "redis").rglob("*.aof")), "no AOF file: the check proved nothing"
    keys = orjson.loads((data_dir / "seaweedfs" / "s3.json").read_bytes())
    secret = keys["identities"][0]["credentials"][0]["secretKey"]
    assert len(secret) >= 32 and secret != "touchpath-local-secret"


def test_stack_ingests_stops_cleanly_and_keeps_data_across_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("collector", "api", "processor", "webhooks")}
    with stack_up(data_dir, ports) as banner:
        steps = [re.sub(r" … \d+\.\d s$", "", line) for line in banner if " … " in line]
        assert steps == [  # one line per step, with the time it took
            "starting the broker's storage (seaweedfs)",
            "starting the broker (tansu)",
            "starting Redis",
            "creating the topics",
            *(f"starting the {name}" for name in ("collector", "api", "processor", "webhooks")),
            "waiting until every service is ready",
        ]
        key = banner["write key"]
        response = httpx.post(
            f"http://127.0.0.1:{ports['collector']}/v1/track",
            auth=(key, ""),
            json={"userId": "ada", "event": "Order Completed", "messageId": "up-1"},
        )
        assert response.status_code == 200, response.text
        url, note = banner["redis"].split(maxsplit=1)
        assert note == f"(started by touchpath up, AOF in {data_dir.resolve() / 'redis'})"
        client = redis.Redis.from_url(url, decode_responses=True)
        own = client.config_get("dir") | client.config_get("appendonly")
        assert own == {"dir": str(data_dir.resolve() / "redis"), "appendonly": "yes"}
        wait_for(lambda: client.get("tp:idc:user_id:ada"), 40)
        memory = client.config_get("maxmemory*")  # TOUCHPATH_REDIS_MAXMEMORY's default
        assert (memory["maxmemory"], memory["maxmemory-policy"]) == (str(1 << 30), "noeviction")
        for service in ("collector", "api"):
            health = httpx.get(f"http://127.0.0.1:{ports[service]}/healthz")
            assert health.status_code == 200
    assert children_of_data_dir(data_dir) == []
    assert_private(data_dir)

    with stack_up(data_dir, ports) as banner:
        assert banner["write key"] == key, "credentials are kept in the data dir"
        client = redis.Redis.from_url(banner["redis"].split()[0], decode_responses=True)
        assert client.get("tp:idc:user_id:ada"), "customers survive a restart (AOF)"
        response = httpx.post(
            f"http://127.0.0.1:{ports['collector']}/v1/track",
            auth=(key, ""),
            json={"userId": "ada", "event": "Review Submitted", "messageId": "up-2"},
        )
        assert response.status_code == 200

        def post_purchase() -> bool:
            cid = client.get(Keys("tp").customer_of("user_id:ada"))
            blob = client.get(Keys("tp").customer(cid)) if cid else None
            return blob is not None and "post-purchase" in decode_profile(blob)["history"]

        wait_for(post_purchase, 40)
        data = client.hgetall("tp:a:user_id:ada:data")
        assert data["c:events"] == "2", "the first event was not processed twice"


def test_stack_refuses_a_taken_port_with_a_clear_reason(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("collector", "api", "processor", "webhooks")}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["api"]))
        squatter.listen()
        done = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "up", "--ephemeral"],
            env=stack_env(data_dir, ports),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"api cannot listen on port {ports['api']}: it is already in use" in done.stderr
    assert "TOUCHPATH_API_PORT" in done.stderr
    assert "ready" not in done.stdout
    assert children_of_data_dir(data_dir) == []


def test_stack_uses_a_configured_redis_and_nothing_else(tmp_path: Path, redis_url: str) -> None:
    """TOUCHPATH_REDIS_URL set: that Redis, no redis-server of up's own (issue 18)."""
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("collector", "api", "processor", "webhooks")}
    prefix = f"up{os.getpid()}"
    with stack_up(
        data_dir, ports, TOUCHPATH_REDIS_URL=redis_url, TOUCHPATH_REDIS_PREFIX=prefix
    ) as banner:
        assert banner["redis"] == f"{redis_url}  (configured by TOUCHPATH_REDIS_URL)"
        response = httpx.post(
            f"http://127.0.0.1:{ports['collector']}/v1/track",
            auth=(banner["write key"], ""),
            json={"userId": "bob", "event": "Signed Up"},
        )
        assert response.status_code == 200, response.text
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        wait_for(lambda: client.get(Keys(prefix).customer_of("user_id:bob")), 40)
    assert not (data_dir / "redis").exists()


def test_stack_refuses_a_configured_redis_that_does_not_answer(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("collector", "api", "processor", "webhooks")}
    silent = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "up", "--ephemeral"],
        env={**stack_env(data_dir, ports), "TOUCHPATH_REDIS_URL": silent},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TOUCHPATH_REDIS_URL=redis://user:***@127.0.0.1:" in done.stderr
    assert "does not answer" in done.stderr and "hunter2" not in done.stderr
    assert children_of_data_dir(data_dir) == []
