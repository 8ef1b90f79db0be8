"""Redis cost of applying events: the processor benchmark's population through
``JourneyStore.apply`` (and the resolver) on a private Redis, without Kafka.

The events are encoded in records of 100 over 6 partitions as ``bench/processor_bench.py``
sends them, decoded in parts of about 5,000 events (``processor/decode.py``), each part applied
in chunks of 200 (one ingest.lua call each) and its touched clusters resolved. Message ids are
seeded, so a run is repeatable. Reports Redis's own CPU per event (``INFO cpu``), each
script's time per event (``SLOWLOG`` at threshold 0, by script) and the inner commands'
(``INFO commandstats``); with ``--callgrind``, Redis runs under valgrind and the instructions
it executes per event are counted (repeatable on a noisy machine; use a smaller population).

``--against DIR`` runs this harness on another tree (e.g. a worktree of the base commit, with
the venv symlink) and on this one, alternated ``--rounds`` times, and prints the ratios.

Run: ``python bench/ingest_cost.py [--people 10000] [--events 100000] [--callgrind]
[--against /work/wt-base --rounds 2]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

#: the tree whose code is measured (``--against`` runs this file on another one)
ROOT = Path(os.environ.get("INGEST_COST_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from infra.embedded import Child, free_port, spawn, start_redis  # noqa: E402
from touchpath.records import encode_touchpoints  # noqa: E402

RECORD_EVENTS, PARTITIONS, PART_EVENTS = 100, 6, 5000
#: the store's scripts measured (older trees also read clusters with a script)
SCRIPTS = ("ingest", "read_clusters", "write_clusters")


def seeded_uuids(seed: int) -> None:
    """Make ``uuid.uuid4`` (the population's message and device ids) repeatable."""
    rnd = random.Random(seed)
    uuid.uuid4 = lambda: uuid.UUID(int=rnd.getrandbits(128), version=4)  # type: ignore[assignment]


def records(people: int, events: int) -> list[bytes]:
    """The benchmark population as record values, in the order one poll hands them over:
    partition by partition (records go round-robin to the partitions)."""
    from bench.processor_bench import population

    seeded_uuids(11)
    everything, _ = population(people, events)
    chunks = [everything[i : i + RECORD_EVENTS] for i in range(0, len(everything), RECORD_EVENTS)]
    ordered = [c for p in range(PARTITIONS) for c in chunks[p::PARTITIONS]]
    return [encode_touchpoints(chunk, "bench") for chunk in ordered]


def parts(values: list[bytes]) -> list[list[Any]]:
    """Record values decoded into parts of about :data:`PART_EVENTS` events' effects."""
    from processor.decode import decode_batch
    from touchpath.identity import IdentityPolicy
    from touchpath.stages import load_stage_model

    model, policy = load_stage_model(None), IdentityPolicy()
    found: list[list[Any]] = [[]]
    for value in values:
        found[-1] += decode_batch([value], model, policy).effects
        if len(found[-1]) >= PART_EVENTS:
            found.append([])
    return [part for part in found if part]


def script_names(store: Any) -> dict[str, str]:
    """SHA1 → script name for the store's scripts in the measured tree (as loaded, with the
    function chunks put in front of them)."""
    return {getattr(store, f"_{name}").sha: name for name in SCRIPTS if hasattr(store, f"_{name}")}


class Meter:
    """Redis's CPU and per-script time (SLOWLOG at 0) accumulated over measured phases."""

    def __init__(self, client: redis.Redis, store: Any) -> None:
        self.client = client
        self.names = script_names(store)
        self.cpu: Counter[str] = Counter()
        self.script_us: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 100_000)

    def _cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def start(self) -> float:
        self.client.slowlog_reset()
        return self._cpu()

    def stop(self, phase: str, started: float) -> None:
        self.cpu[phase] += self._cpu() - started
        for entry in self.client.slowlog_get(-1):
            command = (
                [_text(a) for a in entry["command"].split()]
                if isinstance(entry["command"], (str, bytes))
                else []
            )
            if command and command[0].upper() == "EVALSHA":
                name = self.names.get(command[1], command[1][:8])
                self.script_us[name] += int(entry["duration"])
                self.calls[name] += 1


