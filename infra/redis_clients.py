"""Redis clients from settings: a plain Redis, or the node of a Redis Cluster that holds
touchpath's keys (``TOUCHPATH_REDIS_CLUSTER``).

On a cluster every touchpath key carries the prefix's hash tag (``{tp}:…``,
:class:`touchpath.settings.Settings`), so all of them live in one slot, on one master. The
client is a plain client of that master, found through the cluster at start-up: scripts,
pipelines and transactions run as on a single Redis. If the slot moves (a failover or a
reshard), commands answer ``MOVED``: :func:`slot_moved` tells, and the services stop so that
they are started again and find the slot's new master. This makes touchpath run on a managed
or self-run cluster; it does not spread one installation over several masters
(docs/redis-cluster.md says what would).
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.cluster import RedisCluster
from redis.exceptions import MovedError


class RedisConfig(Protocol):
    """What the clients need of the settings (``Settings`` or a process's view of them)."""

    @property
    def redis_url(self) -> str: ...
    @property
    def redis_prefix(self) -> str: ...
    @property
    def redis_cluster(self) -> bool: ...


def sync_client(settings: RedisConfig, url: str | None = None, **options: Any) -> redis.Redis:
    """A blocking client for ``url`` (default ``TOUCHPATH_REDIS_URL``)."""
    return redis.Redis.from_url(_url(settings, url or settings.redis_url), **options)


def async_client(settings: RedisConfig, url: str | None = None, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url`` (default ``TOUCHPATH_REDIS_URL``)."""
    return aioredis.Redis.from_url(_url(settings, url or settings.redis_url), **options)


def _url(settings: RedisConfig, url: str) -> str:
    """``url``, or on a cluster the URL of the master holding the prefix's slot (same
    credentials and TLS)."""
    if not settings.redis_cluster:
        return url
    cluster = RedisCluster.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        node = cluster.get_node_from_key(settings.redis_prefix)
    finally:
        cluster.close()
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{node.host}:{node.port}" if credentials else f"{node.host}:{node.port}"
    return urlunsplit((parts.scheme, netloc, "/0", parts.query, parts.fragment))


def slot_moved(error: BaseException) -> bool:
    """Whether a Redis error says touchpath's slot moved to another master."""
    return isinstance(error, MovedError)


def route(prefix: str) -> list[str]:
    """The routing key of a script that names its keys from the prefix: the prefix itself
    (in the slot of every key under it on a cluster; the scripts ignore it)."""
    return [prefix]


def scan_page(client: redis.Redis, cursor: int, match: str, count: int) -> tuple[int, list[bytes]]:
    """One SCAN step over keys matching ``match``."""
    next_cursor, found = client.scan(cursor, match=match, count=count)
    return int(next_cursor), [k if isinstance(k, bytes) else str(k).encode() for k in found]
