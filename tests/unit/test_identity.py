"""Identity resolution: extraction, junk filter, merge protection, determinism."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from touchpath.identifiers import Identifier, identifiers_of, is_junk, normalize_email
from touchpath.identity import (
    TIE_SEPARATOR,
    IdentityPolicy,
    customer_id,
    order_key,
    resolve,
    resolve_with_limits,
    tie_key,
)

POLICY = IdentityPolicy()


def test_identify_ties_anonymous_id_to_user_id() -> None:
    ids = identifiers_of(
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "traits": {"email": " Ada@Example.COM "},
        }
    )
    assert ids == [
        Identifier("user_id", "u1"),
        Identifier("email", "ada@example.com"),
        Identifier("anonymous_id", "a1"),
    ]


def test_alias_ties_previous_id() -> None:
    ids = identifiers_of({"type": "alias", "userId": "u1", "previousId": "anon-1"})
    assert Identifier("anonymous_id", "anon-1") in ids and Identifier("user_id", "u1") in ids


def test_external_ids_are_typed() -> None:
    ids = identifiers_of(
        {
            "type": "track",
            "anonymousId": "a",
            "context": {
                "externalIds": [
                    {"id": "v-9", "type": "Intercom User", "collection": "users"},
                    {"id": "null", "type": "zendesk"},
                ]
            },
        }
    )
    assert Identifier("ext:intercom_user", "v-9") in ids
    assert all(i.kind != "ext:zendesk" for i in ids)


def test_junk_values_never_become_identities() -> None:
    for junk in [
        "null",
        "undefined",
        "anonymous",
        "0",
        "-1",
        "[object Object]",
        "",
        "  ",
        "00000000-0000-0000-0000-000000000000",
        "NULL",
        "None",
    ]:
        assert is_junk(junk), junk
        assert identifiers_of({"type": "track", "userId": junk, "anonymousId": junk}) == []
    assert normalize_email("null@") is None


def test_one_user_id_per_customer_refuses_shared_device_merge() -> None:
    # a shared device: one anonymous id, two people logging in on it
    ties = {
        tie_key([Identifier("user_id", "alice"), Identifier("anonymous_id", "dev")]): order_key(
            1000, "m1"
        ),
        tie_key([Identifier("user_id", "bob"), Identifier("anonymous_id", "dev")]): order_key(
            2000, "m2"
        ),
    }
    result = resolve([], ties, POLICY)
    groups = sorted(sorted(c) for c in result.customers)
    assert groups == [["anonymous_id:dev", "user_id:alice"], ["user_id:bob"]]
    assert len(result.refused) == 1 and "user_id" in result.refused[0].reason


def test_refused_tie_depends_on_event_time_not_arrival() -> None:
    ties_a = {
        tie_key([Identifier("user_id", "bob"), Identifier("anonymous_id", "dev")]): order_key(
            500, "m2"
        ),
        tie_key([Identifier("user_id", "alice"), Identifier("anonymous_id", "dev")]): order_key(
            1000, "m1"
        ),
    }
    result = resolve([], ties_a, POLICY)
    assert frozenset({"anonymous_id:dev", "user_id:bob"}) in result.customers


identifier_keys = st.sampled_from(
    [f"user_id:u{i}" for i in range(4)]
    + [f"anonymous_id:a{i}" for i in range(6)]
    + [f"email:e{i}@x.io" for i in range(3)]
)
ties_strategy = st.dictionaries(
    st.lists(identifier_keys, min_size=2, max_size=3, unique=True).map(
        lambda ks: tie_key(Identifier.parse(k) for k in ks)
    ),
    st.tuples(st.integers(0, 10_000), st.text("abc", min_size=1, max_size=3)).map(
        lambda t: order_key(*t)
    ),
    max_size=12,
)


@given(ties_strategy, st.integers(1, 3))
def test_limits_are_never_exceeded_and_every_identifier_has_one_customer(
    ties: dict[str, str], user_limit: int
) -> None:
    policy = IdentityPolicy(limits={"user_id": user_limit, "email": 2, "anonymous_id": 3})
    result = resolve([], ties, policy)
    members = [k for c in result.customers for k in c]
    assert len(members) == len(set(members))
    assert set(members) == {k for t in ties for k in t.split(TIE_SEPARATOR)}
    renamed = _renamed_user_ids(ties)
    for customer in result.customers:
        kinds = Counter(Identifier.parse(k).kind for k in customer)
        people = {renamed.get(k, k) for k in customer if k.startswith("user_id:")}
        assert len(people) <= user_limit and kinds["email"] <= 2  # a rename is one person
        assert kinds["anonymous_id"] <= 3


def _renamed_user_ids(ties: dict[str, str]) -> dict[str, str]:
    """Each user id to a representative of the user ids renames join (alias ties hold two)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for tie in ties:
        users = [k for k in tie.split(TIE_SEPARATOR) if k.startswith("user_id:")]
        for other in users[1:]:
            parent[find(other)] = find(users[0])
    return {key: find(key) for key in parent} | {v: find(v) for v in parent.values()}


@given(ties_strategy)
def test_without_limits_customers_are_the_connected_components(ties: dict[str, str]) -> None:
    result = resolve([], ties, IdentityPolicy(limits={}))
    assert not result.refused
    for tie in ties:
        keys = tie.split(TIE_SEPARATOR)
        assert sum(1 for c in result.customers if set(keys) <= c) == 1


@given(ties_strategy, st.randoms())
def test_resolution_ignores_the_order_ties_are_given_in(ties: dict[str, str], rnd) -> None:
    items = list(ties.items())
    rnd.shuffle(items)
    assert resolve([], dict(items), POLICY) == resolve([], ties, POLICY)


@given(ties_strategy, st.lists(identifier_keys, max_size=4), st.integers(1, 3))
def test_fast_path_within_limits_agrees_with_the_general_resolution(
    ties: dict[str, str], lone: list[str], user_limit: int
) -> None:
    policy = IdentityPolicy(limits={"user_id": user_limit, "email": 3, "anonymous_id": 6})
    assert resolve(lone, ties, policy) == resolve_with_limits(lone, ties, policy)


def test_customer_id_follows_the_strongest_identifier_whatever_arrives_late() -> None:
    first_seen = {"user_id:u": order_key(5, "n"), "anonymous_id:b": order_key(9, "o")}
    identified = customer_id(["user_id:u", "anonymous_id:b"], first_seen)
    assert identified == customer_id(["user_id:u"], first_seen)
    # a backdated event brings an identifier seen "earlier": the id does not move
    late = {**first_seen, "anonymous_id:attacker": order_key(1, "m")}
    assert customer_id(["user_id:u", "anonymous_id:b", "anonymous_id:attacker"], late) == identified
    # anonymous customers: the earliest anonymous id
    assert customer_id(["anonymous_id:b", "anonymous_id:attacker"], late) == customer_id(
        ["anonymous_id:attacker"], late
    )
