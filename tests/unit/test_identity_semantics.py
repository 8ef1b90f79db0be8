"""Issue #14: identity that matches Segment's semantics and cannot be hijacked from a browser.

Each reproduction of the issue through the pure core (the reference store folds events as the
Redis scripts do) and, for what the collector decides, through ``normalize_event``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.reference import ReferenceStore, make_event
from touchpath.events import IngestContext, InvalidEvent, normalize_event, parse_time
from touchpath.identifiers import identifier_from_query, identifiers_of, normalize_phone
from touchpath.identity import IdentityPolicy
from touchpath.stages import load_stage_model

MODEL = load_stage_model(None)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T = 1_780_000_000_000


def store(*batches: list[dict[str, Any]], policy: IdentityPolicy | None = None) -> ReferenceStore:
    reference = ReferenceStore(MODEL, policy or IdentityPolicy())
    for batch in batches:
        reference.apply_batch(batch)
    return reference


def customer_of(reference: ReferenceStore, identifier: str) -> dict[str, Any]:
    found = [p for p in reference.profiles.values() if identifier in p["identities"]]
    assert len(found) == 1, (identifier, found)
    return found[0]


def browser(raw: dict[str, Any], secret: str = "", **fields: Any) -> dict[str, Any]:
    ctx = IngestContext(
        source="website",
        default_channel="web",
        received_at=NOW,
        trust="browser",
        verification_secret=secret,
        **fields,
    )
    return normalize_event(raw, ctx)


def server(raw: dict[str, Any]) -> dict[str, Any]:
    ctx = IngestContext(source="backend", default_channel="server", received_at=NOW)
    return normalize_event(raw, ctx)


# --- 1. group traits are the account's ----------------------------------------------------


def test_group_traits_describe_the_account_never_the_person() -> None:
    acme = {"email": "billing@acme.com", "name": "Initech", "plan": "enterprise"}
    reference = store(
        [
            make_event("identify", "i1", T, anonymousId="v1", traits={"name": "Ada"}),
            make_event("group", "g1", T + 1, anonymousId="v1", groupId="acme", traits=acme),
            make_event("group", "g2", T + 2, anonymousId="v2", groupId="acme", traits=acme),
            make_event("track", "o1", T + 3, anonymousId="v1", event="Order Completed"),
        ]
    )
    first, second = (
        customer_of(reference, "anonymous_id:v1"),
        customer_of(reference, "anonymous_id:v2"),
    )
    assert first["id"] != second["id"]  # two visitors, not one customer
    assert "email:billing@acme.com" not in first["identities"]
    assert first["traits"] == {"name": "Ada"}
    assert first["accounts"]["acme"]["traits"] == acme
    assert second["stage"] != "purchase"


def test_a_group_call_carries_no_identifier_from_its_traits() -> None:
    event = make_event("group", "g", T, userId="u", groupId="acme", traits={"email": "a@b.io"})
    assert [i.key() for i in identifiers_of(event)] == ["user_id:u"]


# --- 2. same-millisecond ties do not depend on random ids ------------------------------


@pytest.mark.parametrize("ids", [("a", "b"), ("b", "a")])
def test_same_millisecond_events_settle_by_content_not_message_id(ids: tuple[str, str]) -> None:
    first = make_event("identify", ids[0], T, userId="u", traits={"plan": "free"})
    second = make_event("identify", ids[1], T, userId="u", traits={"plan": "pro"})
    winner = customer_of(store([first, second]), "user_id:u")["traits"]["plan"]
    swapped = make_event("identify", ids[1], T, userId="u", traits={"plan": "free"})
    other = make_event("identify", ids[0], T, userId="u", traits={"plan": "pro"})
    assert customer_of(store([swapped, other]), "user_id:u")["traits"]["plan"] == winner


# --- 3. alias from a former userId ------------------------------------------------------


def test_alias_from_a_former_user_id_is_a_rename_of_one_customer() -> None:
    reference = store(
        [make_event("track", "o", T, userId="old-id", event="Order Completed")],
        [make_event("alias", "a", T + 5, userId="new-id", previousId="old-id")],
    )
    renamed = customer_of(reference, "user_id:new-id")
    assert "user_id:old-id" in renamed["identities"]
    assert renamed["stage"] == "purchase"
    assert renamed["identities"][0] == "user_id:new-id"


def test_alias_from_an_anonymous_id_still_links_the_visitor() -> None:
    reference = store(
        [make_event("page", "p", T, anonymousId="anon-1")],
        [make_event("alias", "a", T + 5, userId="u-1", previousId="anon-1")],
    )
    assert "anonymous_id:anon-1" in customer_of(reference, "user_id:u-1")["identities"]


def test_a_rename_does_not_lift_the_limit_for_anyone_else() -> None:
    reference = store(
        [
            make_event("identify", "1", T, userId="a", anonymousId="shared"),
            make_event("alias", "2", T + 1, userId="b", previousId="a"),
            make_event("identify", "3", T + 2, userId="c", anonymousId="shared"),
        ]
    )
    assert "user_id:c" not in customer_of(reference, "user_id:b")["identities"]
    assert customer_of(reference, "user_id:c")["id"] != customer_of(reference, "user_id:a")["id"]


# --- 4. phones ---------------------------------------------------------------------------


def test_phones_in_any_format_are_one_identifier_with_a_region() -> None:
    assert normalize_phone("020 7946 0123", "GB") == "+442079460123"
    assert normalize_phone("+44 20 7946 0123") == "+442079460123"
    assert normalize_phone("0044 (20) 7946-0123") == "+442079460123"
    query = identifier_from_query("020 7946 0123", "phone", region="GB")
    assert query is not None and query.value == "+442079460123"


def test_a_national_number_without_a_region_is_kept_apart_not_guessed() -> None:
    assert normalize_phone("020 7946 0123") == "02079460123"


def test_emails_are_trimmed_and_lower_cased() -> None:
    event = make_event("identify", "i", T, userId="u", traits={"email": "  Ada@Example.COM "})
    assert "email:ada@example.com" in [i.key() for i in identifiers_of(event)]


# --- 5. source trust ---------------------------------------------------------------------


def test_a_browser_key_cannot_backdate_or_claim_a_server_channel() -> None:
    event = browser(
        {
            "type": "identify",
            "userId": "victim",
            "anonymousId": "attacker",
            "timestamp": "2099-01-01T00:00:00Z",
            "context": {"channel": "server"},
        }
    )
    assert parse_time(event["timestamp"], "t") == NOW + timedelta(minutes=5)
    assert event["context"]["channel"] == "web" and event["trust"] == "browser"
    old = browser({"type": "track", "event": "X", "userId": "u", "timestamp": "1971-01-01T00:00Z"})
    assert parse_time(old["timestamp"], "t") == NOW - timedelta(days=7)


def test_a_client_cannot_claim_server_trust_in_the_event() -> None:
    event = browser({"type": "track", "event": "X", "userId": "u", "trust": "server"})
    assert event["trust"] == "browser"


def test_browser_traits_never_overwrite_what_a_server_key_set() -> None:
    at = NOW.isoformat()
    later = (NOW + timedelta(minutes=1)).isoformat()
    named = server(
        {"type": "identify", "userId": "victim", "traits": {"name": "Ada"}, "timestamp": at}
    )
    pwned = browser(
        {
            "type": "identify",
            "userId": "victim",
            "traits": {"name": "PWNED", "x": 1},
            "timestamp": later,
        }
    )
    profile = customer_of(store([named, pwned]), "user_id:victim")
    assert profile["traits"] == {"name": "Ada", "x": 1}


def test_a_browser_key_cannot_take_an_email_a_server_key_tied_to_someone_else() -> None:
    victim = server(
        {
            "type": "identify",
            "userId": "victim",
            "traits": {"email": "v@x.io"},
            "timestamp": NOW.isoformat(),
        }
    )
    attacker = browser(
        {
            "type": "identify",
            "userId": "attacker",
            "traits": {"email": "v@x.io"},
            "timestamp": "1971-01-01T00:00:00Z",
        }
    )
    reference = store([attacker], [victim])
    assert "email:v@x.io" in customer_of(reference, "user_id:victim")["identities"]
    assert "email:v@x.io" not in customer_of(reference, "user_id:attacker")["identities"]


def test_unverified_identifies_tie_nothing_when_verification_is_on() -> None:
    claim = {"type": "identify", "userId": "victim", "anonymousId": "attacker-anon"}
    event = browser(claim, secret="s3cret")
    assert event["verified"] is False
    assert [i.key() for i in identifiers_of(event)] == ["anonymous_id:attacker-anon"]
    good = hmac.new(b"s3cret", b"victim", hashlib.sha256).hexdigest()
    signed = browser({**claim, "context": {"userHash": good}}, secret="s3cret")
    assert "verified" not in signed
    assert "user_id:victim" in [i.key() for i in identifiers_of(signed)]
    with pytest.raises(InvalidEvent) as caught:
        browser({"type": "identify", "userId": "victim"}, secret="s3cret")
    assert caught.value.code == "unverified"


def test_rudderstack_top_level_channel_is_used() -> None:
    event = server({"type": "track", "event": "X", "userId": "u", "channel": "server"})
    assert event["context"]["channel"] == "server"


# --- stable customer ids -----------------------------------------------------------------


def test_a_late_older_event_does_not_change_an_identified_customers_id() -> None:
    reference = store([make_event("identify", "i", T, userId="u", anonymousId="a")])
    before = customer_of(reference, "user_id:u")["id"]
    reference.apply_batch([make_event("identify", "late", T - 10**9, userId="u", anonymousId="b")])
    assert customer_of(reference, "user_id:u")["id"] == before
