"""What an erasure looks for, and how its markers are named (pure).

An erasure marker is ``P:erased:<mark>`` where the mark is the keyed hash (HMAC-SHA256, first
128 bits in hex) of the identifier key (``kind:value``) under the installation's erasure key:
the processor can still recognise a replayed event of an erased identifier, but the markers
do not list who was erased.

The *forms* of an identifier are what an erasure searches other customers' data for: an email
(or a pseudonym) as a case-insensitive substring, a phone by its digits inside any string or
bare number (``+44 20 7946 0958`` and ``442079460958`` alike), and any other identifier as
an exact JSON string.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from touchpath.identifiers import EMAIL, PHONE, Identifier
from touchpath.identity import customer_id
from touchpath.pseudonyms import is_pseudonym

MARK_HEX = 32


def erasure_mark(key: bytes, identifier: str) -> str:
    """The marker name of an identifier key (``kind:value``) under ``key``."""
    return hmac.digest(key, identifier.encode(), hashlib.sha256).hex()[:MARK_HEX]


class Marks:
    """Erasure marks of identifiers, memoised (identifiers repeat across events). The key is
    given, or fetched by ``key`` (a callable) on first use."""

    def __init__(self, key: bytes | Callable[[], bytes], size: int = 200_000) -> None:
        self._key = key if isinstance(key, bytes) else None
        self._load = key if callable(key) else None
        self._size = size
        self._known: dict[str, str] = {}

    def key(self) -> bytes:
        if self._key is None and self._load is not None:
            self._key = self._load()
        assert self._key is not None
        return self._key

    def __call__(self, identifiers: Iterable[str]) -> list[str]:
        known = self._known
        if len(known) > self._size:
            known.clear()
        out = []
        for identifier in identifiers:
            mark = known.get(identifier)
            if mark is None:
                mark = known[identifier] = erasure_mark(self.key(), identifier)
            out.append(mark)
        return out


@dataclass(slots=True)
class Forms:
    """The forms an erased identifier may take in other data (see the module docstring)."""

    text: list[str] = field(default_factory=list)  # lower-case substrings
    digits: list[str] = field(default_factory=list)  # digit runs of phones
    exact: list[str] = field(default_factory=list)  # JSON string literals

    def plan(self) -> dict[str, Any]:
        return {"text": self.text, "digits": self.digits, "exact": self.exact}

    def mentioned_in(self, text: str) -> bool:
        """Whether ``text`` holds one of the forms (same rule as ``store/scripts/erase.lua``)."""
        lower = text.lower()
        if any(form in lower for form in self.text):
            return True
        if any(form in text for form in self.exact):
            return True
        if not self.digits:
            return False
        runs = [re.sub(r"\D", "", s) for s in re.findall(r'"([^"]*)"', text)]
        runs += re.findall(r"\d+", text)
        return any(form in run for form in self.digits for run in runs)


def forms_of(identifiers: Iterable[str]) -> Forms:
    """The forms of identifier keys."""
    forms = Forms()
    for key in identifiers:
        ident = Identifier.parse(key)
        value = ident.value
        if is_pseudonym(value) or ident.kind == EMAIL:
            forms.text.append(value.lower())
        elif ident.kind == PHONE:
            forms.digits.append(re.sub(r"\D", "", value))
        else:
            forms.exact.append(orjson.dumps(value).decode())
    return forms


def former_customer_ids(identifiers: Iterable[str]) -> list[str]:
    """Every customer id a customer holding some of these identifiers can have had (a
    customer's id is derived from one of its identifiers, see ``identity.customer_id``)."""
    return sorted({customer_id([key], {}) for key in identifiers})


def names_erased(change: dict[str, Any], identifiers: set[str], customers: set[str]) -> bool:
    """Whether a stage change (as announced) is about an erased customer or identifier."""
    if change.get("customer_id") in customers:
        return True
    if customers.intersection(change.get("merged_from") or ()):
        return True
    return bool(identifiers.intersection(change.get("identities") or ()))
