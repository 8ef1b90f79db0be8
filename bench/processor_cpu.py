"""The processor's own Python CPU per event, step by step, without Kafka or Redis.

The processor benchmark's population (``bench/processor_bench.py``, message and device ids
seeded so a run is repeatable) is encoded in records of 100 events over 6 partitions, as the
collector writes them, and goes through the processor's pure steps, each timed over the whole
population in one pass (caches start cold, as in a fresh processor, whose garbage-collector
settings it takes; a part at a time, what the processor keeps in Redis frozen out of the
collector's way):

* ``records``: record values → events (``touchpath.records.decode_touchpoints``);
* ``effects``: events → effects (``touchpath.effects.effects_of``);
* ``decode``: both at once, as the processor runs them (``processor.decode.decode_batch``);
* ``prepare``: each part of about 5,000 events → apply-script arguments
  (``JourneyStore.prepare_apply``);
* ``derive``: after each round of about ``--round-events`` events (the processor resolves a
  backlog every 10 s or 200,000 events), the profiles of every raw cluster the round touched,
  from the state folded so far (``touchpath.profiles.derive_profiles``, as the resolver calls
  it; the fold mirrors ingest.lua as ``tests/reference.py`` does, untimed).

A digest of every output (effects, script arguments, profiles) is printed, so two trees can be
checked to compute the same thing. ``--against DIR`` runs this harness on another tree (a
worktree of the base commit with the venv symlink) and on this one, alternated ``--rounds``
times, and prints each step's best time per event side by side with the ratio.

With ``--processor-bench N`` it also runs ``bench/processor_bench.py --instances 1`` in both
trees, alternated N times, and reports events/s, its ratio to the bare Redis baseline measured
in the same run, and the processor's and Redis's CPU per event.

Run: ``python bench/processor_cpu.py [--people 10000] [--events 100000]
[--against /work/wt-pycpu-base --rounds 3 [--processor-bench 2]]``
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the tree whose code is measured (``--against`` runs this file on another one)
ROOT = Path(os.environ.get("PROCESSOR_CPU_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

RECORD_EVENTS, PARTITIONS, PART_EVENTS = 100, 6, 5000
STEPS = ("records", "effects", "decode", "prepare", "derive")


def seeded_uuids(seed: int) -> None:
    """Make ``uuid.uuid4`` (the population's message and device ids) repeatable."""
    rnd = random.Random(seed)
    uuid.uuid4 = lambda: uuid.UUID(int=rnd.getrandbits(128), version=4)


def record_values(people: int, events: int) -> list[bytes]:
    """The population as record values in the order one poll hands them over."""
    from bench.processor_bench import population
    from touchpath.records import encode_touchpoints

    seeded_uuids(11)
    everything, _ = population(people, events)
    chunks = [everything[i : i + RECORD_EVENTS] for i in range(0, len(everything), RECORD_EVENTS)]
    ordered = [c for p in range(PARTITIONS) for c in chunks[p::PARTITIONS]]
    return [encode_touchpoints(chunk, "bench") for chunk in ordered]


class Digest:
    """A running digest of outputs (to check two trees compute the same)."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=12)

    def add(self, value: Any) -> None:
        self._hash.update(orjson.dumps(value, default=repr, option=orjson.OPT_SORT_KEYS))

    def hex(self) -> str:
        return self._hash.hexdigest()


class Folded:
    """The stored state the events leave (as ``tests/reference.py`` folds it), per raw
    cluster: what the resolver reads before deriving."""

    def __init__(self) -> None:
        from touchpath.anchors import AnchorData

        self.anchor_type = AnchorData
        self.anchors: dict[str, Any] = {}
        self.seen: set[tuple[str, str]] = set()
        self.first_seen: dict[str, str] = {}
        self.ties: dict[str, str] = {}
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def add(self, effect: Any) -> None:
        if (effect.anchor, effect.message_id) in self.seen:
            return
        self.seen.add((effect.anchor, effect.message_id))
        data = self.anchors.setdefault(effect.anchor, self.anchor_type())
        at = f"{effect.at_ms:015d}"
        if at < data.counts.get("first", "~"):
            data.counts["first"] = at
        if at > data.counts.get("last", ""):
            data.counts["last"] = at
        for name, n in effect.counts.items():
            data.counts[name] = str(int(data.counts.get(name, "0")) + n)
        if effect.revenue:
            data.counts["revenue"] = str(float(data.counts.get("revenue", "0")) + effect.revenue)
        for stage, candidate in effect.stages.items():
            if stage not in data.stages or candidate < data.stages[stage]:
                data.stages[stage] = candidate
        for member, at_ms in effect.conditional.items():
            if (member, at_ms) not in data.conditional:
                data.conditional.append((member, at_ms))
            data.counts["cond"] = "1"
        for name, value in effect.traits.items():
            if value > data.traits.get(name, ""):
                data.traits[name] = value
        if effect.active:
            day = effect.at_ms // 86_400_000
            data.days[day] = min(effect.at_ms, data.days.get(day, effect.at_ms))
        if "orders" in effect.counts:
            data.purchases.append(effect.at_ms)
        if not data.first_touch or effect.first_touch < data.first_touch:
            data.first_touch = effect.first_touch
        data.surveys.extend(effect.surveys.values())
        for key in effect.identifiers:
            if key not in self.first_seen or effect.order < self.first_seen[key]:
                self.first_seen[key] = effect.order
            self.find(key)
        if effect.tie and (effect.tie not in self.ties or effect.order < self.ties[effect.tie]):
            self.ties[effect.tie] = effect.order
        head = self.find(effect.identifiers[0])
        for key in effect.identifiers[1:]:
            root = self.find(key)
            if root != head:
                self.parent[root] = head

    def clusters(self, anchors: Sequence[str]) -> list[tuple[dict, dict, dict]]:
        """(first seen, ties, anchors) of the raw clusters holding these anchors."""
        from touchpath.identity import TIE_SEPARATOR

        roots = {self.find(anchor) for anchor in anchors}
        members: dict[str, list[str]] = defaultdict(list)
        for key in self.first_seen:
            root = self.find(key)
            if root in roots:
                members[root].append(key)
        ties: dict[str, dict[str, str]] = defaultdict(dict)
        for tie, order in self.ties.items():
            root = self.find(tie.split(TIE_SEPARATOR, 1)[0])
            if root in roots:
                ties[root][tie] = order
        return [
            (
                {k: self.first_seen[k] for k in keys},
                ties[root],
                {k: self.anchors[k] for k in keys if k in self.anchors},
            )
            for root, keys in sorted(members.items())
        ]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One pass of every step over the population, in this process, on the tree at ROOT."""
    import redis

    from infra.gc_tuning import tune_gc
    from processor.decode import decode_batch
    from processor.store import JourneyStore
    from touchpath.effects import effects_of
    from touchpath.erasure import Marks
    from touchpath.identity import IdentityPolicy
    from touchpath.profiles import derive_profiles
    from touchpath.records import decode_touchpoints
    from touchpath.stages import load_stage_model

    values = record_values(args.people, args.events)
    model, policy = load_stage_model(None), IdentityPolicy()
    seconds: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    digests = {step: Digest() for step in ("effects", "prepare", "derive")}
    tune_gc()  # as the processor does once started

    started = time.process_time()
    events_of = [decode_touchpoints(value) for value in values]
    seconds["records"] = time.process_time() - started
    started = time.process_time()
    for record_events in events_of:
        for event in record_events:
            effects_of(event, model, policy)
    seconds["effects"] = time.process_time() - started
    del events_of

    store = JourneyStore(redis.Redis(port=1), "pc")  # never connects: only prepare_apply runs
    store._marks = Marks(b"processor-cpu-bench-erasure-key!")
    folded = Folded()
    events = parts = derived = 0
    part: list[Any] = []
    touched: list[str] = []
    for number, value in enumerate(values, 1):
        started = time.process_time()
        part += decode_batch([value], model, policy).effects
        seconds["decode"] += time.process_time() - started
        if len(part) < PART_EVENTS and number < len(values):
            continue
        started = time.process_time()
        prepared = store.prepare_apply(part)
        seconds["prepare"] += time.process_time() - started
        digests["effects"].add([[getattr(e, f) for f in e.__slots__] for e in part])
        digests["prepare"].add([prepared.order, prepared.calls])
        for effect in part:
            folded.add(effect)
        touched += [effect.anchor for effect in part]
        events, parts, part = events + len(part), parts + 1, []
        gc.freeze()  # the processor keeps the stored state in Redis, not on its heap
        if len(touched) < args.round_events and number < len(values):
            continue
        clusters, touched = folded.clusters(touched), []
        started = time.process_time()
        profiles = [
            derive_profiles(first, ties, anchors, model, policy)
            for first, ties, anchors in clusters
        ]
        seconds["derive"] += time.process_time() - started
        derived += len(clusters)
        digests["derive"].add(profiles)
        del profiles
    return {
        "root": str(ROOT),
        "events": events,
        "parts": parts,
        "round_events": args.round_events,
        "clusters_derived": derived,
        "us_per_event": {step: round(1e6 * s / events, 2) for step, s in seconds.items()},
        "pipeline_us_per_event": round(
            1e6 * (seconds["decode"] + seconds["prepare"] + seconds["derive"]) / events, 2
        ),
        "digests": {step: digest.hex() for step, digest in digests.items()},
    }


def summary(result: dict[str, Any]) -> str:
    steps = ", ".join(f"{s} {us:.2f}" for s, us in result["us_per_event"].items())
    return (
        f"{result['events']:,} events, {result['clusters_derived']:,} cluster derivations; "
        f"µs per event: {steps}; decode+prepare+derive {result['pipeline_us_per_event']:.2f}"
    )


def _step_us(result: dict[str, Any], step: str) -> float:
    if step == "pipeline":
        return float(result["pipeline_us_per_event"])
    return float(result["us_per_event"][step])


def compare(args: argparse.Namespace, passthrough: list[str]) -> dict[str, Any]:
    """Run the harness on the other tree and this one, alternated, in subprocesses."""
    trees = {"base": Path(args.against).resolve(), "new": ROOT}
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_ in range(args.rounds):
        for label, tree in trees.items():
            python = tree / ".venv" / "bin" / "python"
            done = subprocess.run(
                [
                    str(python if python.exists() else sys.executable),
                    __file__,
                    "--json",
                    *passthrough,
                ],
                env={**os.environ, "PROCESSOR_CPU_ROOT": str(tree)},
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[label].append(result)
            print(f"round {round_ + 1} {label}: {summary(result)}", flush=True)
    same = {
        step: len({r["digests"][step] for found in runs.values() for r in found}) == 1
        for step in runs["new"][0]["digests"]
    }
    out: dict[str, Any] = {"against": str(trees["base"]), "runs": runs, "same_outputs": same}
    print(f"same outputs in both trees: {same}")
    print(f"{'step':10} {'base µs':>9} {'new µs':>9} {'ratio':>7}  (best of {args.rounds}; spread)")
    for step in (*STEPS, "pipeline"):
        base = [_step_us(r, step) for r in runs["base"]]
        new = [_step_us(r, step) for r in runs["new"]]
        ratio = min(new) / min(base) if min(base) else float("nan")
        out.setdefault("us_per_event", {})[step] = {
            "base": min(base),
            "new": min(new),
            "ratio": round(ratio, 3),
            "base_spread": [min(base), max(base)],
            "new_spread": [min(new), max(new)],
        }
        print(
            f"{step:10} {min(base):9.2f} {min(new):9.2f} {ratio:7.3f}  "
            f"base {min(base):.2f}-{max(base):.2f}, new {min(new):.2f}-{max(new):.2f}"
        )
    return out


def processor_bench(args: argparse.Namespace) -> dict[str, Any]:
    """``bench/processor_bench.py --instances 1`` in the other tree and this one, alternated
    ``--processor-bench`` times: events/s, its ratio to the bare Redis baseline of the same
    run, and the processor's and Redis's CPU per event."""
    trees = {"base": Path(args.against).resolve(), "new": ROOT}
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_ in range(args.processor_bench):
        for label, tree in trees.items():
            out = Path(tempfile.mkdtemp(prefix="processor-cpu-")) / "processor.json"
            python = tree / ".venv" / "bin" / "python"
            subprocess.run(
                [
                    str(python if python.exists() else sys.executable),
                    str(tree / "bench" / "processor_bench.py"),
                    f"--people={args.bench_people}",
                    f"--events={args.bench_events}",
                    "--instances=1",
                    f"--out={out}",
                ],
                cwd=tree,
                check=True,
                capture_output=True,
            )
            found = json.loads(out.read_text())
            one = found["processors_1"]
            run = {
                "events_per_s": one["events_per_s"],
                "redis_baseline_events_per_s": found["redis_baseline_events_per_s"],
                "ratio_to_baseline": round(
                    one["events_per_s"] / found["redis_baseline_events_per_s"], 3
                ),
                "processor_cpu_us_per_event": one["processor_cpu_us_per_event"],
                "redis_cpu_us_per_event": one["redis_cpu_us_per_event"],
                "stitched_wrong": one["stitched_wrong"],
            }
            runs[label].append(run)
            print(f"processor_bench round {round_ + 1} {label}: {run}", flush=True)
    out_all: dict[str, Any] = {"people": args.bench_people, "events": args.bench_events}
    out_all["runs"] = runs
    for key in (
        "events_per_s",
        "ratio_to_baseline",
        "processor_cpu_us_per_event",
        "redis_cpu_us_per_event",
    ):
        base = [r[key] for r in runs["base"]]
        new = [r[key] for r in runs["new"]]
        mean_base, mean_new = sum(base) / len(base), sum(new) / len(new)
        out_all[key] = {
            "base": base,
            "new": new,
            "new_over_base": round(mean_new / mean_base, 3) if mean_base else None,
        }
        print(
            f"processor_bench {key}: base {base} new {new} (means' ratio "
            f"{out_all[key]['new_over_base']})"
        )
    return out_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--round-events", type=int, default=50_000, help="events per round")
    parser.add_argument("--against", help="another tree to compare with (run alternately)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--processor-bench",
        type=int,
        default=0,
        help="with --against: also run bench/processor_bench.py --instances 1 in both trees, "
        "alternated this many times",
    )
    parser.add_argument("--bench-people", type=int, default=10_000)
    parser.add_argument("--bench-events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print only the result as JSON")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "processor_cpu.json"))
    args = parser.parse_args()
    if args.against:
        passthrough = [f"--{name}={getattr(args, name)}" for name in ("people", "events")]
        passthrough.append(f"--round-events={args.round_events}")
        result = compare(args, passthrough)
        if args.processor_bench:
            result["processor_bench"] = processor_bench(args)
    else:
        result = measure(args)
        if args.json:
            print(json.dumps(result))
            return
        print(summary(result))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
