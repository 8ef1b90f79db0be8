"""A real local Redis Cluster (three masters on free loopback ports) for the whole session;
the tests of this package see it as their ``redis_url``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.embedded import Child, EmbeddedError, start_redis_cluster
from tests.conftest import CLUSTER_URLS

MASTERS = 3


@pytest.fixture(scope="session")
def redis_cluster(run_dir: Path) -> Iterator[list[Child]]:
    """Three ``redis-server --cluster-enabled yes`` joined by ``redis-cli --cluster create``."""
    try:
        nodes = start_redis_cluster(run_dir, MASTERS)
    except EmbeddedError as exc:
        pytest.fail(f"{exc} (apt-get install redis-tools)")
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture(scope="session")
def redis_url(redis_cluster: list[Child]) -> str:
    url = f"redis://127.0.0.1:{redis_cluster[0].port}/0"
    CLUSTER_URLS.add(url)
    return url
