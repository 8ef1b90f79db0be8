"""Keyed hashing of emails and phones: stable, keyed, idempotent, and still stitchable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from touchpath.identifiers import (
    identifier_from_query,
    identifiers_of,
    normalize_email,
    normalizers,
)
from touchpath.pseudonyms import is_pseudonym, pseudonym, pseudonymize_event

NORMALIZERS = normalizers()

KEY = b"k1"
local = st.text(alphabet="abcdefghij0123456789.", min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)


@given(local, st.sampled_from(["Example.com", "EXAMPLE.org"]))
def test_equal_addresses_hash_alike_and_lookups_match(name: str, domain: str) -> None:
    clear = f"{name}@{domain}"
    normalized = normalize_email(clear)
    if normalized is None:
        return
    event = {"type": "identify", "userId": "u", "traits": {"email": clear.upper()}}
    pseudonymize_event(event, KEY, NORMALIZERS)
    stored = event["traits"]["email"]
    assert is_pseudonym(stored) and "@" not in stored
    assert stored == pseudonym(KEY, "email", normalized)
    assert stored != pseudonym(b"other key", "email", normalized)
    found = identifier_from_query(clear, "email", KEY)
    assert found is not None and found.value == stored
    assert [i.key() for i in identifiers_of(event) if i.kind == "email"] == [f"email:{stored}"]
    pseudonymize_event(event, KEY, NORMALIZERS)  # hashing twice changes nothing
    assert event["traits"]["email"] == stored


def test_every_place_an_email_or_phone_can_be_is_hashed() -> None:
    event = {
        "type": "track",
        "event": "X",
        "traits": {"phone": "+1 555 0100 999"},
        "properties": {"email": "a@b.co"},
        "context": {
            "traits": {"email": "A@B.co"},
            "externalIds": [{"type": "email", "id": "a@b.co"}, {"type": "crm", "id": "7"}],
        },
    }
    pseudonymize_event(event, KEY, NORMALIZERS)
    assert "@" not in str(event) and "555" not in str(event)
    assert event["context"]["externalIds"][1] == {"type": "crm", "id": "7"}
    assert event["properties"]["email"] == event["context"]["traits"]["email"]
