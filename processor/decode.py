"""Pure step: Kafka record values → event effects, or dead letters with their reasons."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from touchpath.effects import EventEffects, effects_of
from touchpath.identity import IdentityPolicy
from touchpath.records import RecordError, decode_touchpoints
from touchpath.stages import StageModel


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something that could not be processed: why, a metrics label, and the raw input."""

    reason: str
    code: str
    raw: object


@dataclass(slots=True)
class Decoded:
    """The effects of a batch's good events and its dead letters."""

    effects: list[EventEffects] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def decode_batch(
    values: Iterable[bytes | None], model: StageModel, policy: IdentityPolicy
) -> Decoded:
    """Split every record into events and compute their effects; never raises."""
    decoded = Decoded()
    for value in values:
        try:
            events = decode_touchpoints(value)
        except RecordError as exc:
            decoded.dead.append(DeadLetter(str(exc), "bad_record", value))
            continue
        for event in events:
            try:
                decoded.effects.append(effects_of(event, model, policy))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                decoded.dead.append(
                    DeadLetter(f"event cannot be processed: {exc!r}", "bad_event", event)
                )
    return decoded