def _text(value: str | bytes) -> str:
    """Text of a reply (an argument may be binary, e.g. a de-duplication digest)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def commandstats(client: redis.Redis) -> dict[str, dict[str, float]]:
    return {
        name.removeprefix("cmdstat_"): {"calls": int(v["calls"]), "usec": float(v["usec"])}
        for name, v in client.info("commandstats").items()
    }


def callgrind(pid: int, action: str) -> None:
    """Zero (``-z``) or dump (``-d``) a callgrind-run process's counters."""
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True)


def dumped_instructions(directory: Path, before: set[Path]) -> tuple[int, Path]:
    """Total instructions of the newest callgrind dump (waits for it to appear)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fresh = sorted(set(directory.glob("callgrind.out.*")) - before)
        for path in fresh:
            text = path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1]), path
        time.sleep(0.5)
    raise RuntimeError("no callgrind dump appeared")


def start_valgrind_redis(work: Path) -> Child:
    port = free_port()
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={work}/callgrind.out.%p",
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(work),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--protected-mode",
        "yes",
    ]
    (work / "redis").mkdir(exist_ok=True)
    child = spawn("redis", argv, port, work / "redis.log")
    return child


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run in this process, on the tree at :data:`ROOT`."""
    from processor.service import build_resolver
    from touchpath.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="touchpath-ingest-cost-"))
    values = records(args.people, args.events)
    decoded = parts(values)
    events = sum(len(part) for part in decoded)
    child = (
        start_valgrind_redis(work)
        if args.callgrind
        else start_redis(free_port(), work / "redis", work, aof=True)
    )
    client = redis.Redis(port=child.port, decode_responses=True)
    result: dict[str, Any] = {"root": str(ROOT), "events": events, "parts": len(decoded)}
    try:
        settings = load_settings(redis_prefix="ic")
        resolver = build_resolver(settings, client)
        store = resolver.store
        if args.callgrind:
            result.update(callgrind_run(args, child, store, resolver, decoded, work, events))
            return result
        meter = Meter(client, store)
        client.config_resetstat()
        for part in decoded:
            started = meter.start()
            outcome = store.apply(part)
            meter.stop("apply", started)
            if args.resolve:
                started = meter.start()
                resolver.resolve({a.cluster for a in outcome.applied if a.needs_resolution})
                meter.stop("resolve", started)
        scripts_applied = dict(meter.script_us)
        if args.replay:
            for part in decoded[:2]:
                started = meter.start()
                outcome = store.apply(part)
                meter.stop("replay", started)
                assert not any(a.new for a in outcome.applied)
        stats = commandstats(client)
        replayed = sum(len(part) for part in decoded[:2]) if args.replay else 0
        counted = {"apply": events, "resolve": events, "replay": replayed}
        result["redis_cpu_us_per_event"] = {
            phase: round(1e6 * s / counted[phase], 2) for phase, s in sorted(meter.cpu.items())
        }
        result["redis_cpu_us_per_event"]["apply+resolve"] = round(
            1e6 * (meter.cpu["apply"] + meter.cpu["resolve"]) / events, 2
        )
        result["script_us_per_event"] = {
            name: round(us / events, 2) for name, us in Counter(scripts_applied).most_common()
        }
        result["script_calls"] = dict(meter.calls)
        inner = {
            name: {
                "calls_per_event": round(v["calls"] / events, 3),
                "us_per_event": round(v["usec"] / events, 2),
            }
            for name, v in stats.items()
            if name
            not in (
                "evalsha",
                "slowlog|get",
                "slowlog|reset",
                "info",
                "config|set",
                "config|resetstat",
                "script|load",
            )
        }
        result["inner_commands"] = dict(
            sorted(inner.items(), key=lambda item: -item[1]["us_per_event"])
        )
        result["state_digest"] = state_digest(client, "ic")
        return result
    finally:
        client.close()
        child.stop(60)
        shutil.rmtree(work, ignore_errors=True)


