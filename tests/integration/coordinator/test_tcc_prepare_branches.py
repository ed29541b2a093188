"""TCC branches declared up front: registered by Prepare (``branches``), SQLite and MariaDB store."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from meshkit.errors import BranchFailure
from meshkit.tx.initiator import CoordinatorClient, TccBranch, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final
from tests.integration.coordinator.participants import Bank, payload, tcc_branch
from tests.integration.creds import AUTH


def declared(bank: Bank, name: str, amount: int) -> TccBranch:
    return TccBranch(bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload(name, amount))


def handled(coordinator: RunningCoordinator, method: str) -> float:
    """RPCs of ``method`` this replica answered (any service, any code)."""
    return sum(
        sample.value
        for family in coordinator.registry.collect()
        for sample in family.samples
        if sample.name == "mesh_rpc_server_handled_total" and sample.labels.get("method") == method
    )


def op_states(tx: pb.Transaction) -> dict[tuple[str, str], str]:
    return {(op.branch_id, op.op): op.status for op in tx.ops}


async def test_prepare_registers_the_declared_branches(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    branches = [tcc_branch(bank, "01", "a", 3), tcc_branch(bank, "02", "b", 4)]
    answer = await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=branches))
    assert answer.status == pb.STATUS_PREPARED
    tx = (await coordinator.stub.Query(pb.QueryRequest(gid=gid))).transaction
    assert list(tx.branches) == branches
    assert op_states(tx) == {(b, op): "pending" for b in ("01", "02") for op in ("try", "confirm", "cancel")}


async def test_sdk_declared_branches_commit_without_register_calls(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        branches = [declared(bank, "a", 10), declared(bank, "b", 5)]
        async with tcc(client, gid=gid, branches=branches, wait_result=True) as t:
            for b in branches:
                await t.call_branch(b.try_target, b.confirm_target, b.cancel_target, b.payload)
    assert t.status == pb.STATUS_SUCCEEDED
    assert await bank.balance("a") == (10, 0)
    assert await bank.balance("b") == (5, 0)
    assert handled(coordinator, "Prepare") >= 1
    assert handled(coordinator, "RegisterBranch") == 0
    tx = await coordinator.query(gid)
    assert op_states(tx)[("02", "confirm")] == "succeeded"
    assert await bank.applied(gid) == {
        (gid, "01", "try"): 1,
        (gid, "01", "confirm"): 1,
        (gid, "02", "try"): 1,
        (gid, "02", "confirm"): 1,
    }


async def test_abort_cancels_declared_branches_tried_or_not(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    bank.fail("Try", grpc.StatusCode.ABORTED, gid=gid, branch="01")
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        branches = [declared(bank, "a", 7), declared(bank, "b", 3)]
        with pytest.raises(BranchFailure):
            async with tcc(client, gid=gid, branches=branches) as t:
                for b in branches:
                    await t.call_branch(b.try_target, b.confirm_target, b.cancel_target, b.payload)
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    states = op_states(tx)
    assert (states[("01", "cancel")], states[("02", "cancel")]) == ("succeeded", "succeeded")
    calls = bank.calls_of(gid)
    assert (calls[("01", "try")], calls[("02", "try")]) == (1, 0)  # 02 was never tried, yet cancelled
    assert (calls[("01", "cancel")], calls[("02", "cancel")]) == (1, 1)
    assert await bank.applied(gid) == {}  # both cancels were empty rollbacks
    assert await bank.balance("a") == (0, 0)
    assert await bank.balance("b") == (0, 0)


async def test_declared_branch_never_called_aborts_instead_of_submit(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        branches = [declared(bank, "a", 2), declared(bank, "b", 9)]
        with pytest.raises(ValueError, match="never called"):
            async with tcc(client, gid=gid, branches=branches) as t:
                first = branches[0]
                await t.call_branch(
                    first.try_target, first.confirm_target, first.cancel_target, first.payload
                )
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert bank.calls_of(gid)[("02", "confirm")] == 0
    assert await bank.balance("a") == (0, 0)


async def test_prepare_again_with_the_same_branches_is_a_no_op(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    request = pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=[tcc_branch(bank, "01", "a", 1)])
    await coordinator.stub.Prepare(request)
    again = await coordinator.stub.Prepare(request)
    assert again.status == pb.STATUS_PREPARED
    tx = await coordinator.query(gid)
    assert len(tx.ops) == 3


async def test_prepare_again_adds_a_missing_branch(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    first = tcc_branch(bank, "01", "a", 1)
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=[first]))
    second = tcc_branch(bank, "02", "b", 2)
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=[first, second]))
    tx = await coordinator.query(gid)
    assert list(tx.branches) == [first, second]


async def test_prepare_again_with_a_different_branch_is_refused(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await coordinator.stub.Prepare(
        pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=[tcc_branch(bank, "01", "a", 1)])
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await coordinator.stub.Prepare(
            pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=[tcc_branch(bank, "01", "a", 2)])
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    tx = await coordinator.query(gid)
    assert list(tx.branches) == [tcc_branch(bank, "01", "a", 1)]


async def test_register_branch_after_prepare_with_branches_keeps_positions(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await coordinator.stub.Prepare(
        pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=[tcc_branch(bank, "01", "a", 1)])
    )
    await coordinator.stub.RegisterBranch(
        pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "02", "b", 1))
    )
    same = await coordinator.stub.RegisterBranch(
        pb.RegisterBranchRequest(gid=gid, branch=tcc_branch(bank, "01", "a", 1))
    )
    assert same.branch_id == "01"
    tx = await coordinator.query(gid)
    assert [b.branch_id for b in tx.branches] == ["01", "02"]


async def test_sdk_declared_branch_called_with_other_arguments_aborts(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        with pytest.raises(ValueError, match="other targets or payload"):
            async with tcc(client, gid=gid, branches=[declared(bank, "a", 2)]) as t:
                await t.call_branch(bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), b"x")
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    assert bank.calls_of(gid)[("01", "try")] == 0


def tcc_prepare(gid: str, *branches: pb.Branch) -> pb.PrepareRequest:
    return pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, branches=list(branches))


GOOD = pb.Branch(
    branch_id="01",
    action="127.0.0.1:1/a.B/Try",
    confirm="127.0.0.1:1/a.B/Confirm",
    cancel="127.0.0.1:1/a.B/Cancel",
)


@pytest.mark.parametrize(
    ("branches", "field"),
    [
        ([GOOD, GOOD], "branches[1].branch_id"),
        (
            [pb.Branch(branch_id="", action=GOOD.action, confirm=GOOD.confirm, cancel=GOOD.cancel)],
            "branches[0].branch_id",
        ),
        ([pb.Branch(branch_id="01", action=GOOD.action, cancel=GOOD.cancel)], "branches[0].confirm"),
        (
            [pb.Branch(branch_id="01", action="nowhere", confirm=GOOD.confirm, cancel=GOOD.cancel)],
            "branches[0].action",
        ),
        (
            [pb.Branch(branch_id="01", action=GOOD.action, confirm=GOOD.confirm, cancel="x")],
            "branches[0].cancel",
        ),
        (
            [
                pb.Branch(
                    branch_id="01",
                    action=GOOD.action,
                    confirm=GOOD.confirm,
                    cancel=GOOD.cancel,
                    depends_on=["02"],
                )
            ],
            "branches[0].depends_on",
        ),
        (
            [
                pb.Branch(branch_id=f"{i:03d}", action=GOOD.action, confirm=GOOD.confirm, cancel=GOOD.cancel)
                for i in range(101)
            ],
            "branches",
        ),
    ],
)
async def test_prepare_with_bad_tcc_branches_names_the_field(
    coordinator: RunningCoordinator, gid: str, branches: list[pb.Branch], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await coordinator.stub.Prepare(tcc_prepare(gid, *branches))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith(f"{field}:")
    with pytest.raises(grpc.aio.AioRpcError) as missing:  # nothing was stored
        await coordinator.stub.Query(pb.QueryRequest(gid=gid))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_declared_branch_mismatch_caught_by_caller_still_aborts(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
        with pytest.raises(ValueError, match="called with other arguments"):
            async with tcc(client, gid=gid, branches=[declared(bank, "a", 2)]) as t:
                with pytest.raises(ValueError, match="other targets or payload"):
                    await t.call_branch(
                        bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), b"x"
                    )
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_FAILED
    calls = bank.calls_of(gid)
    assert (calls[("01", "try")], calls[("01", "confirm")]) == (0, 0)
    assert await bank.balance("a") == (0, 0)
