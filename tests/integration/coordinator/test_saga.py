"""Sagas through a real coordinator (SQLite and MariaDB store) and a real participant."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from meshkit.tx.initiator import CoordinatorClient, saga
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.creds import AUTH


def step(bank: Bank, branch_id: str, name: str, amount: int, depends_on: tuple[str, ...] = ()) -> pb.Branch:
    return pb.Branch(
        branch_id=branch_id,
        action=bank.target("Action"),
        cancel=bank.target("Compensate"),
        payload=payload(name, amount),
        depends_on=list(depends_on),
    )


def ops_by_key(tx: pb.Transaction) -> dict[tuple[str, str], pb.BranchOp]:
    return {(op.branch_id, op.op): op for op in tx.ops}


async def submit(coordinator: RunningCoordinator, gid: str, steps: list[pb.Branch], **options: object) -> int:
    request = pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=steps, options=pb.TxOptions(**options))
    return (await coordinator.stub.Submit(request)).status


async def test_saga_normal(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        built = saga(client, gid=gid)
        for i, name in enumerate(("a", "b", "c"), start=1):
            built.add(bank.target("Action"), bank.target("Compensate"), payload(name, i))
        status = await built.submit(wait=True, timeout_seconds=10)
    assert status == pb.STATUS_SUCCEEDED
    assert bank.sequence_of(gid) == [("01", "action"), ("02", "action"), ("03", "action")]
    assert [await bank.balance(n) for n in ("a", "b", "c")] == [(1, 0), (2, 0), (3, 0)]
    tx = await coordinator.query(gid)
    assert {k: o.status for k, o in ops_by_key(tx).items() if k[1] == "compensate"} == {
        ("01", "compensate"): "skipped",
        ("02", "compensate"): "skipped",
        ("03", "compensate"): "skipped",
    }


async def test_saga_rollback_compensates_started_steps_including_the_failed_one(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.ABORTED, gid=gid, branch="02")
    steps = [step(bank, "01", "a", 1), step(bank, "02", "b", 2), step(bank, "03", "c", 3)]
    await submit(coordinator, gid, steps)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason.startswith("branch 02 action failed: ABORTED")
    # Reverse order, the failed step first; the step that never started is never called.
    assert bank.sequence_of(gid) == [
        ("01", "action"),
        ("02", "action"),
        ("02", "compensate"),
        ("01", "compensate"),
    ]
    ops = ops_by_key(tx)
    assert ops[("02", "action")].status == "failed"
    assert ops[("03", "action")].status == "skipped"
    assert ops[("03", "compensate")].status == "skipped"
    assert ops[("02", "compensate")].status == "succeeded"
    assert await bank.balance("a") == (0, 0)
    # Step 02's action failed before its barrier row: its compensation was an empty rollback.
    assert await bank.applied(gid) == {(gid, "01", "action"): 1, (gid, "01", "compensate"): 1}


async def test_saga_ongoing_then_success(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    bank.fail("Action", grpc.StatusCode.FAILED_PRECONDITION, times=2, gid=gid, branch="01")
    await submit(coordinator, gid, [step(bank, "01", "a", 5), step(bank, "02", "b", 6)], retry_interval_ms=30)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    ops = ops_by_key(tx)
    assert ops[("01", "action")].attempts == 3
    assert ops[("01", "action")].last_error == ""
    branch_events = [e for e in tx.history if e.kind == "branch"]
    assert len(branch_events) == 2
    assert all(e.detail.startswith("FAILED_PRECONDITION") for e in branch_events)
    assert await bank.applied(gid) == {(gid, "01", "action"): 1, (gid, "02", "action"): 1}


async def test_saga_compensation_erroring_then_retried_to_success(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.ABORTED, gid=gid, branch="02")
    bank.fail("Compensate", grpc.StatusCode.UNAVAILABLE, times=2, gid=gid, branch="01")
    await submit(coordinator, gid, [step(bank, "01", "a", 4), step(bank, "02", "b", 4)], retry_interval_ms=20)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    compensate = ops_by_key(tx)[("01", "compensate")]
    assert (compensate.status, compensate.attempts, compensate.last_error) == ("succeeded", 3, "")
    assert not tx.stuck
    assert await bank.balance("a") == (0, 0)
    assert coordinator.metric("mesh_branch_retries_total") >= 2


async def test_saga_compensation_past_retry_limit_is_stuck_until_it_succeeds(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.ABORTED, gid=gid, branch="01")
    bank.fail("Compensate", grpc.StatusCode.INTERNAL, times=4, gid=gid, branch="01")
    await submit(coordinator, gid, [step(bank, "01", "a", 4)], retry_interval_ms=20, retry_limit=2)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert tx.stuck  # it passed its retry limit (and kept being retried until it worked)
    assert ops_by_key(tx)[("01", "compensate")].attempts == 5
    assert [e.op for e in tx.history if e.kind == "stuck"] == ["compensate"]
    assert coordinator.metric("mesh_tx_stuck_total", mode="saga", op="compensate") == 1


async def test_saga_retry_limit(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=100, gid=gid, branch="02")
    steps = [step(bank, "01", "a", 1), step(bank, "02", "b", 1)]
    await submit(coordinator, gid, steps, retry_interval_ms=10, retry_limit=3)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    action = ops_by_key(tx)[("02", "action")]
    assert (action.status, action.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in action.last_error
    assert bank.calls_of(gid)[("02", "action")] == 3
    assert bank.calls_of(gid)[("02", "compensate")] == 1
    assert await bank.balance("a") == (0, 0)


async def test_saga_concurrent_failing_dependency_dependent_never_runs(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Action", grpc.StatusCode.ABORTED, gid=gid, branch="B")
    steps = [step(bank, "A", "a", 1), step(bank, "B", "b", 2), step(bank, "C", "c", 3, depends_on=("B",))]
    await submit(coordinator, gid, steps, concurrent=True)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    calls = bank.calls_of(gid)
    assert ("C", "action") not in calls
    assert ("C", "compensate") not in calls
    assert calls[("A", "compensate")] == 1
    assert calls[("B", "compensate")] == 1
    assert await bank.balance("a") == (0, 0)


async def test_saga_concurrent_runs_along_dependencies(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    steps = [
        step(bank, "D", "d", 1, depends_on=("B", "C")),
        step(bank, "B", "b", 1, depends_on=("A",)),
        step(bank, "C", "c", 1, depends_on=("A",)),
        step(bank, "A", "a", 1),
    ]
    await submit(coordinator, gid, steps, concurrent=True)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    order = [b for b, _ in bank.sequence_of(gid)]
    assert order[0] == "A"
    assert set(order[1:3]) == {"B", "C"}
    assert order[3] == "D"


InvalidCase = tuple[list[tuple[str, tuple[str, ...]]], dict[str, object], str]


@pytest.mark.parametrize(
    "case",
    [
        ([("A", ("B",)), ("B", ("A",))], {"concurrent": True}, "branches[0].depends_on"),
        ([("A", ("Z",))], {"concurrent": True}, "branches[0].depends_on"),
        ([("A", ()), ("B", ("A",))], {}, "branches[1].depends_on"),
        ([("A", ()), ("A", ())], {}, "branches[1].branch_id"),
        ([], {}, "branches"),
    ],
)
async def test_saga_invalid_steps_name_the_field(
    coordinator: RunningCoordinator, bank: Bank, gid: str, case: InvalidCase
) -> None:
    steps, options, field = case
    branches = [step(bank, bid, "x", 1, depends_on=deps) for bid, deps in steps]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await submit(coordinator, gid, branches, **options)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith(f"{field}:")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await coordinator.stub.Query(pb.QueryRequest(gid=gid))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_saga_duplicate_submit(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    steps = [step(bank, "01", "a", 1), step(bank, "02", "b", 1)]
    first = await submit(coordinator, gid, steps)
    second = await submit(coordinator, gid, steps)
    assert first in (pb.STATUS_SUBMITTED, pb.STATUS_SUCCEEDED)
    assert second in (pb.STATUS_SUBMITTED, pb.STATUS_SUCCEEDED)
    with pytest.raises(grpc.aio.AioRpcError) as different:
        await submit(coordinator, gid, [step(bank, "01", "a", 2)])
    assert different.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "different branches" in (different.value.details() or "")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert await bank.applied(gid) == {(gid, "01", "action"): 1, (gid, "02", "action"): 1}
