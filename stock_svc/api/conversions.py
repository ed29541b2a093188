"""Stock messages <-> domain values: the wire forms of levels and audits, and a branch call's inputs."""

from __future__ import annotations

from typing import Any

import grpc.aio

from meshkit.tx.context import TxContext, require_context
from meshpb.stock.v1 import stock_pb2
from stock_svc.stock.domain import SkuAudit, SoldByRef, StockLevel

Context = grpc.aio.ServicerContext[Any, Any]


def tx_context(context: Context) -> TxContext:
    """The ``x-mesh-*`` transaction context of a branch call (``INVALID_ARGUMENT`` when missing)."""
    return require_context(context.invocation_metadata())


def items_of(items: Any) -> list[tuple[str, int]]:
    """``(sku, quantity)`` pairs of a request's repeated items, unchecked (the domain validates)."""
    return [(item.sku, item.quantity) for item in items]


def level_pb(level: StockLevel) -> stock_pb2.StockLevel:
    """The wire form of a SKU's stock level."""
    return stock_pb2.StockLevel(
        sku=level.sku,
        available=level.available,
        reserved=level.reserved,
        sold=level.sold,
        merchant_id=level.merchant_id,
        price_cents=level.price_cents,
    )


def audit_pb(sku: SkuAudit) -> stock_pb2.SkuAudit:
    """The wire form of one SKU's audit figures."""
    return stock_pb2.SkuAudit(
        sku=sku.sku,
        initial=sku.initial,
        redis_available=sku.redis_available,
        redis_reserved=sku.redis_reserved,
        db_available=sku.db_available,
        db_sold=sku.db_sold,
        redis_loaded=sku.redis_loaded,
    )


def sold_by_ref_pb(row: SoldByRef) -> stock_pb2.SoldByRef:
    """The wire form of one SKU's net sales under one set of order ids."""
    return stock_pb2.SoldByRef(sku=row.sku, order_ids=list(row.order_ids), sold=row.sold)
