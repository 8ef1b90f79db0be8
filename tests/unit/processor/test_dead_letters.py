"""The dead-letter sender alone: sent without waiting, confirmed before commit, sent again
when the broker failed it."""

from __future__ import annotations

import orjson
import pytest

from infra.streams import StreamError
from infra.streams.memory import MemoryBroker, MemoryProducer
from processor.dead_letters import DeadLetters
from processor.decode import DeadLetter
from processor.pauses import DEAD_LETTER_LIMIT, DeadLetterBrake, Pauses

TOPIC = "dead-letter"


def _letters(limit: int = 100) -> tuple[MemoryBroker, MemoryProducer, DeadLetters, Pauses]:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, 1)
    producer = MemoryProducer(broker)
    pauses = Pauses()
    return (
        broker,
        producer,
        DeadLetters(producer, TOPIC, DeadLetterBrake(pauses, limit, 1, 2)),
        pauses,
    )


def _stored(broker: MemoryBroker) -> list[dict]:
    return [orjson.loads(r.value or b"") for r in broker.topics[TOPIC][0]]


def test_letters_are_sent_at_once_and_confirmed_later() -> None:
    broker, _, letters, _ = _letters()
    sent = letters.send([DeadLetter("not JSON", "bad_record", b"{")])
    assert [letter["reason"] for letter in _stored(broker)] == ["not JSON"]
    assert not sent[0].confirmed
    letters.confirm(sent)
    assert sent[0].confirmed


def test_a_failed_letter_is_sent_again_and_its_round_retried() -> None:
    broker, producer, letters, _ = _letters()
    producer.hold = StreamError("not acknowledged")
    sent = letters.send([DeadLetter("bad", "bad_event", {"x": 1})])
    with pytest.raises(StreamError):
        letters.confirm(sent)  # sent again, fails again
    producer.hold = None
    with pytest.raises(StreamError):
        letters.confirm(sent)  # the earlier attempt failed: sent again, stored now
    letters.confirm(sent)
    assert sent[0].confirmed
    assert len(_stored(broker)) == 1
    letters.confirm(sent)  # confirmed letters are not sent again
    assert len(_stored(broker)) == 1


def test_more_letters_than_the_limit_pause_consumption() -> None:
    _, _, letters, pauses = _letters(limit=3)
    letters.send([DeadLetter("bad", "bad_event", n) for n in range(2)])
    assert DEAD_LETTER_LIMIT not in pauses.active()
    letters.send([DeadLetter("bad", "bad_event", n) for n in range(2)])
    assert DEAD_LETTER_LIMIT in pauses.active()
