"""Admin actions respect a live lease (issue 9 item 4, DESIGN.md section 4).

Two coordinator replicas share one store (SQLite file / MariaDB). Replica A drives a saga and holds
its lease with a branch call in flight (the participant holds the call); replica B receives the
operator's Retry / Pause / ForceFail. Before the fix B cleared the lease and called the same op while
A's call was still in flight. Now B records the request and A (the holder) acts on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import grpc
import pytest

from coordinator.engine.model import Status
from meshkit.runtime.clock import now_ms
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import (
    RunningCoordinator,
    admin_metadata,
    coordinator_settings,
    wait_final,
    wait_for,
)
from tests.integration.coordinator.participants import Bank, payload


@pytest.fixture
async def replica_b(db_url: str, coordinator: RunningCoordinator) -> AsyncIterator[RunningCoordinator]:
    """A second replica on the store of ``coordinator`` (replica A; started first, so migrated)."""
    running = await RunningCoordinator.start(coordinator_settings(db_url))
    try:
        yield running
    finally:
        await running.stop()


def two_steps(bank: Bank) -> list[pb.Branch]:
    return [
        pb.Branch(
            branch_id=f"0{i}",
            action=bank.target("Action"),
            cancel=bank.target("Compensate"),
            payload=payload(f"s{i}", 1),
        )
        for i in (1, 2)
    ]


async def start_held(coordinator: RunningCoordinator, bank: Bank, gid: str, **options: int) -> None:
    """Submit a two-step saga on replica A and wait until step 01's call is in flight (held)."""
    bank.hold("Action")
    arrived = bank.arrival("Action")
    arrived.clear()
    options.setdefault("request_timeout_ms", 30_000)  # the held call stays in flight
    request = pb.SubmitRequest(
        gid=gid, mode=pb.MODE_SAGA, branches=two_steps(bank), options=pb.TxOptions(**options)
    )
    await coordinator.stub.Submit(request)
    await arrived.wait()
    tx = await coordinator.query(gid)
    assert bank.calls_of(gid) == {("01", "action"): 1}
    assert tx.status == pb.STATUS_SUBMITTED


async def act(replica: RunningCoordinator, rpc: str, gid: str, reason: str = "ops") -> pb.Transaction:
    request = pb.AdminActionRequest(gid=gid, reason=reason, actor="oncall")
    reply: pb.AdminActionResponse = await getattr(replica.admin, rpc)(request, metadata=admin_metadata())
    return reply.transaction


async def test_item4_pause_from_another_replica_waits_for_the_lease_holder(
    coordinator: RunningCoordinator, replica_b: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await start_held(coordinator, bank, gid)
    paused = await act(replica_b, "PauseRetry", gid)
    assert paused.retry_paused
    assert bank.calls_of(gid) == {("01", "action"): 1}  # nobody called step 01 a second time
    bank.release("Action")
    # A records step 01's success, sees the pause and calls nothing more; it releases the lease.
    await wait_for(lambda: _step_done(coordinator, gid, "01"), what="step 01 recorded")
    await wait_for(lambda: _released(coordinator, gid), what="the lease released")
    assert ("02", "action") not in bank.calls_of(gid)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await act(replica_b, "Retry", gid)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await act(replica_b, "ResumeRetry", gid)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert bank.calls_of(gid) == {("01", "action"): 1, ("02", "action"): 1}
    assert sum((await bank.applied(gid)).values()) == 2


async def test_item4_retry_from_another_replica_is_taken_by_the_lease_holder(
    coordinator: RunningCoordinator, replica_b: RunningCoordinator, bank: Bank, gid: str
) -> None:
    # Step 01's held call will fail transiently; its next attempt would be ten minutes later.
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=1, gid=gid, branch="01")
    await start_held(coordinator, bank, gid, retry_interval_ms=600_000)
    await not_yet_taken(act(replica_b, "Retry", gid, "vendor is back"), "retry now")  # recorded for A
    assert bank.calls_of(gid) == {("01", "action"): 1}
    bank.release("Action")
    tx = await wait_final(coordinator, gid, within=5.0)  # A took the retry: no ten-minute wait
    assert tx.status == pb.STATUS_SUCCEEDED
    assert bank.calls_of(gid) == {("01", "action"): 2, ("02", "action"): 1}
    assert [(e.actor, e.detail) for e in tx.history if e.kind == "admin"] == [
        ("oncall", "retry now: vendor is back")
    ]


