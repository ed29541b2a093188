"""Two-phase messages through a real coordinator (SQLite and MariaDB store) and a real participant.

The participant's database is also the initiator's: its local transaction runs through the same
barrier that its ``QueryPrepared`` check-back reads.
"""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from meshkit.barrier import MessageRolledBack, RunnerBarrier
from meshkit.errors import BranchFailure
from meshkit.store import Conn, StoreRunner
from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.initiator import CoordinatorClient, msg
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final
from tests.integration.coordinator.participants import Bank, apply_to_account, payload
from tests.integration.creds import AUTH


def ops_by_key(tx: pb.Transaction) -> dict[tuple[str, str], pb.BranchOp]:
    return {(op.branch_id, op.op): op for op in tx.ops}


async def debit_local(session: AsyncSession) -> str:
    await apply_to_account(session, "local", -5, 0)
    return "done"


def local_ctx(gid: str) -> TxContext:
    return TxContext(gid=gid, branch_id="00", op=Op.MSG, mode=TxMode.MSG)


async def prepare(coordinator: RunningCoordinator, bank: Bank, gid: str, **options: object) -> None:
    await coordinator.stub.Prepare(
        pb.PrepareRequest(
            gid=gid,
            mode=pb.MODE_MSG,
            options=pb.TxOptions(**options),
            branches=[
                pb.Branch(branch_id="01", action=bank.target("Action"), payload=payload("x", 5)),
                pb.Branch(branch_id="02", action=bank.target("Action"), payload=payload("y", 5)),
            ],
            query_prepared=bank.target("QueryPrepared"),
        )
    )


