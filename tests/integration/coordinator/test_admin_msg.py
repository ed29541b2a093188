"""Admin ForceAbort of a prepared MSG decides through the check-back, never blind (issue 9 item 2).

Real coordinator (SQLite and MariaDB) and a real participant whose database is also the initiator's:
its local transaction runs through the barrier that its ``QueryPrepared`` check-back reads and fences.
"""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from meshkit.barrier import MessageRolledBack
from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.initiator import Msg, msg
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, admin_metadata, wait_final
from tests.integration.coordinator.participants import Bank, apply_to_account, payload


async def debit_local(session: AsyncSession) -> str:
    await apply_to_account(session, "local", -5, 0)
    return "done"


async def prepared(coordinator: RunningCoordinator, bank: Bank, gid: str) -> Msg:
    """A MSG prepared with a long timeout: only an operator makes the coordinator ask the check-back."""
    message = msg(coordinator.stub, gid=gid, query_prepared=bank.target("QueryPrepared"), timeout_ms=600_000)
    message.add(bank.target("Action"), payload("x", 5))
    await message.prepare()
    return message


async def force_abort(coordinator: RunningCoordinator, gid: str) -> pb.Transaction:
    request = pb.AdminActionRequest(gid=gid, reason="customer gave up", actor="oncall")
    reply: pb.AdminActionResponse = await coordinator.admin.ForceAbort(request, metadata=admin_metadata())
    return reply.transaction


async def test_item2_force_abort_prepared_msg_fences_the_late_local_transaction(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    message = await prepared(coordinator, bank, gid)
    tx = await force_abort(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert bank.calls_of(gid)[("00", "msg")] == 1  # decided by the check-back, which wrote the rollback row
    assert ("oncall", "force abort (asks the check-back): customer gave up") in [
        (e.actor, e.detail) for e in tx.history if e.kind == "admin"
    ]
    # The initiator's local transaction arrives late: the barrier refuses it, nothing is debited.
    with pytest.raises(MessageRolledBack):
        await message.do_and_submit(bank.barrier, debit_local)
    assert await bank.balance("local") == (0, 0)
    assert (await coordinator.query(gid)).status == pb.STATUS_FAILED
    assert ("01", "action") not in bank.calls_of(gid)


async def test_item2_force_abort_with_the_check_back_down_changes_nothing(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    message = await prepared(coordinator, bank, gid)
    bank.fail("QueryPrepared", grpc.StatusCode.UNAVAILABLE, times=1, gid=gid)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await force_abort(coordinator, gid)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "check-back could not be reached" in (refused.value.details() or "")
    tx = await coordinator.query(gid)
    assert tx.status == pb.STATUS_PREPARED
    # Nothing was decided: the initiator can still commit and send its message.
    assert await message.do_and_submit(bank.barrier, debit_local, wait=True) == "done"
    assert (await wait_final(coordinator, gid)).status == pb.STATUS_SUCCEEDED
    assert await bank.balance("x") == (5, 0)


async def test_item2_force_abort_after_the_local_commit_sends_the_message(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await prepared(coordinator, bank, gid)
    ctx = TxContext(gid=gid, branch_id="00", op=Op.MSG, mode=TxMode.MSG)
    await bank.barrier.call(ctx, debit_local)  # committed; then the initiator crashed before Submit
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await force_abort(coordinator, gid)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "local transaction committed, so the message was sent instead" in (refused.value.details() or "")
    assert (await wait_final(coordinator, gid)).status == pb.STATUS_SUCCEEDED
    assert await bank.balance("x") == (5, 0)


async def test_item2_force_abort_of_a_paused_msg_calls_no_branch_before_resume(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await prepared(coordinator, bank, gid)
    ctx = TxContext(gid=gid, branch_id="00", op=Op.MSG, mode=TxMode.MSG)
    await bank.barrier.call(ctx, debit_local)  # committed; then the initiator crashed before Submit
    await admin(coordinator, "PauseRetry", gid)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await force_abort(coordinator, gid)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "message will be sent once resumed" in (refused.value.details() or "")
    # The decision is recorded (the check-back was asked once), but paused means no branch call.
    await asyncio.sleep(0.5)
    tx = await coordinator.query(gid)
    assert tx.status == pb.STATUS_SUBMITTED and tx.retry_paused
    assert bank.calls_of(gid) == {("00", "msg"): 1}
    view = await coordinator.runtime.store.get(gid)
    assert view is not None and view.owner is None  # released: nobody drives it while paused
    await admin(coordinator, "ResumeRetry", gid)
    assert (await wait_final(coordinator, gid)).status == pb.STATUS_SUCCEEDED
    assert bank.calls_of(gid) == {("00", "msg"): 1, ("01", "action"): 1}
    assert await bank.balance("x") == (5, 0)


async def admin(coordinator: RunningCoordinator, rpc: str, gid: str) -> None:
    request = pb.AdminActionRequest(gid=gid, reason="ops", actor="oncall")
    await getattr(coordinator.admin, rpc)(request, metadata=admin_metadata())
