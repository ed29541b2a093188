"""The order tables (created by the ``order`` component's migrations, see :mod:`order_svc.migrations`).

* ``orders`` - one row per order; ``status`` + ``version`` are the compare-and-set pair of every
  transition; ``paying_gid`` is the pay lock of a points payment in flight.
* ``order_items`` - the lines of an order.
* ``order_history`` - every transition: from, to, reason, actor, gid, at.
* ``order_requests`` - PlaceOrder idempotency: ``request_id`` -> gid, order ids, outcome.

Times are epoch milliseconds from the injected clock.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, SmallInteger, String, Table, Text

ORDER_ID_LEN = 32
ID_LEN = 64
REQUEST_ID_LEN = 128
GID_LEN = 128
PAYMENT_ID_LEN = 128
STATUS_LEN = 16
REASON_LEN = 512
ACTOR_LEN = 128

# The flash tables (:mod:`order_svc.flash.tables`) share this metadata: one schema, one component.
metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(ORDER_ID_LEN), primary_key=True),
    Column("request_id", String(REQUEST_ID_LEN), nullable=False),
    Column("gid", String(GID_LEN), nullable=False),
    Column("user_id", String(ID_LEN), nullable=False),
    Column("merchant_id", String(ID_LEN), nullable=False),
    Column("status", String(STATUS_LEN), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("points_used", BigInteger, nullable=False),
    Column("amount_due_cents", BigInteger, nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("payment_id", String(PAYMENT_ID_LEN), nullable=True),
    Column("paying_gid", String(GID_LEN), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("pay_deadline", BigInteger, nullable=True),
    Column("paid_at", BigInteger, nullable=True),
    Column("reason", String(REASON_LEN), nullable=False),
    Index("ix_orders_user_created", "user_id", "created_at", "order_id"),
    Index("ix_orders_status_deadline", "status", "pay_deadline"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(ORDER_ID_LEN), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(ID_LEN), nullable=False),
    Column("merchant_id", String(ID_LEN), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
)

order_history = Table(
    "order_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("order_id", String(ORDER_ID_LEN), nullable=False),
    Column("from_status", String(STATUS_LEN), nullable=True),
    Column("to_status", String(STATUS_LEN), nullable=False),
    Column("reason", String(REASON_LEN), nullable=False),
    Column("actor", String(ACTOR_LEN), nullable=False),
    Column("gid", String(GID_LEN), nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_order_history_order", "order_id", "id"),
)

order_requests = Table(
    "order_requests",
    metadata,
    Column("request_id", String(REQUEST_ID_LEN), primary_key=True),
    Column("user_id", String(ID_LEN), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("gid", String(GID_LEN), nullable=False),
    Column("order_ids", Text, nullable=False),  # JSON list
    Column("state", String(STATUS_LEN), nullable=False),
    Column("reason", String(REASON_LEN), nullable=False),
    Column("lease_until", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_order_requests_state_lease", "state", "lease_until"),
)
