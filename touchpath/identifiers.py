"""Identifiers of a person, read from a normalised event: extraction, normalisation, junk filter.

An identifier is ``kind:value``. Kinds are ``user_id``, ``email``, ``phone``, ``anonymous_id`` and
``ext:<type>`` for typed external ids (Segment's ``context.externalIds``). The *anchor* of an
event is its highest-priority identifier: the event belongs to the customer holding its anchor.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import phonenumbers

from touchpath.pseudonyms import is_pseudonym, pseudonym
from touchpath.shapes import is_mapping

USER_ID = "user_id"
EMAIL = "email"
PHONE = "phone"
ANONYMOUS_ID = "anonymous_id"
EXTERNAL_PREFIX = "ext:"
#: Not an identifier of events: the API's way to name a customer by its id.
CUSTOMER_ID = "customer_id"
_CUSTOMER_ID = re.compile(r"^cus_[0-9a-f]{20}$")

#: Default priority, strongest first; external ids rank between phone and anonymous id.
DEFAULT_PRIORITY: tuple[str, ...] = (USER_ID, EMAIL, PHONE, EXTERNAL_PREFIX, ANONYMOUS_ID)

JUNK_VALUES = frozenset(
    {
        "",
        "null",
        "undefined",
        "anonymous",
        "0",
        "-1",
        "[object object]",
        "none",
        "nil",
        "nan",
        "n/a",
        "unknown",
        "true",
        "false",
        "{}",
        "[]",
    }
)
_ALL_ZERO = re.compile(r"^[0\-_.:\s]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KIND = re.compile(r"^[a-z0-9_\-.]{1,64}$")
#: The longest identifier value accepted (the collector refuses longer ones with a reason).
MAX_IDENTIFIER_LENGTH = 256
#: Control characters, the store's separators (U+001F) among them, are never part of an
#: identifier: the collector refuses them and extraction drops them.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class Identifier(NamedTuple):
    """One identifier of a person, e.g. ``Identifier("email", "ada@example.com")``."""

    kind: str
    value: str

    def key(self) -> str:
        """The stable text form ``kind:value`` used as a storage key."""
        return f"{self.kind}:{self.value}"

    @classmethod
    def parse(cls, key: str) -> Identifier:
        """Inverse of :meth:`key`."""
        if key.startswith(EXTERNAL_PREFIX):
            ext_type, _, value = key[len(EXTERNAL_PREFIX) :].partition(":")
            return cls(EXTERNAL_PREFIX + ext_type, value)
        kind, _, value = key.partition(":")
        return cls(kind, value)


def kind_of(key: str) -> str:
    """The kind of an identifier key: ``Identifier.parse(key).kind``, without the tuple."""
    if key.startswith(EXTERNAL_PREFIX):
        return EXTERNAL_PREFIX + key[len(EXTERNAL_PREFIX) :].partition(":")[0]
    return key.partition(":")[0]


def is_junk(value: object) -> bool:
    """True for values that must never become identities (``null``, ``0``, all-zero, …)."""
    if type(value) is str:
        return _junk_text(value.strip())
    if not isinstance(value, str | int) or isinstance(value, bool):
        return True
    return _junk_text(str(value).strip())


def _junk_text(text: str) -> bool:
    """:func:`is_junk` of trimmed text. Each check runs only where it can hold: no junk value
    is longer than :data:`_LONGEST_JUNK`, an all-zero text starts with one of its characters
    (trimmed text never starts with a space), a control character is never printable."""
    size = len(text)
    return (
        (size <= _LONGEST_JUNK and text.lower() in JUNK_VALUES)
        or (text[:1] in _ZERO_STARTS and _ALL_ZERO.match(text) is not None)
        or size > MAX_IDENTIFIER_LENGTH
        or (not text.isprintable() and CONTROL_CHARACTER.search(text) is not None)
    )


_LONGEST_JUNK = max(len(value) for value in JUNK_VALUES)
_ZERO_STARTS = frozenset("0-_.:")  # what a trimmed text _ALL_ZERO matches can start with


def normalize_email(value: object) -> str | None:
    """Lower-cased, trimmed email (or its pseudonym, as is), or None when it is not one."""
    if not isinstance(value, str):
        return None
    if is_pseudonym(value):
        return value
    text = value.strip().lower()
    return text if _EMAIL.match(text) and not is_junk(text) else None


def normalize_phone(value: object, region: str = "") -> str | None:
    """A phone in E.164 (``+442079460123``) when it has a country code or ``region`` (an ISO
    country code such as ``GB``) supplies one; digits only, kept apart rather than guessed,
    when it has neither; its pseudonym as is; None when it is no phone number."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    if is_pseudonym(value):
        return str(value)
    return _phone(str(value).strip(), region.upper())


