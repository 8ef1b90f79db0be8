"""Stage rules: a declarative YAML model, pure matching, and order-independent stage history.

Stages are ordered; each rule says which events qualify a customer for a stage (``when``
matches type, event name, page/screen name, channel, properties, traits, context), optionally
only at or after an earlier stage was entered (``after``). ``ignore`` lists events that never
move a stage (machine opens, link scanners).

``traits`` conditions are about the *customer*: the traits in force at the event's time (set
by an earlier identify, an event's ``context.traits`` or the event's own ``traits``). The
event alone cannot tell them, so an event that matches the rest of such a rule yields a
*gated* candidate carrying the conditions (:class:`Gate`), which the profile derivation
checks against the customer's trait history (:func:`gate_passes`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import orjson
import yaml

from touchpath.events import MAX_REVENUE, REVENUE_PROPERTIES
from touchpath.shapes import is_mapping


class RulesError(ValueError):
    """The rules file is invalid."""


@dataclass(frozen=True)
class Rule:
    stage: str
    when: Mapping[str, Any]  # everything but the trait conditions, compiled
    after: str | None
    number: int = 0  # its place in the rules file (``rules[number]``)
    gate: str = ""  # the trait conditions as canonical JSON ("" when it has none)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)  # ``when`` as written


@dataclass(frozen=True)
class StageModel:
    stages: tuple[str, ...]
    rules: tuple[Rule, ...]
    ignore: tuple[Mapping[str, Any], ...]
    #: The stage whose events are purchases (their revenue is lifetime value), and the event
    #: properties read for the revenue, the first numeric one counting (rules' ``revenue:``).
    purchase_stage: str = ""
    revenue_properties: tuple[str, ...] = REVENUE_PROPERTIES
    #: The rules version: a digest of what decides stage candidates (stages, rules, ignore),
    #: so a changed rules file is noticed at start-up (:mod:`processor.reevaluation`); layout,
    #: comments, ``revenue`` and ``triggers`` do not change it. "" for models built in code.
    version: str = ""

    @property
    def trait_names(self) -> frozenset[str]:
        """The traits some rule's conditions read (their history is kept for the gates)."""
        names = self.__dict__.get("_trait_names")
        if names is None:
            names = frozenset(name for r in self.rules if r.gate for name in orjson.loads(r.gate))
            object.__setattr__(self, "_trait_names", names)
        return names

    @property
    def read_paths(self) -> frozenset[str]:
        """The dotted event fields the rules and ignore rules read (``type``, ``event``,
        ``context.channel``, ``properties.path`` …)."""
        paths = self.__dict__.get("_read_paths")
        if paths is None:
            whens = (*self.ignore, *(r.when for r in self.rules))
            paths = frozenset(p for when in whens for p in _paths(when)) | {
                f"properties.{name}" for name in self.revenue_properties
            }
            object.__setattr__(self, "_read_paths", paths)
        return paths

    def index(self, stage: str) -> int:
        return self.stages.index(stage)

    def rule(self, number: object, stage: str) -> Rule | None:
        """The rule ``rules[number]`` if it grants ``stage`` (None once the rules changed)."""
        if isinstance(number, int) and 0 <= number < len(self.rules):
            found = self.rules[number]
            return found if found.stage == stage else None
        return None

    def position(self, stage: str) -> int:
        """The stage's index, -1 for a stage these rules do not have."""
        positions = self.__dict__.get("_positions")
        if positions is None:
            positions = {name: i for i, name in enumerate(self.stages)}
            object.__setattr__(self, "_positions", positions)
        return int(positions.get(stage, -1))

    def matcher_for(self, event_type: object, name: object) -> Matcher:
        """The rules that can match an event of this type and name, with a result cache."""
        key = (event_type, name.strip().lower() if isinstance(name, str) else None)
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            object.__setattr__(self, "_index", index)
        found = index.get(key)
        if found is None:
            rules = tuple(r for r in self.rules if _could_match(r.when, *key))
            paths = {p for when in (*self.ignore, *(r.when for r in rules)) for p in _paths(when)}
            found = Matcher(rules, tuple(tuple(p.split(".")) for p in sorted(paths)), {})
            if len(index) < 10_000:  # event names come from clients: keep the index bounded
                index[key] = found
        return found


