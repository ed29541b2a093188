"""Coordinator.FinishedGids: which transactions are final, for participants' barrier retention (issue 9
item 1). Real coordinator on SQLite and MariaDB, real participant."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from coordinator.engine.validate import MAX_GID_LEN
from coordinator.store.retention import FinishedTxCleaner
from meshkit.runtime.clock import ManualClock, SystemClock
from meshkit.settings.config import MAX_REQUEST_BYTES
from meshkit.tx.finality import CoordinatorFinality
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, admin_metadata, wait_final, wait_for
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.creds import AUTH


async def _finished(coordinator: RunningCoordinator, gids: list[str]) -> pb.FinishedGidsResponse:
    reply: pb.FinishedGidsResponse = await coordinator.stub.FinishedGids(pb.FinishedGidsRequest(gids=gids))
    return reply


async def _msg_retrying(coordinator: RunningCoordinator, bank: Bank, gid: str, retry_limit: int) -> None:
    """A submitted MSG whose only branch keeps failing transiently."""
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=10_000, gid=gid)
    step = pb.Branch(branch_id="01", action=bank.target("Action"), payload=payload("q", 1))
    options = pb.TxOptions(retry_interval_ms=10, retry_limit=retry_limit)
    await coordinator.stub.Submit(
        pb.SubmitRequest(gid=gid, mode=pb.MODE_MSG, branches=[step], options=options)
    )


async def test_item1_finished_gids_splits_final_unknown_and_unfinished(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    stub = coordinator.stub
    succeeded, failed, prepared = f"{gid}-ok", f"{gid}-failed", f"{gid}-prepared"
    paused, stuck, forgotten, never = f"{gid}-paused", f"{gid}-stuck", f"{gid}-forgotten", f"{gid}-never"
    step = pb.Branch(branch_id="01", action=bank.target("Action"), payload=payload("a", 1))
    await stub.Submit(pb.SubmitRequest(gid=succeeded, mode=pb.MODE_SAGA, branches=[step], wait_result=True))
    await stub.Submit(pb.SubmitRequest(gid=forgotten, mode=pb.MODE_SAGA, branches=[step], wait_result=True))
    await stub.Prepare(pb.PrepareRequest(gid=failed, mode=pb.MODE_TCC))
    await stub.Abort(pb.AbortRequest(gid=failed, reason="test"))
    await stub.Prepare(pb.PrepareRequest(gid=prepared, mode=pb.MODE_TCC))
    await _msg_retrying(coordinator, bank, paused, retry_limit=1000)
    await coordinator.admin.PauseRetry(
        pb.AdminActionRequest(gid=paused, reason="t"), metadata=admin_metadata()
    )
    await _msg_retrying(coordinator, bank, stuck, retry_limit=1)
    await wait_for(lambda: _stuck(coordinator, stuck), what="the MSG to become stuck")
    for final in (succeeded, failed, forgotten):
        await wait_final(coordinator, final)
    # Duplicates are answered once, in the order asked; unfinished ones are in neither list.
    asked = [prepared, succeeded, never, failed, paused, stuck, succeeded, forgotten]
    before = await _finished(coordinator, asked)
    assert list(before.finished) == [succeeded, failed, forgotten]
    assert list(before.unknown) == [never]

    # The retention cleanup (a day later) forgets every final one: they become unknown.
    later = ManualClock(SystemClock().now() + 86_400)
    cleaner = FinishedTxCleaner(coordinator.runtime.store, later, retention_days=0.5, batch=100)
    assert await cleaner.run_once() >= 3
    after = await _finished(coordinator, asked)
    assert list(after.finished) == []
    assert list(after.unknown) == [succeeded, never, failed, forgotten]
    assert list((await _finished(coordinator, [])).finished) == []


async def _stuck(coordinator: RunningCoordinator, gid: str) -> bool:
    return bool((await coordinator.query(gid)).stuck)


@pytest.mark.parametrize(
    ("gids", "field"),
    [
        ([f"g{i}" for i in range(1001)], "gids"),
    ],
)
async def test_item1_finished_gids_bad_input_names_the_field(
    coordinator: RunningCoordinator, gids: list[str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await _finished(coordinator, gids)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith(f"{field}:")


async def test_item1_finished_gids_answers_a_full_batch(coordinator: RunningCoordinator, gid: str) -> None:
    asked = [f"{gid}-{i}" for i in range(1000)]
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=asked[700], mode=pb.MODE_TCC))
    await coordinator.stub.Abort(pb.AbortRequest(gid=asked[700], reason="test"))
    await wait_final(coordinator, asked[700])
    reply = await _finished(coordinator, asked)
    assert list(reply.finished) == [asked[700]]
    assert list(reply.unknown) == asked[:700] + asked[701:]


async def test_item1_finished_gids_answers_malformed_gids_as_unknown(
    coordinator: RunningCoordinator, gid: str
) -> None:
    # A participant's barrier may hold gids written before they were checked: one of them must not
    # make the whole batch fail (the cleanup would stall on it forever). No transaction can have it.
    done, open_ = f"{gid}-done", f"{gid}-open"
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=done, mode=pb.MODE_TCC))
    await coordinator.stub.Abort(pb.AbortRequest(gid=done, reason="test"))
    await wait_final(coordinator, done)
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=open_, mode=pb.MODE_TCC))
    malformed = ["bad gid", "", "x" * 129, "-leading-dash", "ü"]
    reply = await _finished(coordinator, [done, *malformed, open_, f"{gid}-never"])
    assert list(reply.finished) == [done]
    assert list(reply.unknown) == [*malformed, f"{gid}-never"]


async def test_item1_finality_oracle_splits_large_batches_by_bytes(
    coordinator: RunningCoordinator, gid: str
) -> None:
    # 1000 gids of 128 characters are ~130 KiB: one request would exceed the 64 KiB limit.
    asked = [f"{gid}-{i:04d}-".ljust(MAX_GID_LEN, "x") for i in range(1000)]
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=asked[999], mode=pb.MODE_TCC))
    assert sum(len(g) for g in asked) > MAX_REQUEST_BYTES
    oracle = CoordinatorFinality.of(coordinator.address, AUTH)
    try:
        final = await oracle.final(asked)
    finally:
        await oracle.close()
    assert final == set(asked[:999])
