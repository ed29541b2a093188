"""Issue 9 item 6: the Coordinator service is mesh-only; Admin is checked before the body is decoded.

Whoever may start a transaction may have the coordinator call any branch with the mesh's credentials,
so Prepare/Submit/RegisterBranch/... without them answer UNAUTHENTICATED and nothing is stored.
"""

from __future__ import annotations

import grpc

from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from tests.integration.coordinator.harness import ADMIN_TOKEN, RunningCoordinator
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.creds import plain_channel

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def code_of(call: object) -> grpc.StatusCode:
    """The status code ``call`` ends with."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_item6_coordinator_calls_without_mesh_credentials_are_refused(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    step = pb.Branch(
        branch_id="01",
        action=bank.target("Action"),
        cancel=bank.target("Compensate"),
        payload=payload("s", 1),
    )
    async with plain_channel(coordinator.address) as channel:
        outsider = coordinator_pb2_grpc.CoordinatorStub(channel)
        submit = outsider.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=[step]))
        assert await code_of(submit) is UNAUTHENTICATED
        assert (
            await code_of(outsider.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))) is UNAUTHENTICATED
        )
        assert await code_of(outsider.NewGid(pb.NewGidRequest())) is UNAUTHENTICATED
        assert await code_of(outsider.Query(pb.QueryRequest(gid=gid))) is UNAUTHENTICATED
        # Query (a read) also takes the admin token, for meshctl
        token = [("authorization", f"Bearer {ADMIN_TOKEN}")]
        assert (
            await code_of(outsider.Query(pb.QueryRequest(gid=gid), metadata=token))
            is grpc.StatusCode.NOT_FOUND
        )
        # ... but the admin token does not start transactions
        prepare = outsider.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC), metadata=token)
        assert await code_of(prepare) is UNAUTHENTICATED
    assert await code_of(coordinator.stub.Query(pb.QueryRequest(gid=gid))) is grpc.StatusCode.NOT_FOUND
    assert bank.calls == {}
    # the initiator's signed channel works
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    assert (await coordinator.query(gid)).status == pb.STATUS_PREPARED
