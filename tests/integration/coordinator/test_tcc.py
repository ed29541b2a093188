"""TCC through a real coordinator (SQLite and MariaDB store) and a real participant."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from meshkit.errors import BranchFailure
from meshkit.observability.logctx import seeded_trace_id
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.initiator import CoordinatorClient, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final
from tests.integration.coordinator.participants import Bank, payload, tcc_branch
from tests.integration.creds import AUTH


def ops_by_key(tx: pb.Transaction) -> dict[tuple[str, str], pb.BranchOp]:
    return {(op.branch_id, op.op): op for op in tx.ops}


async def test_tcc_normal(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client, tcc(client, gid=gid) as t:
        await t.call_branch(
            bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 10)
        )
        await t.call_branch(
            bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("b", 5)
        )
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert await bank.balance("a") == (10, 0)
    assert await bank.balance("b") == (5, 0)
    ops = ops_by_key(tx)
    assert {k: (o.status, o.attempts) for k, o in ops.items()} == {
        ("01", "try"): ("succeeded", 0),
        ("01", "confirm"): ("succeeded", 1),
        ("01", "cancel"): ("skipped", 0),
        ("02", "try"): ("succeeded", 0),
        ("02", "confirm"): ("succeeded", 1),
        ("02", "cancel"): ("skipped", 0),
    }
    assert await bank.applied(gid) == {
        (gid, "01", "try"): 1,
        (gid, "01", "confirm"): 1,
        (gid, "02", "try"): 1,
        (gid, "02", "confirm"): 1,
    }
    states = [(e.from_status, e.to_status) for e in tx.history if e.kind == "state"]
    assert states == [
        (pb.STATUS_UNSPECIFIED, pb.STATUS_PREPARED),
        (pb.STATUS_PREPARED, pb.STATUS_SUBMITTED),
        (pb.STATUS_SUBMITTED, pb.STATUS_SUCCEEDED),
    ]
    assert coordinator.metric("mesh_tx_total", mode="tcc", status="succeeded") >= 1
    assert coordinator.metric("mesh_branch_calls_total", mode="tcc", op="confirm", result="ok") >= 2


async def test_tcc_rollback(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    bank.fail("Try", grpc.StatusCode.ABORTED, gid=gid, branch="02")
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        with pytest.raises(BranchFailure):
            async with tcc(client, gid=gid) as t:
                await t.call_branch(
                    bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 7)
                )
                await t.call_branch(
                    bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("b", 3)
                )
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert "BranchFailure" in tx.reason
    assert await bank.balance("a") == (0, 0)
    assert await bank.balance("b") == (0, 0)
    ops = ops_by_key(tx)
    assert ops[("01", "cancel")].status == "succeeded"
    assert ops[("02", "cancel")].status == "succeeded"
    assert ops[("01", "confirm")].status == "skipped"
    # branch 01 ran try then cancel; branch 02's try failed, so its cancel was an empty rollback.
    assert await bank.applied(gid) == {(gid, "01", "try"): 1, (gid, "01", "cancel"): 1}


async def test_tcc_cancel_before_try_rejects_late_try(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    stub = coordinator.stub
    await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 4)))
    aborted = await stub.Abort(pb.AbortRequest(gid=gid, reason="initiator gave up"))
    assert aborted.status in (pb.STATUS_ABORTING, pb.STATUS_FAILED)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason == "initiator gave up"
    # The try arrives late (after the cancel): the barrier rejects it with ABORTED.
    pool = ChannelPool()
    try:
        metadata = branch_metadata(TxContext(gid, "01", Op.TRY, TxMode.TCC))
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await pool.call(bank.target("Try"), payload("a", 4), metadata, 5.0)
    finally:
        await pool.close()
    assert late.value.code() == grpc.StatusCode.ABORTED
    assert await bank.applied(gid) == {}
    assert await bank.balance("a") == (0, 0)


async def test_tcc_timeout_abort(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    stub = coordinator.stub
    await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=pb.TxOptions(timeout_ms=300)))
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 9)))
    pool = ChannelPool()
    try:
        metadata = branch_metadata(TxContext(gid, "01", Op.TRY, TxMode.TCC))
        await pool.call(bank.target("Try"), payload("a", 9), metadata, 5.0)
    finally:
        await pool.close()
    assert await bank.balance("a") == (0, 9)
    # The initiator never submits: past the timeout the coordinator cancels.
    tx = await wait_final(coordinator, gid, within=10)
    assert tx.status == pb.STATUS_FAILED
    assert tx.reason == "timeout"
    assert await bank.balance("a") == (0, 0)
    assert ops_by_key(tx)[("01", "cancel")].attempts == 1
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "FAILED" in (late.value.details() or "")


async def test_tcc_register_after_submit_refused(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    stub = coordinator.stub
    await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 1)))
    await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "02", "b", 1)))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = refused.value.details() or ""
    assert "SUBMITTED" in details or "SUCCEEDED" in details
    tx = await wait_final(coordinator, gid)
    assert {op.branch_id for op in tx.ops} == {"01"}


async def test_tcc_duplicate_prepare_and_submit(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    stub = coordinator.stub
    first = await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    again = await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    assert first.status == again.status == pb.STATUS_PREPARED
    b = tcc_branch(bank, "01", "a", 2)
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=b))
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=b))  # same branch: a no-op
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 3)))
    assert other.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as wrong_mode:
        await stub.Prepare(
            pb.PrepareRequest(
                gid=gid,
                mode=pb.MODE_MSG,
                branches=[pb.Branch(branch_id="01", action=bank.target("Action"))],
                query_prepared=bank.target("QueryPrepared"),
            )
        )
    assert wrong_mode.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "TCC" in (wrong_mode.value.details() or "")
    pool = ChannelPool()
    try:
        await pool.call(b.action, b.payload, branch_metadata(TxContext(gid, "01", Op.TRY, TxMode.TCC)), 5.0)
    finally:
        await pool.close()
    s1 = await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    s2 = await stub.Submit(pb.SubmitRequest(gid=gid))
    assert s1.status in (pb.STATUS_SUBMITTED, pb.STATUS_SUCCEEDED)
    assert s2.status in (pb.STATUS_SUBMITTED, pb.STATUS_SUCCEEDED)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    s3 = await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    assert s3.status == pb.STATUS_SUCCEEDED
    assert ops_by_key(tx)[("01", "confirm")].attempts == 1
    assert await bank.applied(gid) == {(gid, "01", "try"): 1, (gid, "01", "confirm"): 1}
    with pytest.raises(grpc.aio.AioRpcError) as late_abort:
        await stub.Abort(pb.AbortRequest(gid=gid))
    assert late_abort.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_tcc_submit_after_abort_refused(coordinator: RunningCoordinator, gid: str) -> None:
    client = CoordinatorClient(coordinator.address, auth=AUTH)
    try:
        with pytest.raises(RuntimeError):
            async with tcc(client, gid=gid):
                raise RuntimeError("business said no")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = refused.value.details() or ""
        assert "ABORTING" in details or "FAILED" in details
        again = await client.stub.Abort(pb.AbortRequest(gid=gid))
        assert again.status in (pb.STATUS_ABORTING, pb.STATUS_FAILED)
    finally:
        await client.close()


async def test_query_unknown_gid_not_found(coordinator: RunningCoordinator, gid: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await coordinator.stub.Query(pb.QueryRequest(gid=gid))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.PrepareRequest(gid="bad gid", mode=pb.MODE_TCC), "gid"),
        (pb.PrepareRequest(gid="x" * 129, mode=pb.MODE_TCC), "gid"),
        (pb.PrepareRequest(gid="ok", mode=pb.MODE_UNSPECIFIED), "mode"),
        (pb.PrepareRequest(gid="ok", mode=pb.MODE_SAGA), "mode"),
        (
            pb.PrepareRequest(gid="ok", mode=pb.MODE_TCC, options=pb.TxOptions(retry_limit=-1)),
            "options.retry_limit",
        ),
        (pb.PrepareRequest(gid="ok", mode=pb.MODE_MSG, query_prepared="nowhere"), "branches"),
    ],
)
async def test_prepare_invalid_argument_names_field(
    coordinator: RunningCoordinator, request_: pb.PrepareRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coordinator.stub.Prepare(request_)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith(f"{field}:")


async def test_register_invalid_target_names_field(coordinator: RunningCoordinator, gid: str) -> None:
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    bad_branch = pb.Branch(
        branch_id="01", action="127.0.0.1:1/a.B/C", confirm="no-port/a.B/C", cancel="127.0.0.1:1/a.B/D"
    )
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coordinator.stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=bad_branch))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith("branch.confirm:")


async def test_branch_calls_carry_context_headers_and_the_initiators_trace(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    incoming = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),)
    options = pb.TxOptions(headers={"x-tenant": "acme"}, request_timeout_ms=1500)
    stub = coordinator.stub
    await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=options), metadata=incoming)
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 1)))
    await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    await wait_final(coordinator, gid)
    seen = bank.metadata[(gid, "01", "confirm")]
    assert (seen["x-mesh-gid"], seen["x-mesh-branch"], seen["x-mesh-op"], seen["x-mesh-mode"]) == (
        gid,
        "01",
        "confirm",
        "tcc",
    )
    assert seen["x-tenant"] == "acme"
    version, trace, span, flags = seen["traceparent"].split("-")
    assert (version, trace, flags) == ("00", trace_id, "01")
    assert span != "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("sent", "trace_of"),
    [
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""),  # zero parent id: dropped
    ],
)
async def test_traceparent_is_normalized_or_dropped_before_it_is_stored_and_forwarded(
    coordinator: RunningCoordinator, bank: Bank, gid: str, sent: str, trace_of: str
) -> None:
    stub = coordinator.stub
    await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC), metadata=(("traceparent", sent),))
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 1)))
    await stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC))
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    forwarded = bank.metadata[(gid, "01", "confirm")]["traceparent"]
    if trace_of:
        assert tx.options.headers["traceparent"] == sent.lower()
        assert forwarded.split("-")[1] == trace_of
    else:
        assert "traceparent" not in tx.options.headers
        assert forwarded.split("-")[1] == seeded_trace_id(gid)