@dataclass(frozen=True, slots=True)
class Matcher:
    """Rules for one (type, event name), the fields they read, and results by those fields.

    Matching is a pure function of the fields the rules (and ignore rules) read, so events
    that agree on those fields share one result.
    """

    rules: tuple[Rule, ...]
    paths: tuple[tuple[str, ...], ...]
    results: dict[tuple[Any, ...], tuple[Match, bool]]  # the match, and whether it is activity


@dataclass(frozen=True, slots=True)
class Gate:
    """A candidate that counts only if the customer's traits at the event's time match."""

    stage: str
    after: str | None
    conditions: str  # canonical JSON of the rule's ``traits`` conditions
    rule: int


@dataclass(frozen=True, slots=True)
class Match:
    """What an event qualifies for: stages (each with the stage it must follow, or None),
    the rule that granted each, and candidates gated on traits."""

    stages: Mapping[str, str | None]
    rules: Mapping[str, int] = field(default_factory=dict)
    gates: tuple[Gate, ...] = ()


NO_MATCH = Match({})


MATCH_CACHE_SIZE = 4096


def _paths(when: Mapping[str, Any]) -> list[str]:
    """The dotted event fields a ``when`` reads."""
    found = []
    for key, cond in when.items():
        if key in ("properties", "traits", "context"):
            found += [f"{key}.{name}" for name in cond]
        else:
            found.append("context.channel" if key == "channel" else key)
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
    cause: str = ""  # JSON [type, event or page name, rule number] ("" in older stores)


@dataclass(frozen=True)
class StageEntry:
    stage: str
    at_ms: int
    message_id: str
    channel: str
    cause: str = ""


_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TOP_KEYS = {"stages", "rules", "ignore", "revenue", "triggers"}  # triggers: touchpath/triggers.py
_RULE_KEYS = {"stage", "when", "after"}
_WHEN_KEYS = {"type", "event", "name", "channel", "properties", "traits", "context"}
_OPERATORS = {"prefix", "exists"}


def parse_stage_model(text: str, origin: str = "<rules>") -> StageModel:
    """Parse and validate a rules document; RulesError names the problem and where."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise RulesError(f"{origin}: expected a mapping with 'stages' and 'rules'")
    _no_unknown(doc, _TOP_KEYS, origin)
    stages = _stages(doc.get("stages"), origin)
    rules = tuple(_rule(r, i, stages, origin) for i, r in enumerate(_list(doc, "rules", origin)))
    if any(r.gate and not r.when for r in rules):
        raise RulesError(f"{origin}: a rule needs a condition on the event besides 'traits'")
    ignore = tuple(
        _when(w, f"{origin}: ignore[{i}]")
        for i, w in enumerate(_list(doc, "ignore", origin, required=False))
    )
    purchase, properties = _revenue(doc.get("revenue"), stages, origin)
    version = rules_version(doc)
    return StageModel(stages, rules, ignore, purchase, properties, version)


def rules_version(doc: Mapping[str, Any]) -> str:
    """The version of a rules document: 12 hex digits of the SHA-256 of its ``stages``,
    ``rules`` and ``ignore`` as canonical JSON."""
    decisive = {key: doc.get(key) for key in ("stages", "rules", "ignore")}
    canonical = orjson.dumps(decisive, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()[:12]


def _revenue(raw: object, stages: tuple[str, ...], origin: str) -> tuple[str, tuple[str, ...]]:
    """``revenue: {stage, properties}``; by default ``purchase`` (else the last stage) and
    ``revenue``, ``total``, ``value``."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise RulesError(f"{origin}: 'revenue' must be a mapping with 'stage' and 'properties'")
    _no_unknown(raw, {"stage", "properties"}, f"{origin}: revenue")
    stage = raw.get("stage", "purchase" if "purchase" in stages else stages[-1])
    if stage not in stages:
        raise RulesError(f"{origin}: revenue.stage {stage!r} is not one of {list(stages)}")
    properties = raw.get("properties", list(REVENUE_PROPERTIES))
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise RulesError(f"{origin}: revenue.properties must be a list of property names")
    return stage, tuple(properties)