async def test_msg_do_and_submit(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        message = msg(client, gid=gid, query_prepared=bank.target("QueryPrepared"))
        message.add(bank.target("Action"), payload("x", 5)).add(bank.target("Action"), payload("y", 5))
        result = await message.do_and_submit(bank.barrier, debit_local, wait=True)
    assert result == "done"
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert await bank.balance("local") == (-5, 0)
    assert await bank.balance("x") == (5, 0)
    assert await bank.balance("y") == (5, 0)
    ops = ops_by_key(tx)
    assert ops[("00", "msg")].status == "skipped"  # no check-back needed
    assert ops[("01", "action")].attempts == 1
    assert ("00", "msg") not in bank.calls_of(gid)


async def test_msg_check_back_ok_submits(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    await prepare(coordinator, bank, gid, timeout_ms=200)
    await bank.barrier.call(local_ctx(gid), debit_local)  # committed, then the initiator "crashed"
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert tx.reason == "check-back: local transaction committed"
    assert ops_by_key(tx)[("00", "msg")].status == "succeeded"
    assert bank.calls_of(gid)[("00", "msg")] == 1
    assert await bank.balance("x") == (5, 0)


async def test_msg_check_back_aborted_fails(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    await prepare(coordinator, bank, gid, timeout_ms=200)
    tx = await wait_final(coordinator, gid)  # no local transaction ever committed
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason == "check-back: local transaction not committed"
    assert ops_by_key(tx)[("00", "msg")].status == "failed"
    assert ("01", "action") not in bank.calls_of(gid)
    assert await bank.balance("x") == (0, 0)


async def test_msg_check_back_ongoing_asks_again(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("QueryPrepared", grpc.StatusCode.FAILED_PRECONDITION, times=2, gid=gid)
    await prepare(coordinator, bank, gid, timeout_ms=200, retry_interval_ms=30)
    await bank.barrier.call(local_ctx(gid), debit_local)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    check = ops_by_key(tx)[("00", "msg")]
    assert (check.status, check.attempts) == ("succeeded", 3)


async def test_msg_local_transaction_refused_after_failing_check_back(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        message = msg(client, gid=gid, query_prepared=bank.target("QueryPrepared"), timeout_ms=200)
        message.add(bank.target("Action"), payload("x", 5))
        await message.prepare()
        tx = await wait_final(coordinator, gid)  # the initiator is too slow: the check-back rolls back
        assert tx.status == pb.STATUS_FAILED
        # The local transaction arrives late: the barrier refuses it, and the message stays failed.
        with pytest.raises(MessageRolledBack):
            await message.do_and_submit(bank.barrier, debit_local)
    assert await bank.balance("local") == (0, 0)
    assert (await coordinator.query(gid)).status == pb.STATUS_FAILED


async def test_msg_local_business_failure_aborts(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async def refuse(session: AsyncSession) -> None:
        await apply_to_account(session, "local", -5, 0)
        raise BranchFailure("insufficient funds")

    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        message = msg(client, gid=gid, query_prepared=bank.target("QueryPrepared"))
        message.add(bank.target("Action"), payload("x", 5))
        with pytest.raises(BranchFailure):
            await message.do_and_submit(bank.barrier, refuse)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert "insufficient funds" in tx.reason
    assert await bank.balance("local") == (0, 0)
    assert bank.calls_of(gid) == {}


async def test_msg_branch_retried_until_success_stuck_past_limit(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.ABORTED, times=3, gid=gid, branch="02")
    await prepare(coordinator, bank, gid, retry_interval_ms=20, retry_limit=2)
    await bank.barrier.call(local_ctx(gid), debit_local)
    await coordinator.stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_MSG))
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED  # a MSG branch is called until it succeeds
    assert tx.stuck
    assert ops_by_key(tx)[("02", "action")].attempts == 4
    assert await bank.balance("y") == (5, 0)


async def test_msg_prepare_with_other_branches_refused(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await prepare(coordinator, bank, gid)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await coordinator.stub.Prepare(
            pb.PrepareRequest(
                gid=gid,
                mode=pb.MODE_MSG,
                branches=[pb.Branch(branch_id="01", action=bank.target("Action"), payload=payload("x", 6))],
                query_prepared=bank.target("QueryPrepared"),
            )
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "different branches" in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coordinator.stub.Prepare(
            pb.PrepareRequest(
                gid=gid + "x",
                mode=pb.MODE_MSG,
                branches=[
                    pb.Branch(branch_id="01", action=bank.target("Action"), cancel=bank.target("Compensate"))
                ],
                query_prepared=bank.target("QueryPrepared"),
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith("branches[0].cancel:")


async def test_item9_3_msg_dependent_branch_waits_for_its_dependency(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=3, gid=gid, branch="01")
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        message = msg(client, gid=gid, query_prepared=bank.target("QueryPrepared"), retry_interval_ms=20)
        message.add(bank.target("Action"), payload("x", 5))  # 01
        message.add(bank.target("Action"), payload("y", 5))  # 02, independent
        message.add(bank.target("Action"), payload("z", 5), branch_id="fin", depends_on=["01", "02"])
        await message.do_and_submit(bank.barrier, debit_local, wait=True)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    sequence = bank.sequence_of(gid)
    first_fin = sequence.index(("fin", "action"))
    assert sequence[:first_fin].count(("01", "action")) == 4  # three transient failures, then success
    assert ("02", "action") in sequence[:first_fin]
    assert bank.calls_of(gid)[("fin", "action")] == 1
    assert await bank.balance("z") == (5, 0)


async def test_item9_3_msg_bad_dependency_is_invalid_argument(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coordinator.stub.Prepare(
            pb.PrepareRequest(
                gid=gid,
                mode=pb.MODE_MSG,
                branches=[
                    pb.Branch(branch_id="01", action=bank.target("Action"), depends_on=["02"]),
                    pb.Branch(branch_id="02", action=bank.target("Action"), depends_on=["01"]),
                ],
                query_prepared=bank.target("QueryPrepared"),
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith("branches[0].depends_on:")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await coordinator.query(gid)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def debit_unit(conn: Conn) -> str:
    """The local transaction as a unit of work: the ``local`` account (created at zero) minus 5."""
    conn.execute(conn.dialect.insert_ignore("bank_account", ("name", "balance", "frozen")), ("local", 0, 0))
    conn.execute("UPDATE bank_account SET balance = balance - 5 WHERE name = ?", ("local",))
    return "done"


async def test_msg_do_and_submit_unit_on_a_store_runner(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async with (
        StoreRunner.for_engine(bank.db) as runner,
        CoordinatorClient(coordinator.address, auth=AUTH) as client,
    ):
        message = msg(client, gid=gid, query_prepared=bank.target("QueryPrepared"))
        message.add(bank.target("Action"), payload("x", 5))
        result = await message.do_and_submit_unit(RunnerBarrier(runner, bank.clock), debit_unit, wait=True)
    assert result == "done"
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert await bank.balance("local") == (-5, 0)
    assert await bank.balance("x") == (5, 0)
    # The check-back (the bank's own barrier on the same table) sees the unit's barrier row.
    await bank.barrier.query_prepared(gid)


async def test_msg_unit_business_failure_aborts_and_commits_nothing(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    def refuse(conn: Conn) -> None:
        debit_unit(conn)
        raise BranchFailure("insufficient funds")

    async with (
        StoreRunner.for_engine(bank.db) as runner,
        CoordinatorClient(coordinator.address, auth=AUTH) as client,
    ):
        message = msg(client, gid=gid, query_prepared=bank.target("QueryPrepared"))
        message.add(bank.target("Action"), payload("x", 5))
        with pytest.raises(BranchFailure):
            await message.do_and_submit_unit(RunnerBarrier(runner, bank.clock), refuse)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert "insufficient funds" in tx.reason
    assert await bank.balance("local") == (0, 0)
    assert bank.calls_of(gid) == {}
    with pytest.raises(MessageRolledBack):
        await bank.barrier.query_prepared(gid)  # no barrier row committed: the check-back says no