def callgrind_run(
    args: argparse.Namespace,
    child: Child,
    store: Any,
    resolver: Any,
    decoded: list[list[Any]],
    work: Path,
    events: int,
) -> dict[str, Any]:
    """Instructions Redis executes per event applying every part, then resolving once."""
    pid = child.process.pid
    store.client.ping()
    for name in SCRIPTS:
        if hasattr(store, f"_{name}"):
            store.client.script_load(
                getattr(store, f"_{name}").script
            )  # loading is not what is measured
    callgrind(pid, "-z")
    clusters: set[str] = set()
    for part in decoded:
        outcome = store.apply(part)
        clusters |= {a.cluster for a in outcome.applied if a.needs_resolution}
    before = set(work.glob("callgrind.out.*"))
    callgrind(pid, "-d")
    applied, path = dumped_instructions(work, before)
    found: dict[str, Any] = {"apply_instructions_per_event": round(applied / events)}
    if args.keep_dump:
        kept = Path(args.keep_dump)
        shutil.copy(path, kept)
        found["apply_dump"] = str(kept)
    if args.resolve:
        callgrind(pid, "-z")
        resolver.resolve(clusters)
        before = set(work.glob("callgrind.out.*"))
        callgrind(pid, "-d")
        resolved, path = dumped_instructions(work, before)
        found["resolve_instructions_per_event"] = round(resolved / events)
        if args.keep_dump:
            shutil.copy(path, f"{args.keep_dump}.resolve")
            found["resolve_dump"] = f"{args.keep_dump}.resolve"
    found["state_digest"] = state_digest(store.client, "ic")
    return found


def state_digest(client: redis.Redis, prefix: str) -> str:
    """A digest of every key under the prefix (type and content), to check two builds agree
    (with ``INGEST_COST_DUMP`` set, the content is also written to that file, a key a line).
    A raw cluster's one hash (layout 4) counts as the six keys older layouts kept it in."""
    digest = hashlib.sha256()
    dump = os.environ.get("INGEST_COST_DUMP")
    entries = []
    for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        if key == f"{prefix}:erasure-key":  # random per store
            continue
        kind = client.type(key)
        if kind == "string":
            value: Any = client.get(key)
        elif kind == "hash":
            value = sorted(client.hgetall(key).items())
        elif kind == "zset":  # raw: de-duplication members are binary digests
            raw = client.execute_command("ZRANGE", key, 0, -1, "WITHSCORES", NEVER_DECODE=True)
            flat = not raw or not isinstance(raw[0], list)  # RESP2: member, score, member, …
            pairs = zip(raw[::2], raw[1::2], strict=True) if flat else raw
            value = [(m.decode(errors="backslashreplace"), float(s)) for m, s in pairs]
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "stream":
            value = [fields for _, fields in client.xrange(key)]
        else:
            value = client.dump(key)
        if kind == "hash" and key.startswith(f"{prefix}:cl:") and key.count(":") == 2:
            entries += _old_cluster_keys(key, dict(value))
        else:
            entries.append((key, kind, value))
    lines = []
    for key, kind, value in sorted(entries, key=lambda entry: entry[0]):
        line = json.dumps([key, kind, value], default=str)
        digest.update(line.encode())
        lines.append(line)
    if dump:
        Path(dump).write_text("\n".join(lines) + "\n")
    return digest.hexdigest()


def _old_cluster_keys(key: str, fields: dict[str, str]) -> list[tuple[str, str, Any]]:
    """A raw cluster's hash as the keys of layouts before 4 (``ids``, ``ties``, ``snap``,
    ``over``, ``blocked`` when not empty, and ``ver``); its counts are left out."""
    found: list[tuple[str, str, Any]] = [(f"{key}:ver", "string", fields.get("v"))]
    for kind, part in (
        ("i:", "ids"),
        ("t:", "ties"),
        ("c:", "snap"),
        ("o:", "over"),
        ("b:", "blocked"),
    ):
        value = sorted((f[2:], v) for f, v in fields.items() if f.startswith(kind))
        if value:
            found.append((f"{key}:{part}", "hash", value))
    return found


