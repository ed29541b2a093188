"""``kill -9`` of a coordinator process in the middle of driving; a restart finishes everything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from meshkit.tx.initiator import CoordinatorClient, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from tests.integration.coordinator.harness import FINAL, wait_for
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.coordinator.process import CoordinatorProcess
from tests.integration.creds import AUTH, trusted_channel


@contextlib.asynccontextmanager
async def processes() -> AsyncIterator[list[CoordinatorProcess]]:
    started: list[CoordinatorProcess] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.stop()


async def final_state(address: str, gid: str, within: float = 20.0) -> pb.Transaction:
    async with trusted_channel(address) as channel:
        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        holder: list[pb.Transaction] = []

        async def done() -> bool:
            holder[:] = [(await stub.Query(pb.QueryRequest(gid=gid))).transaction]
            return holder[0].status in FINAL

        await wait_for(done, within, what=f"{gid} to finish after the restart")
        return holder[0]


def ops_by_key(tx: pb.Transaction) -> dict[tuple[str, str], pb.BranchOp]:
    return {(op.branch_id, op.op): op for op in tx.ops}


async def test_kill9_mid_confirm_restart_completes(db_url: str, bank: Bank, gid: str, tmp_path: Path) -> None:
    async with processes() as procs:
        first = await CoordinatorProcess(db_url, tmp_path / "first.log").start()
        procs.append(first)
        bank.hold("Confirm")
        async with CoordinatorClient(first.address, auth=AUTH) as client, tcc(client, gid=gid) as t:
            await t.call_branch(
                bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 10)
            )
            await t.call_branch(
                bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("b", 20)
            )
        # Both confirms reached the participant and are held there: the coordinator is mid-confirm.
        await wait_for(lambda: sum(n for (_, op), n in bank.calls_of(gid).items() if op == "confirm") == 2)
        first.kill9()
        bank.release("Confirm")
        second = await CoordinatorProcess(db_url, tmp_path / "second.log").start()
        procs.append(second)
        tx = await final_state(second.address, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    ops = ops_by_key(tx)
    assert ops[("01", "confirm")].attempts == 2  # counted before each call: the lost one and the retry
    assert ops[("02", "confirm")].attempts == 2
    assert await bank.balance("a") == (10, 0)
    assert await bank.balance("b") == (20, 0)
    applied = await bank.applied(gid)
    assert applied[(gid, "01", "confirm")] == 1
    assert applied[(gid, "02", "confirm")] == 1


async def test_kill9_mid_compensate_restart_completes(
    db_url: str, bank: Bank, gid: str, tmp_path: Path
) -> None:
    bank.fail("Action", grpc.StatusCode.ABORTED, gid=gid, branch="03")
    steps = [
        pb.Branch(
            branch_id=f"0{i}",
            action=bank.target("Action"),
            cancel=bank.target("Compensate"),
            payload=payload("s", i),
        )
        for i in (1, 2, 3)
    ]
    async with processes() as procs:
        first = await CoordinatorProcess(db_url, tmp_path / "first.log").start()
        procs.append(first)
        bank.hold("Compensate")
        async with trusted_channel(first.address) as channel:
            stub = coordinator_pb2_grpc.CoordinatorStub(channel)
            await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=steps))
        await wait_for(lambda: bank.calls_of(gid)[("03", "compensate")] == 1)
        first.kill9()
        bank.release("Compensate")
        second = await CoordinatorProcess(db_url, tmp_path / "second.log").start()
        procs.append(second)
        tx = await final_state(second.address, gid)
    assert tx.status == pb.STATUS_FAILED
    ops = ops_by_key(tx)
    assert [ops[(f"0{i}", "compensate")].status for i in (1, 2, 3)] == ["succeeded"] * 3
    assert ops[("03", "compensate")].attempts == 2
    assert await bank.balance("s") == (0, 0)
    applied = await bank.applied(gid)
    assert applied == {
        (gid, "01", "action"): 1,
        (gid, "02", "action"): 1,
        (gid, "01", "compensate"): 1,
        (gid, "02", "compensate"): 1,
    }
    # Reverse order held across the crash: 03 (empty rollback), then 02, then 01.
    compensations = [b for b, op in bank.sequence_of(gid) if op == "compensate"]
    assert compensations[-2:] == ["02", "01"]


pytestmark = pytest.mark.timeout(120)
