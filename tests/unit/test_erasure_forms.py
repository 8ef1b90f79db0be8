"""Erasure markers and the forms an erasure searches for (pure)."""

from __future__ import annotations

from touchpath.erasure import Marks, erasure_mark, former_customer_ids, forms_of, names_erased
from touchpath.identity import customer_id


def test_marks_are_keyed_hashes_not_the_identifier() -> None:
    mark = erasure_mark(b"key-1", "email:ada@example.com")
    assert len(mark) == 32 and "ada" not in mark
    assert mark != erasure_mark(b"key-2", "email:ada@example.com")
    assert Marks(lambda: b"key-1")(["email:ada@example.com"]) == [mark]


def test_forms_find_an_email_in_any_case_and_a_phone_in_any_spelling() -> None:
    forms = forms_of(["email:ada@example.com", "phone:+442079460958", "user_id:7"])
    assert forms.mentioned_in('x\x1f"ADA@Example.COM"')
    assert forms.mentioned_in('"https://shop.example/?c=ada@example.com"')
    assert forms.mentioned_in('"+44 20 7946 0958"') and forms.mentioned_in("442079460958")
    assert forms.mentioned_in('"7"')  # other kinds: the exact value only
    assert not forms.mentioned_in('"17 apples"') and not forms.mentioned_in('"bob@example.com"')


def test_former_customer_ids_and_changes_naming_the_erased() -> None:
    cids = former_customer_ids(["user_id:a", "email:a@example.com"])
    assert customer_id(["user_id:a"], {}) in cids and len(cids) == 2
    assert names_erased({"customer_id": "cus_x", "merged_from": [cids[0]]}, set(), set(cids))
    assert names_erased({"identities": ["user_id:a"]}, {"user_id:a"}, set())
    assert not names_erased({"customer_id": "cus_x", "identities": ["user_id:b"]}, {"a"}, set())
