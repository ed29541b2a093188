"""pay_svc's tables (created by ``pay_svc/migrations``, not by this module).

* ``payments`` - one per order (UNIQUE ``order_id``); ``next_notify_at`` is set while order_svc still
  has to be told of a SUCCEEDED payment (the notifier's work list) and NULL otherwise.
* ``refunds`` - UNIQUE ``out_refund_no`` (idempotency key) and UNIQUE ``payment_id`` (a payment is
  refunded at most once).
* ``callback_nonces`` - nonces of accepted callbacks until they expire (replays are refused).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table

# Pass to meshkit.infra.migrate.upgrade(engine, "pay", VERSIONS_DIR).
VERSIONS_DIR = Path(__file__).resolve().parents[1] / "migrations" / "versions"

ID_LEN = 64
STATUS_LEN = 16
TOKEN_LEN = 64
REASON_LEN = 256
GID_LEN = 128

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    Column("payment_id", BigInteger, primary_key=True, autoincrement=False),
    Column("order_id", String(ID_LEN), nullable=False, unique=True),
    Column("user_id", String(ID_LEN), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("channel", String(STATUS_LEN), nullable=False),
    Column("status", String(STATUS_LEN), nullable=False),
    Column("token", String(TOKEN_LEN), nullable=False),
    Column("trade_no", String(ID_LEN), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch ms, injected clock
    Column("paid_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("order_notified", Boolean, nullable=False),
    Column("next_notify_at", BigInteger, nullable=True),
    Column("notify_attempts", Integer, nullable=False),
    Column("closed_by", String(ID_LEN), nullable=False),
    Index("ix_payments_next_notify_at", "next_notify_at"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_id", BigInteger, primary_key=True, autoincrement=False),
    Column("out_refund_no", String(ID_LEN), nullable=False, unique=True),
    Column("payment_id", BigInteger, ForeignKey("payments.payment_id"), nullable=False, unique=True),
    Column("order_id", String(ID_LEN), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("reason", String(REASON_LEN), nullable=False),
    Column("gid", String(GID_LEN), nullable=False),  # the transaction that asked for it ('' = none)
    Column("created_at", BigInteger, nullable=False),
)

callback_nonces = Table(
    "callback_nonces",
    metadata,
    Column("nonce", String(ID_LEN), primary_key=True),
    Column("payment_id", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_callback_nonces_expires_at", "expires_at"),
)
