"""Kafka record layouts, shared by the collector (writer) and the processor (reader).

Touchpoint topic: **one record per accepted request**, value
``{"v": 1, "source": …, "events": [normalised event, …]}``, key = the anchor identifier of the
request's first event (so a single-event request is keyed by its person). The processor splits
the record into events and is order- and partition-independent, so the key only spreads load.

Dead-letter topic: one record per rejected event or undecodable record, value
``{"reason": …, "stage": "collector"|"processor", "source": …, "raw": …}``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from touchpath.identifiers import anchor_of, identifiers_of

RECORD_VERSION = 1


class RecordError(ValueError):
    """A record on the touchpoint topic cannot be decoded."""


def encode_touchpoints(events: Sequence[Mapping[str, Any]], source: str) -> bytes:
    """The value of one touchpoint record holding a request's accepted events."""
    return orjson.dumps({"v": RECORD_VERSION, "source": source, "events": events})


def touchpoints_key(events: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Partition key: the first event's strongest identifier."""
    if not events:
        return None
    anchor = anchor_of(identifiers_of(events[0]))
    return anchor.key().encode() if anchor else None


def decode_touchpoints(value: bytes | None) -> list[dict[str, Any]]:
    """The events of a touchpoint record; :class:`RecordError` if it is not one."""
    if not value:
        raise RecordError("empty record")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"record is not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != RECORD_VERSION:
        raise RecordError(
            f"unknown record version {body.get('v') if isinstance(body, dict) else None!r}"
        )
    events = body.get("events")
    if not isinstance(events, list):
        raise RecordError("record has no events list")
    return events


def encode_dead_letter(
    reason: str, raw: object, *, stage: str, source: str | None = None, index: int | None = None
) -> bytes:
    """A dead-letter record: the reason, where it failed, and the raw input kept whole."""
    body: dict[str, Any] = {"reason": reason, "stage": stage, "source": source, "index": index}
    if isinstance(raw, bytes | bytearray | memoryview):
        raw_bytes = bytes(raw)
        try:
            body["raw"] = raw_bytes.decode("utf-8")
        except UnicodeDecodeError:
            body["raw_base64"] = base64.b64encode(raw_bytes).decode()
    else:
        body["raw"] = raw
    return orjson.dumps(body, default=repr)
