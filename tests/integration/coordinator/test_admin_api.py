"""The Admin gRPC service: token check, listings, stats and actions over the wire, with history entries."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from meshkit.tx.initiator import CoordinatorClient, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, admin_metadata, wait_final, wait_for
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.creds import AUTH


async def submit_saga(coordinator: RunningCoordinator, gid: str, bank: Bank, **options: int) -> None:
    step = pb.Branch(
        branch_id="01",
        action=bank.target("Action"),
        cancel=bank.target("Compensate"),
        payload=payload("s", 1),
    )
    request = pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=[step], options=pb.TxOptions(**options))
    await coordinator.stub.Submit(request)


async def stuck_tcc(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    """A TCC whose confirm keeps failing past its retry limit (so it is flagged stuck)."""
    bank.fail("Confirm", grpc.StatusCode.UNAVAILABLE, times=10_000, gid=gid)
    async with (
        CoordinatorClient(coordinator.address, auth=AUTH) as client,
        tcc(client, gid=gid, retry_interval_ms=20, retry_limit=2) as t,
    ):
        await t.call_branch(
            bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 1)
        )

    async def flagged() -> bool:
        return bool((await coordinator.query(gid)).stuck)

    await wait_for(flagged, what="the transaction to be flagged stuck")


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
async def test_admin_refuses_calls_without_the_right_token(
    coordinator: RunningCoordinator, gid: str, token: str | None
) -> None:
    metadata = admin_metadata(token) if token else ()
    calls = [
        coordinator.admin.List(pb.ListRequest(), metadata=metadata),
        coordinator.admin.Stats(pb.StatsRequest(), metadata=metadata),
        coordinator.admin.Stuck(pb.StuckRequest(), metadata=metadata),
        coordinator.admin.ForceFail(pb.AdminActionRequest(gid=gid, reason="x"), metadata=metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_admin_list_filters_by_status_and_pages(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    gids = [f"{gid}-{i}" for i in range(3)]
    for each in gids:
        await submit_saga(coordinator, each, bank)
        await wait_final(coordinator, each)
    seen: list[str] = []
    cursor = ""
    while True:
        page = await coordinator.admin.List(
            pb.ListRequest(status=pb.STATUS_SUCCEEDED, mode=pb.MODE_SAGA, cursor=cursor, limit=2),
            metadata=admin_metadata(),
        )
        seen += [tx.gid for tx in page.transactions]
        assert all(tx.status == pb.STATUS_SUCCEEDED and len(tx.ops) == 2 for tx in page.transactions)
        cursor = page.next_cursor
        if not cursor:
            break
    assert [g for g in seen if g in gids] == list(reversed(gids))  # newest first, each once
    failed = await coordinator.admin.List(pb.ListRequest(status=pb.STATUS_FAILED), metadata=admin_metadata())
    assert not {tx.gid for tx in failed.transactions} & set(gids)


async def test_admin_list_rejects_a_bad_cursor(coordinator: RunningCoordinator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await coordinator.admin.List(pb.ListRequest(cursor="%%%"), metadata=admin_metadata())
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor" in (refused.value.details() or "")


async def test_admin_stuck_and_stats_show_a_confirm_that_keeps_failing(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await stuck_tcc(coordinator, bank, gid)
    stuck = await coordinator.admin.Stuck(pb.StuckRequest(), metadata=admin_metadata())
    [tx] = [tx for tx in stuck.transactions if tx.gid == gid]
    confirm = next(op for op in tx.ops if op.op == "confirm")
    assert confirm.attempts >= 2  # the retry limit
    assert "UNAVAILABLE" in confirm.last_error
    stats = await coordinator.admin.Stats(pb.StatsRequest(), metadata=admin_metadata())
    assert stats.stuck >= 1
    counts = {(c.mode, c.status): c.count for c in stats.counts}
    assert counts[(pb.MODE_TCC, pb.STATUS_SUBMITTED)] >= 1
    assert stats.oldest_unfinished.ToMilliseconds() >= 0
    too_young = await coordinator.admin.Stuck(
        pb.StuckRequest(older_than=Duration(seconds=3600)), metadata=admin_metadata()
    )
    assert gid not in {t.gid for t in too_young.transactions}


async def test_admin_actions_over_grpc_finish_a_stuck_transaction_with_history(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await stuck_tcc(coordinator, bank, gid)
    paused = await coordinator.admin.PauseRetry(
        pb.AdminActionRequest(gid=gid, reason="vendor down", actor="alice"), metadata=admin_metadata()
    )
    assert paused.transaction.retry_paused
    bank._faults.clear()
    await coordinator.admin.ResumeRetry(
        pb.AdminActionRequest(gid=gid, reason="vendor back", actor="bob"), metadata=admin_metadata()
    )
    await coordinator.admin.Retry(pb.AdminActionRequest(gid=gid, actor="bob"), metadata=admin_metadata())
    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    entries = [(e.actor, e.detail) for e in tx.history if e.kind == "admin"]
    assert entries[:2] == [("alice", "pause: vendor down"), ("bob", "resume: vendor back")]
    assert bank.calls_of(gid)[("01", "cancel")] == 0


async def test_admin_force_fail_names_the_caller_when_no_actor_is_given(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await stuck_tcc(coordinator, bank, gid)
    reply = await coordinator.admin.ForceFail(
        pb.AdminActionRequest(gid=gid, reason="settled by hand"), metadata=admin_metadata()
    )
    assert reply.transaction.status == pb.STATUS_FAILED
    [entry] = [e for e in reply.transaction.history if e.kind == "admin"]
    assert entry.actor.startswith("admin ")
    assert entry.detail == "force fail: settled by hand"


@pytest.mark.parametrize(
    ("rpc", "request_", "code", "field"),
    [
        ("ForceFail", pb.AdminActionRequest(gid="unknown-gid-x1", reason="r"), grpc.StatusCode.NOT_FOUND, ""),
        (
            "ForceFail",
            pb.AdminActionRequest(gid="bad gid!", reason="r"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "gid",
        ),
        (
            "ForceAbort",
            pb.AdminActionRequest(gid="g1", reason=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "reason",
        ),
        ("List", pb.ListRequest(limit=501), grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        ("List", pb.ListRequest(status=42), grpc.StatusCode.INVALID_ARGUMENT, "status"),
    ],
    ids=["unknown-gid", "bad-gid", "no-reason", "limit", "status"],
)
async def test_admin_bad_requests_are_refused_with_a_clear_code(
    coordinator: RunningCoordinator, rpc: str, request_: object, code: grpc.StatusCode, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(coordinator.admin, rpc)(request_, metadata=admin_metadata())
    assert refused.value.code() is code
    assert field in (refused.value.details() or "")
