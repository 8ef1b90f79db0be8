"""Session fixtures: a real tansu broker and a real redis-server on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.embedded import Child, free_port, start_redis, start_tansu

#: URLs of Redis Clusters the tests started (tests/cluster/): clients and stacks for them
#: are cluster clients and cluster stacks.
CLUSTER_URLS: set[str] = set()


def redis_for(url: str, **options: object) -> redis.Redis:
    """A client for ``url``: a cluster client for a cluster the tests started."""
    if url in CLUSTER_URLS:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)  # type: ignore[return-value, arg-type]
    return redis.Redis.from_url(url, **options)  # type: ignore[arg-type]


def redis_for_keys(url: str, tag: str, **options: object) -> redis.Redis:
    """A plain client of the node holding the keys of hash tag ``tag`` (``{…}``): the node
    itself on a cluster the tests started, else the Redis at ``url``."""
    if url in CLUSTER_URLS:
        from redis.cluster import RedisCluster

        cluster = RedisCluster.from_url(url)
        node = cluster.get_node_from_key(tag)
        cluster.close()
        return redis.Redis(host=node.host, port=node.port, **options)  # type: ignore[arg-type]
    return redis.Redis.from_url(url, **options)  # type: ignore[arg-type]


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
    client = redis_for(redis_url, decode_responses=True)
    yield client
    client.close()