def _money(value: Any) -> bool:
    """A finite number (not a boolean) within ±MAX_REVENUE."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return math.isfinite(value) and abs(value) <= MAX_REVENUE


def purchase_revenue(event: Mapping[str, Any], match: Match, model: StageModel) -> float | None:
    """None unless the rules count the event as a purchase (it matches a rule of the purchase
    stage); then the first finite numeric revenue property within ±MAX_REVENUE, else 0."""
    stage = model.purchase_stage
    if stage not in match.stages and not any(g.stage == stage for g in match.gates):
        return None
    properties = event.get("properties")
    if not is_mapping(properties):
        return 0.0
    for key in model.revenue_properties:
        value = properties.get(key)
        if _money(value):
            return float(cast(float, value))
    return 0.0


def _no_unknown(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _list(doc: Mapping[str, Any], key: str, origin: str, required: bool = True) -> list[Any]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise RulesError(f"{origin}: '{key}' must be a non-empty list")
    return value


def _stages(value: object, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RulesError(f"{origin}: 'stages' must be a non-empty list of stage names")
    for stage in value:
        if not isinstance(stage, str) or not _SLUG.match(stage):
            raise RulesError(f"{origin}: stage name {stage!r} must be a lower-case slug")
    if len(set(value)) != len(value):
        raise RulesError(f"{origin}: 'stages' lists a stage twice")
    return tuple(value)


def _rule(raw: object, index: int, stages: tuple[str, ...], origin: str) -> Rule:
    where = f"{origin}: rules[{index}]"
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: must be a mapping with 'stage' and 'when'")
    _no_unknown(raw, _RULE_KEYS, where)
    stage, after = raw.get("stage"), raw.get("after")
    if stage not in stages:
        raise RulesError(f"{where}: unknown stage {stage!r}; declared: {list(stages)}")
    if after is not None and (after not in stages or stages.index(after) >= stages.index(stage)):
        raise RulesError(f"{where}: 'after' must name a stage before {stage!r}, got {after!r}")
    when = _when(raw.get("when"), where)
    traits = raw["when"].get("traits")
    gate = orjson.dumps(traits, option=orjson.OPT_SORT_KEYS).decode() if traits else ""
    ungated = {k: v for k, v in when.items() if k != "traits"}
    return Rule(stage, ungated, after, index, gate, raw["when"])


def _when(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise RulesError(f"{where}: 'when' must be a non-empty mapping")
    _no_unknown(raw, _WHEN_KEYS, where)
    for key in ("properties", "traits", "context"):
        conditions = raw.get(key, {})
        if not isinstance(conditions, dict):
            raise RulesError(f"{where}: '{key}' must map property names to conditions")
        for name, condition in conditions.items():
            _check_condition(condition, f"{where}: {key}.{name}")
    return {
        key: (
            {k: _compile(c) for k, c in value.items()}
            if isinstance(value, dict)
            else _compile(value)
        )
        for key, value in raw.items()
    }


def _check_condition(condition: object, where: str) -> None:
    for part in condition if isinstance(condition, list) else [condition]:
        if isinstance(part, dict) and (len(part) != 1 or not set(part) <= _OPERATORS):
            raise RulesError(f"{where}: an operator must be one of {sorted(_OPERATORS)}")


def load_stage_model(path: Path | None = None) -> StageModel:
    if path is None:
        text = resources.files("touchpath").joinpath("rules/default.yaml").read_text()
        return parse_stage_model(text)
    return parse_stage_model(Path(path).read_text(), str(path))


def _get(event: Mapping[str, Any], dotted: str) -> Any:
    return _field(event, dotted.split("."))


def _compile(cond: Any) -> Any:
    """Conditions in their fast form: lower-cased strings, sets for lists of strings."""
    if isinstance(cond, str):
        return cond.strip().lower()
    if isinstance(cond, list):
        if cond and all(isinstance(c, str) for c in cond):
            return frozenset(c.strip().lower() for c in cond)
        return [_compile(c) for c in cond]
    if isinstance(cond, dict) and isinstance(cond.get("prefix"), str):
        return {"prefix": cond["prefix"].lower()}
    return cond


def _cond(value: Any, cond: Any) -> bool:
    kind = type(cond)
    if kind is frozenset:
        return isinstance(value, str) and value.strip().lower() in cond
    if kind is str:
        return isinstance(value, str) and value.strip().lower() == cond
    if kind is list:
        return any(_cond(value, c) for c in cond)
    if kind is dict:
        if "prefix" in cond:
            return isinstance(value, str) and value.lower().startswith(cond["prefix"])
        if "exists" in cond:
            return (value is not None) == cond["exists"]
        return False
    return bool(value == cond)


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


def matching_stages(event: Mapping[str, Any], model: StageModel) -> Mapping[str, str | None]:
    """Stages the event qualifies for, each with the stage it must follow (or None)."""
    return match_event(event, model).stages


def match_event(event: Mapping[str, Any], model: StageModel) -> Match:
    """What the event qualifies for (:class:`Match`), cached by the fields the rules read."""
    return match_activity(event, model)[0]


def match_activity(event: Mapping[str, Any], model: StageModel) -> tuple[Match, bool]:
    """:func:`match_event`, and whether the event is activity (it matches, or the ``ignore``
    rules do not hold it: ``match is not NO_MATCH or not is_ignored(event, model)``), both
    cached by the fields the rules and ignore rules read."""
    matcher = model.matcher_for(event.get("type"), event.get("event"))
    values = []
    for path in matcher.paths:  # _field of each, inlined
        value: Any = event
        for part in path:
            if not isinstance(value, dict):
                value = None
                break
            value = value.get(part)
        values.append(value)
    key = tuple(values)
    try:
        found = matcher.results.get(key)
    except TypeError:  # an object or list where the rules read a value: no caching
        return _match_activity(event, model, matcher.rules)
    if found is None:
        found = _match_activity(event, model, matcher.rules)
        if len(matcher.results) >= MATCH_CACHE_SIZE:
            matcher.results.clear()
        matcher.results[key] = found
    return found


def _match_activity(
    event: Mapping[str, Any], model: StageModel, rules: tuple[Rule, ...]
) -> tuple[Match, bool]:
    if any(_matches(event, ign) for ign in model.ignore):
        return NO_MATCH, False
    return _granted(event, rules), True


def is_ignored(event: Mapping[str, Any], model: StageModel) -> bool:
    """Whether the rules' ``ignore`` list holds the event (it is then no activity either)."""
    return any(_matches(event, ign) for ign in model.ignore)