def summary(result: dict[str, Any]) -> str:
    if "apply_instructions_per_event" in result:
        text = f"apply {result['apply_instructions_per_event']:,} instructions/event"
        if "resolve_instructions_per_event" in result:
            text += f", resolve {result['resolve_instructions_per_event']:,}"
        return text
    cpu = result["redis_cpu_us_per_event"]
    scripts = ", ".join(f"{k} {v:.1f}" for k, v in result["script_us_per_event"].items())
    return (
        f"Redis CPU µs/event: {', '.join(f'{k} {v:.1f}' for k, v in cpu.items())}; "
        f"script µs/event: {scripts}"
    )


def compare(args: argparse.Namespace, passthrough: list[str]) -> dict[str, Any]:
    """Run the harness on the base tree and this one, alternated, in subprocesses."""
    trees = {"base": Path(args.against).resolve(), "new": ROOT}
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_ in range(args.rounds):
        for label, tree in trees.items():
            env = {**os.environ, "INGEST_COST_ROOT": str(tree)}
            python = tree / ".venv" / "bin" / "python"
            done = subprocess.run(
                [
                    str(python if python.exists() else sys.executable),
                    __file__,
                    "--json",
                    *passthrough,
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[label].append(result)
            print(f"round {round_ + 1} {label}: {summary(result)}", flush=True)
    digests = {label: {r["state_digest"] for r in found} for label, found in runs.items()}
    out: dict[str, Any] = {"runs": runs, "same_state": digests["base"] == digests["new"]}
    print(f"stored state identical: {out['same_state']}")
    for metric in ("apply_instructions_per_event", "resolve_instructions_per_event"):
        if metric in runs["new"][0]:
            base = min(r[metric] for r in runs["base"])
            new = min(r[metric] for r in runs["new"])
            out[metric] = {"base": base, "new": new, "ratio": round(new / base, 3)}
            print(f"{metric}: base {base:,} new {new:,} ratio {new / base:.3f}")
    if "redis_cpu_us_per_event" in runs["new"][0]:
        for section in ("redis_cpu_us_per_event", "script_us_per_event"):
            for key in runs["new"][0][section]:
                base = min(r[section].get(key, 0.0) for r in runs["base"])
                new = min(r[section].get(key, 0.0) for r in runs["new"])
                ratio = new / base if base else float("nan")
                out.setdefault(section, {})[key] = {
                    "base": base,
                    "new": new,
                    "ratio": round(ratio, 3),
                }
                print(f"{section} {key}: base {base:.1f} new {new:.1f} ratio {ratio:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--no-resolve", dest="resolve", action="store_false")
    parser.add_argument("--replay", action="store_true", help="also apply two parts again")
    parser.add_argument("--callgrind", action="store_true", help="count Redis's instructions")
    parser.add_argument(
        "--keep-dump", help="copy the apply phase's callgrind dump here (resolve's: .resolve)"
    )
    parser.add_argument("--against", help="another tree to compare with (run alternately)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only the result as JSON")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ingest_cost.json"))
    args = parser.parse_args()
    if args.against:
        passthrough = [a for a in sys.argv[1:] if a not in ("--json",)]
        skip = {"--against", "--rounds", "--out"}
        kept, drop_next = [], False
        for item in passthrough:
            if drop_next:
                drop_next = False
                continue
            if item in skip:
                drop_next = True
                continue
            if item.split("=", 1)[0] in skip:
                continue
            kept.append(item)
        result = compare(args, kept)
    else:
        result = measure(args)
        if args.json:
            print(json.dumps(result))
            return
        print(summary(result))
        for name, entry in list(result.get("inner_commands", {}).items())[:12]:
            print(
                f"    {name:24} {entry['calls_per_event']:>7.3f} calls "
                f"{entry['us_per_event']:>7.2f} µs per event"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
