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
import json
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


def encode_events(events: Sequence[Mapping[str, Any]]) -> bytes:
    """A request's events as a JSON array, to be joined into one record by
    :func:`join_touchpoints` (raises ``orjson.JSONEncodeError`` for what JSON cannot hold)."""
    return orjson.dumps(events)


def join_touchpoints(parts: Sequence[bytes], source: str) -> bytes:
    """One touchpoint record from several :func:`encode_events` arrays: the same bytes as
    :func:`encode_touchpoints` of all their events."""
    items = b",".join(part[1:-1] for part in parts if len(part) > 2)
    head = b'{"v":%d,"source":%s,"events":[' % (RECORD_VERSION, orjson.dumps(source))
    return head + items + b"]}"


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
    try:
        return orjson.dumps(body, default=repr)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: keep it as JSON text
        body["raw"] = None
        body["raw_json"] = _json_text(raw)
        return orjson.dumps(body)


def _json_text(raw: object) -> str:
    try:
        return json.dumps(raw, default=repr)
    except (RecursionError, ValueError, TypeError):
        return repr(raw)[:1_000_000]
