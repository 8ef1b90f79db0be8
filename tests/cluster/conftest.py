"""A real local Redis Cluster (three masters on free loopback ports) for the whole session;
the tests of this package see it as their ``redis_url``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.embedded import Child, free_port, spawn
from infra.redis_tuning import server_arguments
from tests.conftest import CLUSTER_URLS

MASTERS = 3


def _bus_free(port: int) -> bool:
    """Whether the cluster bus port (``port + 10000``) is free too."""
    if port + 10_000 > 65_535:
        return False
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port + 10_000))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        if port not in found and _bus_free(port):
            found.append(port)
    return found


@pytest.fixture(scope="session")
def redis_cluster(run_dir: Path) -> Iterator[list[Child]]:
    """Three ``redis-server --cluster-enabled yes`` joined by ``redis-cli --cluster create``."""
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli is needed for the cluster tests (apt-get install redis-tools)")
    nodes = []
    for port in _ports(MASTERS):
        data = run_dir / f"cluster-{port}"
        data.mkdir()
        argv = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--save",
            "",
            "--appendonly",
            "no",
            *server_arguments(),
        ]
        nodes.append(spawn("redis-cluster", argv, port, run_dir / f"cluster-{port}.log"))
    try:
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0"],
            input="yes\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        _wait_until_ok(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _wait_until_ok(nodes: list[Child]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = []
        for node in nodes:
            client = redis.Redis(port=node.port)
            states.append(client.cluster("info").get("cluster_state"))
            client.close()
        if all(state == "ok" for state in states):
            return
        time.sleep(0.1)
    raise RuntimeError("the local Redis Cluster did not become ready")


@pytest.fixture(scope="session")
def redis_url(redis_cluster: list[Child]) -> str:
    url = f"redis://127.0.0.1:{redis_cluster[0].port}/0"
    CLUSTER_URLS.add(url)
    return url
