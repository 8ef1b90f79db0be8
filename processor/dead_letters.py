"""Dead letters: sent to Kafka without waiting, confirmed before their offsets are committed.

A part's dead letters are sent as soon as it is staged; the round that resolves the part
confirms them (waits for the broker's acknowledgement, sending again what failed) before it
counts as durable, so a record's offset is never committed before its dead letter is stored,
and the polling thread never waits for the broker.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from infra.streams import Delivery, Producer, StreamError
from processor import metrics
from processor.decode import DeadLetter
from processor.pauses import DeadLetterBrake
from touchpath.records import encode_dead_letter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SentLetter:
    """A dead letter and the broker's pending acknowledgement of it."""

    letter: DeadLetter
    delivery: Delivery
    confirmed: bool = False


@dataclass
class DeadLetters:
    """Sends dead letters to the dead-letter topic and confirms them."""

    producer: Producer
    topic: str
    brake: DeadLetterBrake

    def send(self, dead: Sequence[DeadLetter]) -> list[SentLetter]:
        """Send without waiting; the brake counts them (and may pause consumption)."""
        if not dead:
            return []
        sent = [SentLetter(letter, self._send(letter)) for letter in dead]
        self.brake.record(len(sent))
        return sent

    def confirm(self, sent: Sequence[SentLetter], timeout_s: float = 10.0) -> None:
        """Wait for every acknowledgement; a failed letter is sent again and the error raised
        (the caller retries, with the same letters)."""
        error: StreamError | None = None
        confirmed: list[DeadLetter] = []
        for item in sent:
            if item.confirmed:
                continue
            try:
                item.delivery.get(timeout_s)
            except StreamError as exc:
                if item.delivery.is_done:  # failed, not just slow: send it again
                    item.delivery = self._send(item.letter)
                error = error or exc
                continue
            item.confirmed = True
            confirmed.append(item.letter)
        _report(confirmed)
        if error is not None:
            raise error

    def _send(self, letter: DeadLetter) -> Delivery:
        value = encode_dead_letter(letter.reason, letter.raw, stage="processor")
        return self.producer.send(self.topic, value)


def _report(letters: Sequence[DeadLetter]) -> None:
    """Count confirmed letters by reason; one log line per call (a flood stays one line)."""
    if not letters:
        return
    codes = Counter(letter.code for letter in letters)
    for code, count in codes.items():
        metrics.DEAD_LETTERS.labels(code).inc(count)
    log.warning(
        "dead-lettered input",
        extra={"count": len(letters), "codes": dict(codes), "reason": letters[0].reason},
    )