def _field(event: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at a path of keys (None where the path leaves the event's objects)."""
    value: Any = event
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _match(event: Mapping[str, Any], model: StageModel, rules: tuple[Rule, ...]) -> Match:
    """What the rules grant an event (nothing when the ignore rules hold it)."""
    return _match_activity(event, model, rules)[0]


def _granted(event: Mapping[str, Any], rules: tuple[Rule, ...]) -> Match:
    """What the rules grant an event the ignore rules do not hold."""
    found: dict[str, str | None] = {}
    granted: dict[str, int] = {}
    gates: list[Gate] = []
    for rule in rules:
        if not _matches(event, rule.when):
            continue
        if rule.gate:
            gates.append(Gate(rule.stage, rule.after, rule.gate, rule.number))
        elif rule.stage not in found or (rule.after is None and found[rule.stage] is not None):
            found[rule.stage] = rule.after  # an ungated rule outranks one after a stage
            granted[rule.stage] = rule.number
    kept = tuple(g for g in gates if found.get(g.stage, "") is not None)
    return Match(found, granted, kept) if found or kept else NO_MATCH


@lru_cache(maxsize=256)
def _gate_conditions(conditions: str) -> dict[str, Any]:
    return {name: _compile(c) for name, c in orjson.loads(conditions).items()}


def gate_passes(conditions: str, traits: Mapping[str, Any]) -> bool:
    """Whether the traits in force (name → value) meet a gate's conditions."""
    return all(_cond(traits.get(name), c) for name, c in _gate_conditions(conditions).items())


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
            best = ok[0] if len(ok) == 1 else min(ok, key=_earliest)
            history[stage] = StageEntry(
                stage, best.at_ms, best.message_id, best.channel, best.cause
            )
    return history


def _earliest(candidate: StageCandidate) -> tuple[int, str, int, str]:
    """Earliest event first; of one event's candidates (gates of several rules), the rule
    written first: never the order in which they arrived."""
    try:
        rule = int(orjson.loads(candidate.cause)[2]) if candidate.cause else -1
    except (ValueError, TypeError, IndexError):
        rule = -1
    return candidate.at_ms, candidate.message_id, rule, candidate.cause


def current_stage(history: Mapping[str, StageEntry], model: StageModel) -> str | None:
    return max(history, key=model.index) if history else None
