"""Operator actions on the engine (what the Admin service calls), each with its history entry."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from coordinator.engine.admin import AdminOps
from coordinator.engine.model import Status
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound
from meshkit.tx.initiator import CoordinatorClient, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final, wait_for
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.creds import AUTH


def steps(bank: Bank, count: int) -> list[pb.Branch]:
    return [
        pb.Branch(
            branch_id=f"0{i}",
            action=bank.target("Action"),
            cancel=bank.target("Compensate"),
            payload=payload("s", i),
        )
        for i in range(1, count + 1)
    ]


async def submit_saga(
    coordinator: RunningCoordinator, gid: str, branches: list[pb.Branch], **options: int
) -> None:
    request = pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=branches, options=pb.TxOptions(**options))
    await coordinator.stub.Submit(request)


def admin_entries(tx: pb.Transaction) -> list[tuple[str, str]]:
    return [(e.actor, e.detail) for e in tx.history if e.kind == "admin"]


async def test_pause_stops_retries_and_resume_finishes(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    admin = AdminOps(coordinator.runtime.engine)
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=1000, gid=gid, branch="01")
    await submit_saga(coordinator, gid, steps(bank, 1), retry_interval_ms=20, retry_limit=1000)
    await wait_for(lambda: bank.calls_of(gid)[("01", "action")] >= 2, what="a few retries")
    paused = await admin.pause(gid, actor="alice", reason="investigating")
    assert paused.retry_paused
    await asyncio.sleep(0.2)  # a call in flight when pausing may still land
    calls = bank.calls_of(gid)[("01", "action")]
    await asyncio.sleep(0.4)  # twenty retry intervals: nothing may happen while paused
    assert bank.calls_of(gid)[("01", "action")] == calls
    bank._faults.clear()
    await admin.resume(gid, actor="bob", reason="fixed the vendor")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert admin_entries(tx) == [("alice", "pause: investigating"), ("bob", "resume: fixed the vendor")]


async def test_retry_now_runs_a_waiting_op_at_once(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, gid=gid, branch="01")
    await submit_saga(coordinator, gid, steps(bank, 1), retry_interval_ms=600_000)
    await wait_for(lambda: bank.calls_of(gid)[("01", "action")] == 1, what="the failed first attempt")
    await wait_for(
        lambda: _next_attempt_set(coordinator, gid), what="the retry to be scheduled ten minutes ahead"
    )
    tx = await AdminOps(coordinator.runtime.engine).retry_now(gid, actor="carol", reason="vendor is back")
    assert tx.status is Status.SUCCEEDED
    final = await coordinator.query(gid)
    assert admin_entries(final) == [("carol", "retry now: vendor is back")]


async def _next_attempt_set(coordinator: RunningCoordinator, gid: str) -> bool:
    tx = await coordinator.query(gid)
    return any(op.HasField("next_attempt_at") for op in tx.ops if op.op == "action")


async def test_force_abort_saga_compensates_started_steps(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=1000, gid=gid, branch="02")
    await submit_saga(coordinator, gid, steps(bank, 3), retry_interval_ms=20, retry_limit=1000)
    await wait_for(lambda: bank.calls_of(gid)[("02", "action")] >= 2, what="step 02 to keep failing")
    await AdminOps(coordinator.runtime.engine).force_abort(gid, actor="dave", reason="vendor down for good")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason == "force abort: vendor down for good"
    calls = bank.calls_of(gid)
    assert calls[("02", "compensate")] == 1
    assert calls[("01", "compensate")] == 1
    assert ("03", "action") not in calls
    assert await bank.balance("s") == (0, 0)
    assert admin_entries(tx) == [("dave", "force abort: vendor down for good")]


async def test_force_abort_refused_for_a_submitted_tcc(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Confirm", grpc.StatusCode.UNAVAILABLE, times=1000, gid=gid)
    async with (
        CoordinatorClient(coordinator.address, auth=AUTH) as client,
        tcc(client, gid=gid, retry_interval_ms=50) as t,
    ):
        await t.call_branch(
            bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 1)
        )
    with pytest.raises(FailedPrecondition, match="confirms must complete"):
        await AdminOps(coordinator.runtime.engine).force_abort(gid, actor="erin", reason="no")


async def test_force_fail_gives_up_without_compensation(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Confirm", grpc.StatusCode.UNAVAILABLE, times=1000, gid=gid)
    async with (
        CoordinatorClient(coordinator.address, auth=AUTH) as client,
        tcc(client, gid=gid, retry_interval_ms=50) as t,
    ):
        await t.call_branch(
            bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 1)
        )
    await wait_for(lambda: bank.calls_of(gid)[("01", "confirm")] >= 2, what="the confirm to keep failing")
    tx = await AdminOps(coordinator.runtime.engine).force_fail(gid, actor="frank", reason="settled by hand")
    assert (tx.status, tx.reason) == (Status.FAILED, "force fail: settled by hand")
    await asyncio.sleep(0.2)
    final = await coordinator.query(gid)
    assert final.status == pb.STATUS_FAILED
    assert {op.op: op.status for op in final.ops} == {
        "try": "succeeded",
        "confirm": "skipped",
        "cancel": "skipped",
    }
    assert ("01", "cancel") not in bank.calls_of(gid)
    assert admin_entries(final) == [("frank", "force fail: settled by hand")]
    with pytest.raises(FailedPrecondition, match="FAILED"):
        await AdminOps(coordinator.runtime.engine).pause(gid, actor="frank")


async def test_admin_actions_check_their_input(coordinator: RunningCoordinator, gid: str) -> None:
    admin = AdminOps(coordinator.runtime.engine)
    with pytest.raises(NotFound):
        await admin.pause(gid, actor="gina")
    with pytest.raises(InvalidArgument) as no_reason:
        await admin.force_fail(gid, actor="gina", reason=" ")
    assert no_reason.value.field == "reason"
    with pytest.raises(InvalidArgument) as no_actor:
        await admin.resume(gid, actor="")
    assert no_actor.value.field == "actor"
