"""The stock service's tables (created by ``migrations/versions``, not by this module).

* ``stock_sku`` - one row per SKU: its merchant and price, and the durable stock. ``available`` is stock
  not yet sold (it still includes units reserved in Redis; a reservation only reaches the database on
  confirm), ``sold`` the persisted sales, ``initial`` every unit ever put. ``version`` grows with every
  change of ``available``; the Redis copy remembers the version it was loaded at
  (see :mod:`stock_svc.hot.redis_stock`).
* ``stock_log`` - one row per ``(gid, branch, sku, kind)`` for each persisted change made by a branch:
  ``confirm`` (a reservation became a sale) and ``release`` (a sale given back by the cancel chain).
* ``stock_restock`` - one row per PutSku ``request_id``, written in the transaction that changed the SKU:
  what it asked for (a retry must ask the same), the ``stock_sku.version`` it produced, and whether its
  Redis half is done (``redis_done``; the reconciler applies the halves still owed).
* ``stock_redis_epoch`` - one row per Redis epoch (the random id in ``{<namespace>}:epoch``) this service
  has seen: when first seen, and ``lost_at`` when it replaced an earlier one, i.e. when the Redis data
  was found lost (see :mod:`stock_svc.hot.epoch`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from meshkit.barrier.table import BRANCH_LEN, GID_LEN

SKU_LEN = 64
MERCHANT_LEN = 64
KIND_LEN = 16
REQUEST_ID_LEN = 64
EPOCH_LEN = 32

KIND_CONFIRM = "confirm"
KIND_RELEASE = "release"

metadata = MetaData()

stock_sku = Table(
    "stock_sku",
    metadata,
    Column("sku", String(SKU_LEN), primary_key=True),
    Column("merchant_id", String(MERCHANT_LEN), nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("initial", BigInteger, nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("sold", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch ms, injected clock
    Column("updated_at", BigInteger, nullable=False),
)

stock_log = Table(
    "stock_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("gid", String(GID_LEN), nullable=False),
    Column("branch_id", String(BRANCH_LEN), nullable=False),
    Column("sku", String(SKU_LEN), nullable=False),
    Column("kind", String(KIND_LEN), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),  # stock_sku.version this change produced
    Column("order_ids", Text, nullable=False),  # comma-separated
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("gid", "branch_id", "sku", "kind", name="uq_stock_log_branch_sku"),
    Index("ix_stock_log_sku", "sku", "id"),
)

stock_restock = Table(
    "stock_restock",
    metadata,
    Column("request_id", String(REQUEST_ID_LEN), primary_key=True),
    Column("sku", String(SKU_LEN), nullable=False),
    Column("merchant_id", String(MERCHANT_LEN), nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),  # stock_sku.version this restock produced
    Column("redis_done", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("done_at", BigInteger, nullable=True),
    Index("ix_stock_restock_owed", "redis_done", "created_at"),
)

stock_redis_epoch = Table(
    "stock_redis_epoch",
    metadata,
    Column("epoch", String(EPOCH_LEN), primary_key=True),
    Column("first_seen_at", BigInteger, nullable=False),  # epoch ms, injected clock
    Column("lost_at", BigInteger, nullable=True),  # set when this epoch replaced a lost one
)
