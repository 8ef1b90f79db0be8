"""What the apply step costs Redis, in commands: the figure that bounds an installation
(Redis does not scale out; processors do). Counted with Redis's own command statistics on a
private server, so nothing else running can blur the count."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from infra.embedded import free_port, start_redis
from processor.offsets import Incarnation
from processor.store import JourneyStore
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
POLICY = IdentityPolicy()
T0 = 1_780_000_000_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    server = start_redis(free_port(), tmp_path / "redis", tmp_path)
    client = redis.Redis(port=server.port)
    yield client
    client.close()
    server.stop()


def _event(n: int, **fields: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    from touchpath.events import format_time

    def at(ms: int) -> str:
        return format_time(datetime.fromtimestamp(ms / 1000, UTC))

    body = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{n}",
        "timestamp": at(T0 + n * 1000),
        "receivedAt": at(T0 + n * 1000),
        "context": {"channel": "web"},
        "userId": "u",
    }
    body.update(fields)
    return body


def _commands_inside_scripts(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last reset, without the script calls themselves."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(entry["calls"])
        for name, entry in stats.items()
        if name.split("|")[0] not in _NOT_COUNTED
    }


_NOT_COUNTED = ("cmdstat_evalsha", "cmdstat_script", "cmdstat_config", "cmdstat_info")


def test_a_new_event_of_a_known_anchor_costs_at_most_six_redis_commands(
    client: redis.Redis,
) -> None:
    """The usual event: new, on an identifier already known, nothing to link. Each command:
    the erasures check, the anchor hash's read and write, the de-duplication add, the
    timeline entry, the anchor's cluster (6). Before the newest receipt and the active days
    moved into the anchor hash, the de-duplication set was also read (newest) and trimmed,
    and the active days' set written, per group (9)."""
    store = JourneyStore(client, f"c{uuid.uuid4().hex[:8]}")
    store.apply([effects_of(_event(1), MODEL, POLICY)])
    client.config_resetstat()
    outcome = store.apply([effects_of(_event(2), MODEL, POLICY)])
    assert [a.new for a in outcome.applied] == [True]
    calls = _commands_inside_scripts(client)
    assert sum(calls.values()) <= 6, calls


def _script_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_run_is_sent_with_its_document_only_when_the_script_asks_for_it(
    client: redis.Redis,
) -> None:
    """Runs of new events go without their JSON document (one call); a run holding a replay
    is answered '?', stores nothing, and is sent again with its document (a second call,
    which bumps the incarnation counter again): the outcome is the per-event way's."""
    store = JourneyStore(client, f"c{uuid.uuid4().hex[:8]}")
    incarnation = Incarnation(client, store.keys.prefix, "test")
    incarnation.start()
    apply = store.prepare_apply([effects_of(_event(n), MODEL, POLICY) for n in (1, 2)])
    anchor, head, document = apply.calls[0][9:12]  # after the 9 bounds: one run
    assert anchor == "user_id:u" and head and document == b""
    client.config_resetstat()
    first = store.applied_of(apply, store.run_apply(apply, incarnation))
    assert [a.new for a in first.applied] == [True, True] and _script_calls(client) == 1
    again = store.prepare_apply([effects_of(_event(n), MODEL, POLICY) for n in (2, 3)])
    client.config_resetstat()
    second = store.applied_of(again, store.run_apply(again, incarnation))
    assert [a.new for a in second.applied] == [False, True]
    assert _script_calls(client) == 2 and incarnation.applied == 3
    data = store.keys.anchor("user_id:u", "data")
    assert client.hget(data, "c:events") == b"3"
