"""The flash sale tables (created by the ``order`` component's migrations, revision ``order_0002``).

* ``flash_sales`` - flash sales (immutable terms: SKU, merchant, price, quantity, window, per-user limit).
* ``flash_tickets`` - one row per successful FlashBuy: its job's state (``pending`` / ``succeeded`` /
  ``failed``), the order it made or the reason it failed, whether its job was queued and whether a failed
  ticket's quota was given back in Redis.

Times are epoch milliseconds from the injected clock.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, SmallInteger, String, Table

from order_svc.orders.tables import ID_LEN, ORDER_ID_LEN, REASON_LEN, REQUEST_ID_LEN, STATUS_LEN, metadata

SALE_ID_LEN = 64
TICKET_LEN = 64

flash_sales = Table(
    "flash_sales",
    metadata,
    Column("sale_id", String(SALE_ID_LEN), primary_key=True),
    Column("sku", String(ID_LEN), nullable=False),
    Column("merchant_id", String(ID_LEN), nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("per_user_limit", Integer, nullable=False),
    Column("starts_at", BigInteger, nullable=False),
    Column("ends_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

flash_tickets = Table(
    "flash_tickets",
    metadata,
    Column("ticket", String(TICKET_LEN), primary_key=True),
    Column("request_id", String(REQUEST_ID_LEN), nullable=False),
    Column("sale_id", String(SALE_ID_LEN), nullable=False),
    Column("user_id", String(ID_LEN), nullable=False),
    Column("sku", String(ID_LEN), nullable=False),
    Column("merchant_id", String(ID_LEN), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("state", String(STATUS_LEN), nullable=False),
    Column("order_id", String(ORDER_ID_LEN), nullable=True),
    Column("reason", String(REASON_LEN), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("queued", SmallInteger, nullable=False),
    Column("returned", SmallInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_flash_tickets_sale_state", "sale_id", "state"),
    Index("ix_flash_tickets_state_queued", "state", "queued", "created_at"),
    Index("ix_flash_tickets_state_returned", "state", "returned"),
)
