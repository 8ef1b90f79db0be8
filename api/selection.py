"""Which customers an analytics answer counts: first-touch channel and campaign, and persona
traits (``trait.<name>=<value>``), applied to funnel rows. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from api.rows import FunnelRow
from api.views import trait_text
from store.codecs import StoredFunnelRow

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

#: The OpenAPI description of the ``trait.<name>`` query parameters (not declared by FastAPI:
#: their names vary).
TRAIT_PARAMETER = {
    "name": "trait.<name>",
    "in": "query",
    "required": False,
    "description": "A persona: only customers whose trait `<name>` has this value, e.g. "
    "`trait.plan=pro` or `trait.country=DE` (repeat a name to accept several values; strings "
    "compare exactly, other values in JSON: `true`, `42`). Read from the customer's funnel row, "
    "which keeps the traits of `TOUCHPATH_PERSONA_TRAITS` first, 20 traits at most.",
    "schema": {"type": "string"},
    "example": "pro",
}


@dataclass(frozen=True, slots=True)
class Selection:
    """Customers of a first-touch channel and campaign (when given) whose traits have one of
    the wanted values for every named trait."""

    channel: str | None = None
    campaign: str | None = None
    traits: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def everyone(self) -> bool:
        return self.channel is None and self.campaign is None and not self.traits

    def keeps(self, channel: Any, campaign: Any, traits: Any) -> bool:
        """True when a customer with this first touch and these (row) traits is selected."""
        if self.channel is not None and channel != self.channel:
            return False
        if self.campaign is not None and campaign != self.campaign:
            return False
        if not self.traits:
            return True
        if not isinstance(traits, dict):
            return False
        return all(
            name in traits and trait_text(traits[name]) in values
            for name, values in self.traits.items()
        )

    def rows(self, rows: list[FunnelRow]) -> list[FunnelRow]:
        """The selected decoded rows (the same list when everyone is)."""
        if self.everyone:
            return rows
        return [r for r in rows if self.keeps(r.channel, r.campaign, r.traits)]

    def stored(self, rows: Iterable[StoredFunnelRow]) -> list[StoredFunnelRow]:
        """The selected rows as stored (:func:`store.codecs.decode_funnel_row`)."""
        return [r for r in rows if self.keeps(r.channel, r.campaign, r.traits)]

    def echo(self) -> dict[str, Any]:
        """The filters as answers repeat them."""
        return {"channel": self.channel, "campaign": self.campaign}


def trait_filters(query: QueryParams) -> dict[str, list[str]]:
    """``trait.<name>=<value>`` query parameters; a name given twice accepts either value."""
    wanted: dict[str, list[str]] = {}
    for name, value in query.multi_items():
        if name.startswith("trait.") and len(name) > len("trait."):
            wanted.setdefault(name.removeprefix("trait."), []).append(value)
    return wanted
