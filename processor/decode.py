"""Step 1, decode (pure): Kafka record values → event effects, or dead letters with their
reasons; a polled batch is decoded a part (about :data:`PART_EVENTS` events) at a time, so
that the apply step overlaps Redis and Python work."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from infra.streams import Batch, Partition
from touchpath.effects import EventEffects, effects_of
from touchpath.identity import IdentityPolicy
from touchpath.records import RecordError, decode_touchpoints
from touchpath.stages import StageModel

PART_EVENTS = 5000  # small enough to overlap, large enough to group by anchor
Offsets = dict[Partition, int]


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


@dataclass(slots=True)
class Part:
    """Consecutive records of a batch, decoded, and the offsets that follow them."""

    decoded: Decoded
    offsets: Offsets


def parts(
    batch: Batch, model: StageModel, policy: IdentityPolicy, part_events: int = PART_EVENTS
) -> Iterator[Part]:
    """A batch's records decoded a part (about ``part_events`` events) at a time."""
    part = Part(Decoded(), {})
    for tp, records in batch.items():
        for record in records:
            decoded = decode_batch([record.value], model, policy)
            part.decoded.effects += decoded.effects
            part.decoded.dead += decoded.dead
            part.offsets[tp] = record.offset + 1
            if len(part.decoded.effects) >= part_events:
                yield part
                part = Part(Decoded(), {})
    if part.offsets:
        yield part
