"""Credentials in URLs are masked wherever they are shown."""

from __future__ import annotations

from touchpath.secrets import mask_text, mask_url
from touchpath.webhooks import Subscription


def test_mask_url_hides_passwords_and_secret_parameters() -> None:
    masked = mask_url("https://crm:hunter2@crm.example/hook?api_key=abc123&plan=pro&token=t0k")
    assert "hunter2" not in masked and "abc123" not in masked and "t0k" not in masked
    assert masked.startswith("https://crm:***@crm.example/hook?") and "plan=pro" in masked
    assert mask_url("https://crm.example/hook") == "https://crm.example/hook"
    assert "s3cr3t" not in mask_url("https://s3cr3t@crm.example/")


def test_subscription_listing_and_errors_are_masked() -> None:
    sub = Subscription("sub_1", "https://u:pw-9@crm.example/h?secret=x1", "whsec_x")
    assert "pw-9" not in str(sub.public()) and "x1" not in str(sub.public())
    assert "pw-9" not in mask_text("ConnectError: https://u:pw-9@crm.example/h failed")
