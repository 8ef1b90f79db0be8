"""The per-event cost of the validity contract on both hot paths, side by side with a baseline.

Times, per event, the collector's ``normalize_event`` plus its encoding, and the processor's
``effects_of``, on a mix of Segment-shaped events (page, track with properties, identify with
traits and context), for this checkout and for ``--baseline`` (a checkout of an earlier commit,
e.g. ``git worktree add /tmp/base HEAD~5``). Each tree runs in its own subprocess, the trees
alternate for ``--rounds`` rounds, and the median and spread of each are reported with their
ratio. Writes ``bench/results/validity.json``.

    python bench/validity_bench.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = r"""
import json, sys, time
from datetime import UTC, datetime
sys.path.insert(0, ".")
from touchpath.events import IngestContext, normalize_event
from touchpath.effects import effects_of
from touchpath.records import encode_touchpoints
from touchpath.stages import load_stage_model

n = int(sys.argv[1])
ctx = IngestContext(source="website", default_channel="web", received_at=datetime.now(UTC),
                    sent_at="2026-11-30T12:00:00.000Z", ip="203.0.113.9", user_agent="Mozilla/5.0")
context = {"library": {"name": "analytics.js", "version": "5.2.0"}, "locale": "en-GB",
           "page": {"path": "/p", "url": "https://shop.example/p", "title": "P"},
           "campaign": {"name": "spring", "source": "news", "medium": "email"}}
def mix(i):
    base = {"anonymousId": f"anon-{i % 997}", "messageId": f"m-{i}",
            "timestamp": "2026-11-30T11:59:59.500Z", "context": context}
    kind = i % 3
    if kind == 0:
        return {**base, "type": "page", "name": "Product",
                "properties": {"path": "/p", "title": "P"}}
    if kind == 1:
        return {**base, "type": "track", "event": "Order Completed", "userId": f"u-{i % 500}",
                "properties": {"order_id": f"o-{i}", "revenue": 42.5, "currency": "EUR",
                               "products": [{"sku": "a", "price": 20},
                                            {"sku": "b", "price": 22.5}]}}
    return {**base, "type": "identify", "userId": f"u-{i % 500}",
            "traits": {"email": f"p{i % 500}@example.com", "plan": "pro", "name": "Ada"}}
raws = [mix(i) for i in range(n)]
started = time.perf_counter()
events = [normalize_event(r, ctx) for r in raws]
encode_touchpoints(events, "website")
collector = time.perf_counter() - started
model = load_stage_model(None)
started = time.perf_counter()
for e in events:
    effects_of(e, model)
processor = time.perf_counter() - started
print(json.dumps({"collector_us": collector / n * 1e6, "processor_us": processor / n * 1e6}))
"""


def measure(tree: Path, events: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(events)],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "validity.json"))
    args = parser.parse_args()
    runs: dict[str, dict[str, list[float]]] = {
        name: {"collector_us": [], "processor_us": []} for name in ("now", "baseline")
    }
    for _ in range(args.rounds):
        for name, tree in (("baseline", args.baseline), ("now", ROOT)):
            for key, value in measure(tree, args.events).items():
                runs[name][key].append(value)
    results: dict[str, object] = {
        "events_per_run": args.events,
        "rounds": args.rounds,
        "baseline": str(args.baseline),
    }
    for key in ("collector_us", "processor_us"):
        now, base = runs["now"][key], runs["baseline"][key]
        results[key] = {
            "now": summary(now),
            "baseline": summary(base),
            "ratio_median": round(statistics.median(now) / statistics.median(base), 3),
        }
    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