@functools.lru_cache(maxsize=65_536)  # parsing costs ~50 µs; a customer's phone repeats
def _phone(text: str, region: str) -> str | None:
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7 or len(digits) > 15 or is_junk(digits) or CONTROL_CHARACTER.search(text):
        return None
    international = text.startswith(("+", "00"))
    if international or region:
        try:
            number = phonenumbers.parse(
                "+" + digits.removeprefix("00") if international else text, region or None
            )
        except phonenumbers.NumberParseException:
            return None
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return None
    return digits


def normalizers(region: str = "") -> dict[str, Callable[[object], str | None]]:
    """How each hashed kind is normalised (emails, and phones with the default region)."""
    return {"email": normalize_email, "phone": functools.partial(normalize_phone, region=region)}


def normalize_external_type(value: object) -> str | None:
    """External id types are lower-case slugs (``intercom_user``, ``sendgrid_recipient``)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "_")
    return text if _KIND.match(text) else None


def _plain(value: object) -> str | None:
    if type(value) is str:
        text = value.strip()
        return None if _junk_text(text) else text
    if is_junk(value):
        return None
    return str(value).strip()


def identifiers_of(
    event: Mapping[str, Any], priority: tuple[str, ...] = DEFAULT_PRIORITY, region: str = ""
) -> list[Identifier]:
    """All usable identifiers of the *person* an event is about, de-duplicated, junk dropped,
    in priority order (``region``: the default region of phone numbers).

    Segment's semantics: the ``traits`` of a ``group`` call describe the account, never the
    person; an ``alias`` renames ``previousId`` (an anonymous id or a former userId: both stay
    look-up keys) to ``userId``, which leads. An event the collector marked
    ``"verified": false`` (identity verification failed) carries its anonymous id only."""
    anonymous_id = _plain(event.get("anonymousId"))
    if event.get("verified") is False:
        return [Identifier(ANONYMOUS_ID, anonymous_id)] if anonymous_id else []
    found: list[Identifier] = []
    user_id = _plain(event.get("userId"))
    if user_id:
        found.append(Identifier(USER_ID, user_id))
    renamed = None
    if event.get("type") == "alias":
        previous = _plain(event.get("previousId"))
        if previous and previous != user_id:
            found.append(Identifier(ANONYMOUS_ID, previous))
            renamed = Identifier(USER_ID, previous)
            found.append(renamed)
    for email, phone in _contacts(event):
        if email is not None:
            email = normalize_email(email)
            if email:
                found.append(Identifier(EMAIL, email))
        if phone is not None:
            phone = normalize_phone(phone, region)
            if phone:
                found.append(Identifier(PHONE, phone))
    context = event.get("context")
    if is_mapping(context):
        external = context.get("externalIds")
        if external is not None:
            found.extend(_external_ids(external))
    if anonymous_id:
        found.append(Identifier(ANONYMOUS_ID, anonymous_id))
    if len(found) < 2:
        return found
    if len(found) == 2 and renamed is None:  # the usual pair: one comparison, no sort
        return _ordered_pair(found[0], found[1], priority)
    ordered = sort_by_priority(set(found), priority)
    if renamed is not None and user_id:  # the new userId leads, the former follows it
        ordered.remove(Identifier(USER_ID, user_id))
        ordered.insert(0, Identifier(USER_ID, user_id))
    return ordered


def _ordered_pair(a: Identifier, b: Identifier, priority: tuple[str, ...]) -> list[Identifier]:
    """:func:`sort_by_priority` of two identifiers, de-duplicated."""
    if a == b:
        return [a]
    ranks, unknown = _ranks(priority), len(priority)
    rank_a = ranks.get(EXTERNAL_PREFIX if a[0].startswith(EXTERNAL_PREFIX) else a[0], unknown)
    rank_b = ranks.get(EXTERNAL_PREFIX if b[0].startswith(EXTERNAL_PREFIX) else b[0], unknown)
    return [a, b] if (rank_a, a) < (rank_b, b) else [b, a]


def _contacts(event: Mapping[str, Any]) -> list[tuple[object, object]]:
    """The (email, phone) values the person's traits give, in order: the event's ``traits``
    (not a group's: the account's), ``context.traits``, then a track call's
    ``properties.email`` (email-service and chat events carry the recipient there)."""
    found: list[tuple[object, object]] = []
    traits = event.get("traits")
    if is_mapping(traits) and event.get("type") != "group":
        found.append((traits.get("email"), traits.get("phone")))
    context = event.get("context")
    if is_mapping(context):
        traits = context.get("traits")
        if is_mapping(traits):
            found.append((traits.get("email"), traits.get("phone")))
    properties = event.get("properties")
    if is_mapping(properties) and "email" in properties and event.get("type") == "track":
        found.append((properties.get("email"), None))
    return found


def _external_ids(value: object) -> Iterable[Identifier]:
    if not isinstance(value, list):
        return
    for item in value[:20]:
        if not is_mapping(item):
            continue
        ext_type = normalize_external_type(item.get("type"))
        ext_id = _plain(item.get("id"))
        if ext_type and ext_id:
            if ext_type in (EMAIL, PHONE, ANONYMOUS_ID):  # a userId only from userId/alias
                yield from _typed_builtin(ext_type, ext_id)
            else:
                yield Identifier(EXTERNAL_PREFIX + ext_type, ext_id)


def _typed_builtin(kind: str, value: str) -> Iterable[Identifier]:
    normalized = {EMAIL: normalize_email, PHONE: normalize_phone}.get(kind, _plain)(value)
    if normalized:
        yield Identifier(kind, normalized)


def priority_rank(kind: str, priority: tuple[str, ...] = DEFAULT_PRIORITY) -> int:
    """Position of a kind in the priority order (external ids share the ``ext:`` slot)."""
    return _rank(kind, _ranks(priority), len(priority))


def _rank(kind: str, ranks: Mapping[str, int], unknown: int) -> int:
    slot = EXTERNAL_PREFIX if kind.startswith(EXTERNAL_PREFIX) else kind
    return ranks.get(slot, unknown)


@functools.lru_cache(maxsize=16)
def _ranks(priority: tuple[str, ...]) -> dict[str, int]:
    return {kind: index for index, kind in enumerate(priority)}


def sort_by_priority(
    identifiers: Iterable[Identifier], priority: tuple[str, ...] = DEFAULT_PRIORITY
) -> list[Identifier]:
    """Strongest first; ties broken by kind and value so the order is deterministic."""
    ranks, unknown = _ranks(priority), len(priority)
    return sorted(
        identifiers,
        key=lambda i: (
            ranks.get(EXTERNAL_PREFIX if i[0].startswith(EXTERNAL_PREFIX) else i[0], unknown),
            i,
        ),
    )


def anchor_of(
    identifiers: Iterable[Identifier], priority: tuple[str, ...] = DEFAULT_PRIORITY
) -> Identifier | None:
    """The event's strongest identifier: the one that decides which customer it belongs to."""
    ordered = sort_by_priority(identifiers, priority)
    return ordered[0] if ordered else None


def identifier_from_query(
    value: str, id_type: str, hash_key: bytes | None = None, region: str = ""
) -> Identifier | None:
    """The identifier an API caller names by value and type (``user_id``, ``email``, …,
    or an external id type such as ``intercom_user``); None when it cannot be one. With a
    ``hash_key``, emails and phones are named by their clear value and looked up hashed."""
    kind = id_type.strip().lower()
    if kind == CUSTOMER_ID:
        return Identifier(kind, value) if _CUSTOMER_ID.match(value) else None
    if kind in (EMAIL, PHONE):
        normalized = normalize_email(value) if kind == EMAIL else normalize_phone(value, region)
        if normalized and hash_key and not is_pseudonym(normalized):
            normalized = pseudonym(hash_key, kind, normalized)
    elif kind in (USER_ID, ANONYMOUS_ID):
        normalized = _plain(value)
    else:
        ext_type = normalize_external_type(kind.removeprefix(EXTERNAL_PREFIX))
        normalized = _plain(value) if ext_type else None
        kind = EXTERNAL_PREFIX + ext_type if ext_type else kind
    return Identifier(kind, normalized) if normalized else None
