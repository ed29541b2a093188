"""Gateway callback signatures: HMAC-SHA256 over a canonical string, lowercase hex.

Canonical string (the business contract):
``payment_id|order_id|amount_cents|trade_no|status|timestamp_ms|nonce`` with ``status`` the protobuf
enum name (e.g. ``PAYMENT_STATUS_SUCCEEDED``). Fields never contain ``|`` (the validation refuses it),
so the string is unambiguous.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SIGNATURE_HEX_LEN = 64


@dataclass(frozen=True, slots=True)
class SignedFields:
    """The fields a callback signature covers."""

    payment_id: str
    order_id: str
    amount_cents: int
    trade_no: str
    status_name: str
    timestamp_ms: int
    nonce: str

    def canonical(self) -> str:
        """The string that is signed."""
        return "|".join(
            (
                self.payment_id,
                self.order_id,
                str(self.amount_cents),
                self.trade_no,
                self.status_name,
                str(self.timestamp_ms),
                self.nonce,
            )
        )


def sign(secret: str, fields: SignedFields) -> str:
    """The lowercase hex HMAC-SHA256 of ``fields`` under ``secret``."""
    return hmac.new(secret.encode(), fields.canonical().encode(), hashlib.sha256).hexdigest()


def signature_matches(secret: str, fields: SignedFields, signature: str) -> bool:
    """True when ``signature`` is the signature of ``fields`` (constant-time); never with an empty secret."""
    if not secret:
        return False
    expected = sign(secret, fields)
    return hmac.compare_digest(expected.encode(), signature.encode())
