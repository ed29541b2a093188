"""stock_svc's Audit reports net sales per SKU and logged order ids, so that ``meshctl audit`` compares
orders only with the sales it can attribute to them. Real Redis, SQLite and MariaDB."""

from __future__ import annotations

import uuid

from meshpb.common.v1 import common_pb2
from tests.integration.stock.harness import RunningStock


async def test_audit_reports_net_sales_per_sku_and_order_ids(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 10)
    await stock.branch("TryReserve", gid, [("apple", 3), ("pear", 1)], order_ids=["o-1", "o-2"])
    await stock.branch("ConfirmReserve", gid, [("apple", 3), ("pear", 1)], order_ids=["o-1", "o-2"])
    await stock.release(uuid.uuid4().hex, [("apple", 3)], order_id="o-1")
    other = uuid.uuid4().hex  # another initiator, naming no order
    await stock.branch("TryReserve", other, [("apple", 2)], order_ids=[])
    await stock.branch("ConfirmReserve", other, [("apple", 2)], order_ids=[])

    reply = await stock.stub.Audit(common_pb2.AuditRequest())
    rows = [(r.sku, list(r.order_ids), r.sold) for r in reply.sold_by_ref]
    assert rows == [
        ("apple", [], 2),
        ("apple", ["o-1"], -3),
        ("apple", ["o-1", "o-2"], 3),
        ("pear", ["o-1", "o-2"], 1),
    ]
    sold = {a.sku: a.db_sold for a in reply.skus}
    assert sold == {"apple": sum(r[2] for r in rows if r[0] == "apple"), "pear": 1}
