"""Issue 15 item 4: two concurrent TryCreate of the same new order id under different gids.

Both may find the id free and insert it; the unique key lets one in. The other must answer ABORTED naming
the order id (never INTERNAL), and leave no trace. Real order_svc on SQLite and MariaDB.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc

from meshkit.tx.context import Op
from tests.integration.order.harness import RunningOrder, orders_branch

ROUNDS = 12


def gid() -> str:
    return f"test-{uuid.uuid4().hex}"


async def outcome(order: RunningOrder, payload: object, g: str) -> str:
    """``applied``, or the status code name and details of the refusal."""
    try:
        return str((await order.branch("TryCreate", payload, g, Op.TRY)).note)
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"


async def test_issue15_item4_concurrent_try_create_same_order_id_aborts_the_loser(
    order: RunningOrder,
) -> None:
    for round_no in range(ROUNDS):  # the race is not hit every time; each round must end right
        await one_race(order, round_no)


async def one_race(order: RunningOrder, round_no: int) -> None:
    """Two gids try the same new order id at once: one applies, the other is ABORTED naming the id."""
    payload = orders_branch(f"u-race-{round_no}", ("m-1", [("a", 1, 100)]))
    order_id = payload.orders[0].order_id
    first, second = gid(), gid()

    results = await asyncio.gather(outcome(order, payload, first), outcome(order, payload, second))

    assert sorted(r == "applied" for r in results) == [False, True], results
    refused = next(r for r in results if r != "applied")
    assert refused.startswith("ABORTED: "), refused
    assert f"order_id {order_id}" in refused, refused
    won = first if results[0] == "applied" else second
    repo = order.runtime.service.repo
    async with repo.transaction() as session:
        stored = await repo.get(session, order_id, with_items=False)
    assert stored is not None and stored.gid == won
    assert await order.transitions(order_id) == [(None, "PENDING")]
