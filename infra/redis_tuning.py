"""The Redis encodings the journey store is sized for, and how a configured Redis differs.

Redis keeps a small hash or sorted set as one compact listpack while every value is at most
``*-max-listpack-value`` bytes (64 by default) and it has at most ``*-max-listpack-entries``
entries; past either it converts the key to a hash table or skip list of separately allocated
entries. The store's anchor hashes (stage candidates, first touch, traits), timelines and gated
candidates hold values of 70 to 400 bytes, so with the defaults nearly every one of them is
converted, which costs about a third more memory per customer (``bench/processor_bench.py``
memory by key family: 20.7 KB against 15.0 KB per customer). Values up to 512 bytes and at
most 128 entries keep them compact; 128 entries (below the default 512 for hashes) bound the
linear scans of a listpack at 64 KB, so a trait flood cannot make every field read slow.

``touchpath up`` and the compose files start Redis with these settings; a Redis configured
by ``TOUCHPATH_REDIS_URL`` is never reconfigured: ``touchpath check`` and the processor's
start-up log say what differs.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

STORE_ENCODING: dict[str, int] = {
    "hash-max-listpack-entries": 128,
    "hash-max-listpack-value": 512,
    "zset-max-listpack-entries": 128,
    "zset-max-listpack-value": 512,
}
_VALUE_LIMITS = ("hash-max-listpack-value", "zset-max-listpack-value")


def server_arguments() -> list[str]:
    """``redis-server`` command-line arguments applying :data:`STORE_ENCODING`."""
    return [part for name, value in STORE_ENCODING.items() for part in (f"--{name}", str(value))]


def encoding_shortfalls(config: Mapping[str, str]) -> list[str]:
    """What a Redis's ``CONFIG GET`` answer sets below the store's value limits, one line each
    (more entries than 128 are fine: they only lengthen a listpack's scans)."""
    lines = []
    for name in _VALUE_LIMITS:
        wanted, value = STORE_ENCODING[name], config.get(name)
        if value is not None and value.isdigit() and int(value) < wanted:
            lines.append(
                f"{name} is {value}: hashes and sorted sets with longer values take about a "
                f"third more memory; set it to {wanted} (infra/redis_tuning.py)"
            )
    return lines


def shortfalls_of(client: redis.Redis) -> list[str]:
    """:func:`encoding_shortfalls` of a running Redis (none when it refuses ``CONFIG GET``,
    as managed services may)."""
    try:
        config = client.config_get("*-max-listpack-*")
    except redis.ResponseError:
        return []
    return encoding_shortfalls({_text(k): _text(v) for k, v in config.items()})


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
