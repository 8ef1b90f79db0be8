"""Survey answers (NPS 0-10, CSAT 1-5) from any channel, and their scores (pure).

An answer is a ``track`` event named ``NPS Survey Answered`` or ``CSAT Survey Answered`` with
an integer ``properties.score``. NPS is the share of promoters (9-10) minus the share of
detractors (0-6), in percent; CSAT is the average score. Each answer is counted in the stage
the customer was at when answering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from touchpath.shapes import is_mapping

NPS = "nps"
CSAT = "csat"
#: event name (lower case) → (survey kind, lowest score, highest score)
SURVEY_EVENTS = {
    "nps survey answered": (NPS, 0, 10),
    "csat survey answered": (CSAT, 1, 5),
}
NO_STAGE = "(none)"


def survey_answer(event: Mapping[str, Any]) -> tuple[str, int] | None:
    """(kind, score) of a survey answer event; None for other events, ValueError if invalid."""
    name = event.get("event")
    if event.get("type") != "track" or not isinstance(name, str):
        return None
    survey = SURVEY_EVENTS.get(name.strip().lower())
    if survey is None:
        return None
    kind, low, high = survey
    properties = event.get("properties")
    score = properties.get("score") if is_mapping(properties) else None
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if not isinstance(score, int) or isinstance(score, bool) or not low <= score <= high:
        raise ValueError(f"{name} needs properties.score, an integer from {low} to {high}")
    return kind, score


def stage_at(history: Mapping[str, Sequence[Any]], at_ms: int, stages: Sequence[str]) -> str:
    """The customer's stage at ``at_ms``: the furthest stage entered by then."""
    entered = [s for s in stages if s in history and history[s][0] <= at_ms]
    return entered[-1] if entered else NO_STAGE


@dataclass(slots=True)
class Scores:
    """Running NPS and CSAT figures of a group of answers."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat_total: int = 0
    csat_answers: int = 0

    def add(self, kind: str, score: int) -> None:
        if kind == CSAT:
            self.csat_total += score
            self.csat_answers += 1
        elif score >= 9:
            self.promoters += 1
        elif score >= 7:
            self.passives += 1
        else:
            self.detractors += 1

    def summary(self) -> dict[str, Any]:
        answers = self.promoters + self.passives + self.detractors
        nps = 100.0 * (self.promoters - self.detractors) / answers if answers else None
        csat = self.csat_total / self.csat_answers if self.csat_answers else None
        return {
            "nps": None if nps is None else round(nps, 1),
            "nps_answers": answers,
            "promoters": self.promoters,
            "passives": self.passives,
            "detractors": self.detractors,
            "csat": None if csat is None else round(csat, 2),
            "csat_answers": self.csat_answers,
        }


@dataclass(slots=True)
class Satisfaction:
    """NPS and CSAT overall and per stage, from answers ``(kind, score, at_ms, stage)``."""

    overall: Scores = field(default_factory=Scores)
    by_stage: dict[str, Scores] = field(default_factory=dict)

    def add_all(self, answers: Iterable[Sequence[Any]]) -> None:
        for kind, score, _, stage in answers:
            self.overall.add(kind, score)
            self.by_stage.setdefault(stage, Scores()).add(kind, score)

    def report(self, stages: Sequence[str]) -> dict[str, Any]:
        order = [*stages, NO_STAGE]
        return {
            **self.overall.summary(),
            "stages": [
                {"stage": s, **self.by_stage[s].summary()} for s in order if s in self.by_stage
            ],
        }
