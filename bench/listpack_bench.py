"""Hostile anchors against the store's compact encodings (infra/redis_tuning.py).

A client holding the public write key picks any traits and property sizes. With the store's
settings (hash/zset listpacks up to 128 entries of up to 512 bytes) it can keep an anchor's
data hash, or its timeline, one large listpack that every later event to that anchor scans
and rewrites. This bench builds such anchors through the real apply script and measures the
Redis time (``INFO commandstats``, per call) of applying further events to them, and of
resolving their cluster, on a Redis started with the store's settings and on one with Redis's
defaults (64-byte values: the same anchors are hash tables / skip lists there), side by side.

Run: ``python bench/listpack_bench.py [--events 200]``; writes bench/results/listpack.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import Child, free_port, spawn  # noqa: E402
from infra.redis_tuning import server_arguments  # noqa: E402
from processor.resolver import Resolver  # noqa: E402
from processor.store import JourneyStore, StoreBounds  # noqa: E402
from tests.reference import make_event  # noqa: E402
from touchpath.effects import effects_of  # noqa: E402
from touchpath.identity import IdentityPolicy  # noqa: E402
from touchpath.stages import load_stage_model  # noqa: E402

MODEL = load_stage_model()
POLICY = IdentityPolicy()
T0 = 1_767_225_600_000
VALUE_BYTES = 500  # a stored trait value (order key + JSON) at most 512: kept in a listpack
EVENT_TRAITS = 100  # traits an event carries at most (touchpath/effects.py)


def start(work: Path, name: str, tuned: bool) -> Child:
    port = free_port()
    argv = [
        *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(work)),
        *("--save", "", "--appendonly", "no"),
        *(server_arguments() if tuned else []),
    ]
    return spawn(name, argv, port, work / f"{name}.log")


class Meter:
    """Redis's own time (µs) of the scripts run by each call, from ``INFO commandstats``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def _usec(self) -> float:
        stats = self.client.info("commandstats")
        return sum(float(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha",))

    def __call__(self, work: Callable[[], Any]) -> float:
        before = self._usec()
        work()
        return self._usec() - before


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
    }


def traits(count: int, salt: str, value_bytes: int) -> dict[str, str]:
    """``count`` traits whose stored value (order key, separator, JSON) is about
    ``value_bytes`` long (the order key takes about 70 of them)."""
    return {
        f"k{i:03d}": (salt + "x" * value_bytes)[: max(1, value_bytes - 72)] for i in range(count)
    }


class Scenario:
    """One anchor on one Redis: built, then fed measured events one call at a time."""

    def __init__(self, client: redis.Redis, anchor: str, bounds: StoreBounds | None = None) -> None:
        self.client = client
        self.store = JourneyStore(client, f"lp{uuid.uuid4().hex[:8]}", bounds)
        self.resolver = Resolver(self.store, MODEL, POLICY)
        self.meter = Meter(client)
        self.anchor = anchor
        self.minute = 0

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.minute += 1
        return make_event(
            kind, uuid.uuid4().hex, T0 + self.minute * 60_000, anonymousId=self.anchor, **fields
        )

    def apply(self, event: dict[str, Any]) -> tuple[float, float]:
        """(apply µs, resolve µs) of one event."""
        applied: list[Any] = []

        def run() -> None:
            applied.extend(self.store.apply([effects_of(event, MODEL, POLICY)]).applied)

        spent = self.meter(run)
        clusters = [a.cluster for a in applied if a.needs_resolution]
        resolved = self.meter(lambda: self.resolver.resolve(clusters)) if clusters else 0.0
        return spent, resolved

    def encoding(self, part: str) -> str:
        key = self.store.keys.anchor(f"anonymous_id:{self.anchor}", part)
        found = self.client.object("encoding", key)
        size = self.client.hlen(key) if part == "data" else self.client.zcard(key)
        return f"{found.decode() if isinstance(found, bytes) else found} ({size} entries)"


def trait_scenarios(
    client: redis.Redis, events: int, count: int, max_traits: int = 200
) -> dict[str, Any]:
    """An anchor with ``count`` traits of ~500-byte stored values; then events re-sending
    every trait (new values), one trait, or none, and (``new_traits``) 100 traits it has not
    got (refused when ``max_traits`` is ``count``: every one is looked up, none written)."""
    found: dict[str, Any] = {}
    bounds = StoreBounds(max_traits=max_traits)
    s = Scenario(client, f"evil-{uuid.uuid4().hex[:6]}", bounds)
    every = traits(count, "a", VALUE_BYTES)
    names = sorted(every)
    for start in range(0, count, EVENT_TRAITS):  # an event carries at most 100 traits
        s.apply(
            s.event("identify", traits={k: every[k] for k in names[start : start + EVENT_TRAITS]})
        )
    found["data_encoding"] = s.encoding("data")
    kinds = {
        "every_trait": lambda n: s.event(
            "identify", traits=traits(min(count, EVENT_TRAITS), f"{n}-", VALUE_BYTES)
        ),
        "one_trait": lambda n: s.event("identify", traits={"k000": f"v{n}" + "y" * 400}),
        "page": lambda n: s.event("page", properties={"path": f"/p{n}"}),
    }
    if max_traits <= count:
        kinds["new_traits"] = lambda n: s.event(
            "identify", traits={f"n{n}-{i:03d}": "v" for i in range(EVENT_TRAITS)}
        )
    for name, make in kinds.items():
        applied, resolved = zip(*(s.apply(make(n)) for n in range(events)), strict=True)
        found[name] = {"apply": summary(list(applied)), "resolve": summary(list(resolved))}
    found["data_encoding_after"] = s.encoding("data")
    return found


def timeline_scenario(client: redis.Redis, entries: int, measured: int) -> dict[str, Any]:
    """An anchor whose timeline holds ``entries`` entries of ~500 bytes; then ``measured``
    more such entries (the timeline stays at most 128 entries: a listpack when tuned)."""
    s = Scenario(client, f"tl-{uuid.uuid4().hex[:6]}")

    def page(n: int) -> dict[str, Any]:
        text = f"{n:06d}" + "z" * 160
        return s.event("page", properties={"path": "/" + text, "title": text})

    for n in range(entries):
        s.apply(page(n))
    before = s.encoding("journey")
    applied, resolved = zip(*(s.apply(page(entries + n)) for n in range(measured)), strict=True)
    return {
        "journey_encoding": before,
        "journey_encoding_after": s.encoding("journey"),
        "entry_bytes": len(
            client.zrange(s.store.keys.anchor(f"anonymous_id:{s.anchor}", "journey"), 0, 0)[0]
        ),
        "apply": summary(list(applied)),
        "resolve": summary(list(resolved)),
    }


def normal_scenario(client: redis.Redis, events: int) -> dict[str, Any]:
    """A usual anchor: an identify with a few short traits, then page views."""
    s = Scenario(client, f"ok-{uuid.uuid4().hex[:6]}")
    s.apply(s.event("identify", traits={"plan": "pro", "name": "Ada", "email": "ada@example.com"}))
    applied, resolved = zip(
        *(s.apply(s.event("page", properties={"path": f"/p{n}"})) for n in range(events)),
        strict=True,
    )
    return {
        "data_encoding": s.encoding("data"),
        "apply": summary(list(applied)),
        "resolve": summary(list(resolved)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--traits", type=int, default=118, help="traits of the hostile anchor")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per Redis")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "listpack.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-listpack-"))
    servers = {"tuned": start(work, "tuned", True), "default": start(work, "default", False)}
    results: dict[str, Any] = {"events": args.events, "traits": args.traits, "runs": []}
    try:
        clients = {k: redis.Redis(port=c.port) for k, c in servers.items()}
        for name, client in clients.items():
            results[f"{name}_config"] = dict(client.config_get("*-max-listpack-*"))
        for _ in range(args.rounds):
            for name, client in clients.items():
                run = {
                    "redis": name,
                    "normal": normal_scenario(client, args.events),
                    "hostile_traits": trait_scenarios(client, args.events, args.traits),
                    "hostile_traits_at_bound": trait_scenarios(
                        client, args.events, args.traits, max_traits=args.traits
                    ),
                    "hostile_timeline": timeline_scenario(client, 100, 25),
                }
                results["runs"].append(run)
                print(json.dumps(run, indent=1))
    finally:
        for child in servers.values():
            child.stop()
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
