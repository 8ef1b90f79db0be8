"""The floor of the apply step's Redis CPU: a usual group's commands with no logic around them.

A group of the processor benchmark's usual shape (two new events of one known anchor: read
the anchor hash's fields, check the two de-duplication digests, write the hash's fields, add
the digests and the two timeline entries, read and write the anchor's raw-cluster fields; the
seven commands ``store/scripts/ingest.lua`` runs for it) is sent in chunks of 112 groups, as
the processor's chunks of 200 events, three ways, alternated, on one private Redis with the
store's AOF settings:

* ``script``: one trivial Lua script per chunk that runs the seven commands per group and
  nothing else (what ingest.lua would cost with no decisions of its own);
* ``plain``: the same commands pipelined, no script (no atomicity: a floor, not an option);
* ``watch``: the same commands as an optimistic transaction (``WATCH`` every key read, reads,
  ``MULTI`` … ``EXEC``), the way to keep them atomic without a script;
* ``owned``: only the writes, in one ``MULTI`` … ``EXEC`` per chunk: what Redis would do if
  the processor that owns an anchor's partition kept its folded state and de-duplication
  window in memory and only wrote them back (the design docs/cost.md sketches; not built).

Prints Redis's CPU per event of each (``INFO cpu``), best of ``--rounds``, and writes
bench/results/script_floor.json. Compare with ``bench/ingest_cost.py``'s apply figure, the
real script on the benchmark's population.

Run: ``python bench/script_floor.py [--chunks 40] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import free_port, start_redis  # noqa: E402

GROUP_EVENTS, CHUNK_GROUPS = 2, 112
READ = ["nr", "tr", "nd", "c:events", "c:type:track", "c:channel:web", "first", "ft"]
READ += ["s:consideration", "d:20470", "l:", "last"]
ORDER = "0017686567078695c3740b690b\x1fd85086bde48048ed8da21f33c9e09076"
ENTRY = '[1,"d85086bde48048ed8da21f33c9e09076",0,0,"5c3740b690b","bench","Product Viewed"]'
SCRIPT = """
local i = 1
while i <= #ARGV do
  local a, c = ARGV[i], 'cl:' .. ARGV[i + 26]
  redis.call('HMGET', a .. ':data', unpack(ARGV, i + 28, i + 39))
  redis.call('ZMSCORE', a .. ':seen', ARGV[i + 1], ARGV[i + 2])
  redis.call('HSET', a .. ':data', unpack(ARGV, i + 3, i + 22))
  redis.call('ZADD', a .. ':seen', ARGV[i + 23], ARGV[i + 1], ARGV[i + 23], ARGV[i + 2])
  redis.call('ZADD', a .. ':journey', ARGV[i + 23], ARGV[i + 24], ARGV[i + 23], ARGV[i + 25])
  redis.call('HMGET', c, 'v', 'i:' .. a)
  redis.call('HSET', c, 'v', '7', 'i:' .. a, ARGV[i + 27])
  i = i + 40
