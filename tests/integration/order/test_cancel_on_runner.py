"""The cancel chain on the store runner (SQLite and MariaDB): the order's transition and the MSG barrier
row of branch ``00`` commit in one unit, which the coordinator's check-back sees.
"""

from __future__ import annotations

import uuid

from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.order.v1 import order_pb2 as pb
from order_svc.orders.states import OrderState
from tests.integration.order.harness import RunningOrder, orders_branch


async def test_cancel_of_a_created_order_commits_the_order_and_its_msg_barrier_row(
    order: RunningOrder,
) -> None:
    payload = orders_branch(f"u-{uuid.uuid4().hex[:6]}", ("m-1", [("a", 2, 100)]))
    gid = f"test-{uuid.uuid4().hex}"
    await order.branch("TryCreate", payload, gid, Op.TRY)
    await order.branch("ConfirmCreate", payload, gid, Op.CONFIRM)
    order_id = str(payload.orders[0].order_id)

    info = await order.stub.Cancel(pb.CancelRequest(order_id=order_id, reason="changed my mind"))

    assert info.status == pb.ORDER_STATUS_CANCELLED
    last = (await order.history(order_id))[-1]
    assert (last.from_status, last.to_status) == (OrderState.CREATED, OrderState.CANCELLED)
    assert last.reason == "changed my mind"
    assert last.gid.startswith(f"cancel-{order_id}-")
    # The check-back finds the local transaction committed (it raises when it did not).
    check_back = TxContext(gid=last.gid, branch_id="00", op=Op.MSG, mode=TxMode.MSG)
    await order.runtime.service.branches.query_prepared(check_back)
