"""Erasing a customer (right to be forgotten) in one atomic Lua script (``erase.lua``).

What is deleted, in one step no other Redis client can observe half-done: the profile
(``P:cust``), its stage, reached and funnel entries and its last stage announcement; for
every identifier of the customer its anchored data (``P:a:<id>:{journey,data,seen,cond}``)
and both look-ups (``P:idc``, ``P:id``); its place in the identity cluster — its identifiers
leave the cluster's ``ids``, every tie naming one of them leaves ``ties``, its derived profile
leaves ``snap``, and the cluster's ``ver`` is bumped (or the cluster deleted when nothing is
left), so a processor that read the cluster before the erasure fails its ``EXEC`` and
derives again from what remains.

How replays are prevented from resurrecting the data: Kafka keeps the raw touchpoints, and
a consumer-group rebalance, a crash or an operator resetting offsets delivers them again.
The script therefore records ``P:erased:<identifier>`` = the erasure time (epoch ms) for
every identifier, and sets ``P:erasures``. The processor's apply script
(``processor/ingest.lua``) skips any event *received* (``receivedAt``, stamped by the
collector) at or before the erasure time of one of its identifiers: a replayed record, even
if its de-duplication entry is gone, contributes nothing, and its identifiers are not linked
again. An event received *after* the erasure is new data the person sent since, so it starts
a new customer from scratch. This relies on the collector's and the API's clocks agreeing
(both run on NTP-synchronised hosts). The markers hold the bare identifier and the time, the
minimum needed to honour the erasure; Kafka's retention bounds how long the raw records stay.

Not covered: a refused tie kept in *another* customer's profile (``refused_ties``) still
names the erased identifier until that customer's cluster is derived again.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from touchpath.stages import StageModel


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure removed."""

    customer_id: str
    identities: list[str]
    at_ms: int


class Eraser:
    """Runs the erase script (registered once per client)."""

    def __init__(self, client: aioredis.Redis, prefix: str, stages: StageModel) -> None:
        source = resources.files("api").joinpath("erase.lua").read_text()
        self._script = client.register_script(source)
        self._prefix = prefix
        self._stages = stages.stages

    async def erase(self, identifier: str, now_ms: int) -> Erasure | None:
        """Erase the customer holding ``identifier`` (``kind:value``); None if there is none."""
        found: Any = await self._script(args=[self._prefix, identifier, now_ms, *self._stages])
        if not found:
            return None
        names = [value.decode() if isinstance(value, bytes) else str(value) for value in found]
        return Erasure(names[0], names[1:], now_ms)
