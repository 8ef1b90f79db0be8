"""Minimal stand-in of touchpath.stages (lead's scaffold; replaced by the full engine)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class RulesError(ValueError):
    """The rules file is invalid."""


@dataclass(frozen=True)
class Rule:
    stage: str
    when: Mapping[str, Any]
    after: str | None


@dataclass(frozen=True)
class StageModel:
    stages: tuple[str, ...]
    rules: tuple[Rule, ...]
    ignore: tuple[Mapping[str, Any], ...]

    def index(self, stage: str) -> int:
        return self.stages.index(stage)

    def rules_for(self, event_type: object, name: object) -> tuple[Rule, ...]:
        """Only the rules that can match an event of this type and name (an index)."""
        key = (event_type, name.strip().lower() if isinstance(name, str) else None)
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            object.__setattr__(self, "_index", index)
        found = index.get(key)
        if found is None:
            found = tuple(r for r in self.rules if _could_match(r.when, *key))
            if len(index) < 10_000:  # event names come from clients: keep the index bounded
                index[key] = found
        return found


def _could_match(when: Mapping[str, Any], event_type: object, name: str | None) -> bool:
    if "type" in when and not _cond(event_type, when["type"]):
        return False
    return "event" not in when or _cond(name, when["event"])


@dataclass(frozen=True, order=True)
class StageCandidate:
    at_ms: int
    message_id: str
    channel: str
    after: str | None = None


@dataclass(frozen=True)
class StageEntry:
    stage: str
    at_ms: int
    message_id: str
    channel: str


def parse_stage_model(text: str, origin: str = "<rules>") -> StageModel:
    doc = yaml.safe_load(text)
    stages = tuple(doc["stages"])
    rules = tuple(Rule(r["stage"], r.get("when", {}), r.get("after")) for r in doc["rules"])
    return StageModel(stages, rules, tuple(doc.get("ignore", [])))


def load_stage_model(path: Path | None = None) -> StageModel:
    if path is None:
        text = resources.files("touchpath").joinpath("rules/default.yaml").read_text()
        return parse_stage_model(text)
    return parse_stage_model(Path(path).read_text(), str(path))


def _get(event: Mapping[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _cond(value: Any, cond: Any) -> bool:
    if isinstance(cond, list):
        return any(_cond(value, c) for c in cond)
    if isinstance(cond, dict):
        if "prefix" in cond:
            return isinstance(value, str) and value.lower().startswith(cond["prefix"].lower())
        if "exists" in cond:
            return (value is not None) == cond["exists"]
        return False
    if isinstance(cond, str) and isinstance(value, str):
        return value.strip().lower() == cond.strip().lower()
    return value == cond


def _matches(event: Mapping[str, Any], when: Mapping[str, Any]) -> bool:
    for key, cond in when.items():
        if key in ("properties", "traits", "context"):
            if not all(_cond(_get(event, f"{key}.{k}"), c) for k, c in cond.items()):
                return False
        elif key == "channel":
            if not _cond(_get(event, "context.channel"), cond):
                return False
        elif not _cond(event.get(key), cond):
            return False
    return True


def matching_stages(event: Mapping[str, Any], model: StageModel) -> dict[str, str | None]:
    if any(_matches(event, ign) for ign in model.ignore):
        return {}
    found: dict[str, str | None] = {}
    for rule in model.rules_for(event.get("type"), event.get("event")):
        if _matches(event, rule.when) and (rule.after is None or rule.stage not in found):
            found[rule.stage] = rule.after
    return found


def stage_history(
    candidates: Iterable[tuple[str, StageCandidate]], model: StageModel
) -> dict[str, StageEntry]:
    by_stage: dict[str, list[StageCandidate]] = {}
    for stage, cand in candidates:
        by_stage.setdefault(stage, []).append(cand)
    history: dict[str, StageEntry] = {}
    for stage in model.stages:
        ok = []
        for c in by_stage.get(stage, []):
            if c.after is None or (c.after in history and history[c.after].at_ms <= c.at_ms):
                ok.append(c)
        if ok:
            best = min(ok, key=lambda c: (c.at_ms, c.message_id))
            history[stage] = StageEntry(stage, best.at_ms, best.message_id, best.channel)
    return history


def current_stage(history: Mapping[str, StageEntry], model: StageModel) -> str | None:
    return max(history, key=model.index) if history else None
