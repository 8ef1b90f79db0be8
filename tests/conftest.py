"""Session fixtures: a real tansu broker and a real redis-server on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.embedded import Child, free_port, start_redis, start_tansu


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("touchpath")


@pytest.fixture(scope="session")
def broker(run_dir: Path) -> Iterator[Child]:
    """An embedded tansu broker on memory storage, for the whole session."""
    child = start_tansu(free_port(), run_dir)
    yield child
    child.stop()


@pytest.fixture(scope="session")
def bootstrap(broker: Child) -> str:
    return f"127.0.0.1:{broker.port}"


@pytest.fixture(scope="session")
def redis_server(run_dir: Path) -> Iterator[Child]:
    """A private redis-server with AOF, for the whole session."""
    child = start_redis(free_port(), run_dir / "redis", run_dir)
    yield child
    child.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: Child) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