end
return 1
"""

Group = tuple[str, bytes, bytes, list[str], str, str, str, str]


def groups(rnd: random.Random, salt: str) -> list[Group]:
    """A chunk of usual groups (new digests and timeline entries every time)."""
    found = []
    for g in range(CHUNK_GROUPS):
        at = str(1768656707869 + g)
        fields: list[str] = []
        for name in [*READ[3:], "nr"]:
            fields += [name, f"{ORDER}\x1fweb\x1f" if name in ("ft", "s:consideration") else at]
        found.append(
            (
                f"a:anonymous_id:anon-{rnd.randrange(5000)}-0-5cbce89a",
                rnd.randbytes(12),
                rnd.randbytes(12),
                fields[:20],
                at,
                f"{ENTRY}{salt}{g}a",
                f"{ENTRY}{salt}{g}b",
                f"c{rnd.randrange(2000)}",
            )
        )
    return found


def by_script(client: redis.Redis, sha: str, chunks: list[list[Group]]) -> None:
    pipe = client.pipeline(transaction=False)
    for chunk in chunks:
        args: list[Any] = []
        for anchor, d1, d2, fields, at, e1, e2, cluster in chunk:
            args += [anchor, d1, d2, *fields, at, e1, e2, cluster, ORDER, *READ]
        pipe.evalsha(sha, 0, *args)
    pipe.execute()


def reads(pipe: Any, chunk: list[Group]) -> None:
    for anchor, d1, d2, _, _, _, _, cluster in chunk:
        pipe.execute_command("HMGET", f"{anchor}:data", *READ)
        pipe.execute_command("ZMSCORE", f"{anchor}:seen", d1, d2)
        pipe.execute_command("HMGET", f"cl:{cluster}", "v", f"i:{anchor}")


def writes(pipe: Any, chunk: list[Group]) -> None:
    for anchor, d1, d2, fields, at, e1, e2, cluster in chunk:
        pipe.execute_command("HSET", f"{anchor}:data", *fields)
        pipe.execute_command("ZADD", f"{anchor}:seen", at, d1, at, d2)
        pipe.execute_command("ZADD", f"{anchor}:journey", at, e1, at, e2)
        pipe.execute_command("HSET", f"cl:{cluster}", "v", "7", f"i:{anchor}", ORDER)


def plain(client: redis.Redis, chunks: list[list[Group]]) -> None:
    for chunk in chunks:
        pipe = client.pipeline(transaction=False)
        reads(pipe, chunk)
        writes(pipe, chunk)
        pipe.execute()


def watched(client: redis.Redis, chunks: list[list[Group]]) -> None:
    for chunk in chunks:
        pipe = client.pipeline(transaction=False)
        keys = [k for g in chunk for k in (f"{g[0]}:data", f"{g[0]}:seen", f"cl:{g[7]}")]
        pipe.execute_command("WATCH", *keys)
        reads(pipe, chunk)
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("MULTI")
        writes(pipe, chunk)
        pipe.execute_command("EXEC")
        pipe.execute()


def owned(client: redis.Redis, chunks: list[list[Group]]) -> None:
    for chunk in chunks:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("MULTI")
        writes(pipe, chunk)
        pipe.execute_command("EXEC")
        pipe.execute()


def cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "script_floor.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-script-floor-"))
    child = start_redis(free_port(), work / "redis", work, aof=True)
    client = redis.Redis(port=child.port)
    rnd = random.Random(7)
    sha = client.script_load(SCRIPT)
    ways: dict[str, Callable[[list[list[Group]]], None]] = {
        "script": lambda chunks: by_script(client, sha, chunks),
        "plain": lambda chunks: plain(client, chunks),
        "watch": lambda chunks: watched(client, chunks),
        "owned": lambda chunks: owned(client, chunks),
    }
    found: dict[str, list[float]] = {name: [] for name in ways}
    events = args.chunks * CHUNK_GROUPS * GROUP_EVENTS
    try:
        for r in range(args.rounds):
            for name, way in ways.items():
                chunks = [groups(rnd, f"{name}{r}{k}") for k in range(args.chunks)]
                started, wall = cpu(client), time.perf_counter()
                way(chunks)
                wall = time.perf_counter() - wall
                found[name].append(round(1e6 * (cpu(client) - started) / events, 2))
                print(
                    f"round {r + 1} {name}: Redis CPU {found[name][-1]} µs/event, wall "
                    f"{1e6 * wall / events:.1f} µs/event",
                    flush=True,
                )
    finally:
        client.close()
        child.stop(30)
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "events_per_group": GROUP_EVENTS,
        "groups_per_call": CHUNK_GROUPS,
        "redis_cpu_us_per_event": {name: sorted(v) for name, v in found.items()},
        "best": {name: min(v) for name, v in found.items()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["best"]))


if __name__ == "__main__":
    main()