async def test_item4_force_fail_from_another_replica_is_applied_by_the_lease_holder(
    coordinator: RunningCoordinator, replica_b: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await start_held(coordinator, bank, gid)
    # The holder's call is still in flight: recorded for it, not applied yet.
    await not_yet_taken(act(replica_b, "ForceFail", gid, "settled by hand"), "force fail")
    assert bank.calls_of(gid) == {("01", "action"): 1}
    bank.release("Action")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason == "force fail: settled by hand"
    assert ("02", "action") not in bank.calls_of(gid)
    assert bank.calls_of(gid) == {("01", "action"): 1}


async def test_item4_force_abort_from_another_replica_is_applied_by_the_lease_holder(
    coordinator: RunningCoordinator, replica_b: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await start_held(coordinator, bank, gid)
    # The holder's call is still in flight: recorded for it, not applied yet.
    await not_yet_taken(act(replica_b, "ForceAbort", gid, "wrong customer"), "force abort")
    bank.release("Action")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason == "force abort: wrong customer"
    # Step 01 ran once and was compensated once; step 02 never started.
    assert bank.calls_of(gid) == {("01", "action"): 1, ("01", "compensate"): 1}
    assert await bank.balance("s1") == (0, 0)


async def not_yet_taken(action: Awaitable[pb.Transaction], name: str) -> None:
    """``action`` answers FAILED_PRECONDITION: recorded for the lease holder, which has not taken it yet."""
    with pytest.raises(grpc.aio.AioRpcError) as pending:
        await action
    assert pending.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = pending.value.details() or ""
    assert f"{name} recorded, not yet taken by replica " in details, details


async def test_item4_recorded_action_not_yet_taken_is_not_answered_ok(
    coordinator: RunningCoordinator, replica_b: RunningCoordinator, bank: Bank, gid: str
) -> None:
    # Before the fix the operator got OK (the transaction as it was) although nothing had happened.
    await start_held(coordinator, bank, gid)
    await not_yet_taken(act(replica_b, "ForceFail", gid, "settled by hand"), "force fail")
    view = await replica_b.runtime.store.get(gid)
    assert view is not None and view.status is Status.SUBMITTED
    assert view.admin_request is not None  # still recorded: it applies once the holder's call returns
    assert view.owner == coordinator.runtime.engine.owner
    bank.release("Action")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert bank.calls_of(gid) == {("01", "action"): 1}


async def test_item4_force_abort_dropped_by_the_taker_is_refused(
    coordinator: RunningCoordinator, gid: str
) -> None:
    # A replica that died while driving the prepared TCC holds its lease for one more second.
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    now = now_ms(coordinator.runtime.clock)
    store = coordinator.runtime.store
    assert await store.claim(gid, "gone-replica", now, now + 1000, force=True) is not None
    aborting = asyncio.ensure_future(act(coordinator, "ForceAbort", gid, "wrong customer"))
    await wait_for(lambda: _recorded(coordinator, gid), what="the force abort recorded for the holder")
    # The initiator's Submit lands before anyone takes the request: the abort no longer applies.
    await coordinator.stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    with pytest.raises(grpc.aio.AioRpcError) as dropped:
        await aborting  # dropped: the Submit landed first
    assert dropped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = dropped.value.details() or ""
    assert "force abort was not applied" in details and "submitted TCC" in details, details
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    # The history says what happened: no ABORTING the Submit then silently overrode.
    assert all(e.to_status != pb.STATUS_ABORTING for e in tx.history)


async def _recorded(coordinator: RunningCoordinator, gid: str) -> bool:
    view = await coordinator.runtime.store.get(gid)
    return view is not None and view.admin_request is not None


async def _step_done(coordinator: RunningCoordinator, gid: str, branch: str) -> bool:
    tx = await coordinator.query(gid)
    return any(op.branch_id == branch and op.status == "succeeded" for op in tx.ops)


async def _released(coordinator: RunningCoordinator, gid: str) -> bool:
    view = await coordinator.runtime.store.get(gid)
    return view is not None and view.owner is None
