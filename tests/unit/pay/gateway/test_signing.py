"""Callback signatures: the contract's canonical string and HMAC-SHA256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from pay_svc.gateway.signing import SignedFields, sign, signature_matches

FIELDS = SignedFields(
    payment_id="123",
    order_id="o-1",
    amount_cents=4200,
    trade_no="gw-9",
    status_name="PAYMENT_STATUS_SUCCEEDED",
    timestamp_ms=1_800_000_000_000,
    nonce="abc",
)


def test_canonical_string_is_the_contract_order() -> None:
    assert FIELDS.canonical() == "123|o-1|4200|gw-9|PAYMENT_STATUS_SUCCEEDED|1800000000000|abc"


def test_signature_is_lowercase_hex_hmac_sha256() -> None:
    expected = hmac.new(b"k", b"123|o-1|4200|gw-9|PAYMENT_STATUS_SUCCEEDED|1800000000000|abc", hashlib.sha256)

    assert sign("k", FIELDS) == expected.hexdigest()
    assert signature_matches("k", FIELDS, expected.hexdigest())


def test_wrong_key_or_changed_field_does_not_match() -> None:
    good = sign("k", FIELDS)
    changed = replace(FIELDS, amount_cents=4201)

    assert not signature_matches("other", FIELDS, good)
    assert not signature_matches("k", changed, good)
    assert not signature_matches("k", FIELDS, good.upper())


def test_empty_secret_never_matches() -> None:
    assert not signature_matches("", FIELDS, sign("", FIELDS))
