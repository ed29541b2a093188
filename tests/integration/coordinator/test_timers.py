"""Timers: JetStream schedules wake another replica; with NATS stopped, the sweeper finishes the work."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from meshctl.stack.embedded import NatsServer
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import (
    RunningCoordinator,
    coordinator_settings,
    wait_final,
    wait_for,
)
from tests.integration.coordinator.participants import Bank, payload

pytestmark = pytest.mark.timeout(60)


async def test_jetstream_timer_wakes_another_replica(
    db_url: str, nats_url: str, bank: Bank, gid: str
) -> None:
    slow_sweeps = {"sweep_interval_seconds": 60.0}
    first = await RunningCoordinator.start(coordinator_settings(db_url, nats_url=nats_url, **slow_sweeps))
    second = await RunningCoordinator.start(coordinator_settings(db_url, nats_url=nats_url, **slow_sweeps))
    try:
        await wait_for(lambda: first.runtime.timers and second.runtime.timers, what="JetStream timers")
        stub = first.stub
        await stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=pb.TxOptions(timeout_ms=500)))
        branch = pb.Branch(
            branch_id="01",
            action=bank.target("Try"),
            confirm=bank.target("Confirm"),
            cancel=bank.target("Cancel"),
            payload=payload("a", 3),
        )
        await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=branch))
        pool = ChannelPool()
        try:
            await pool.call(
                branch.action, branch.payload, branch_metadata(TxContext(gid, "01", Op.TRY, TxMode.TCC)), 5
            )
        finally:
            await pool.close()
        timers = first.runtime.timers
        assert timers is not None
        await wait_for(lambda: timers.backlog() == 0, what="the timeout schedule to be published")
        await first.stop()  # the replica that knows the timeout is gone; only JetStream remembers it
        tx = await wait_final(second, gid, within=10)
        assert tx.status == pb.STATUS_FAILED
        assert tx.reason == "timeout"
        last_state = [e for e in tx.history if e.kind == "state"][-1]
        assert last_state.actor == second.runtime.engine.actor
        assert second.metric("mesh_timer_lateness_seconds_count", source="jetstream") >= 1
        assert await bank.balance("a") == (0, 0)
    finally:
        await first.stop()
        await second.stop()


async def test_nats_stopped_sweeper_finishes(db_url: str, bank: Bank, gid: str, tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    first = await RunningCoordinator.start(coordinator_settings(db_url, nats_url=nats.url))
    second = await RunningCoordinator.start(coordinator_settings(db_url, nats_url=nats.url))
    try:
        await wait_for(lambda: first.runtime.timers and second.runtime.timers, what="JetStream timers")
        nats.stop()
        bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=2, gid=gid, branch="01")
        steps = [
            pb.Branch(
                branch_id="01",
                action=bank.target("Action"),
                cancel=bank.target("Compensate"),
                payload=payload("a", 2),
            )
        ]
        options = pb.TxOptions(retry_interval_ms=300)
        await first.stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=steps, options=options))
        await wait_for(lambda: bank.calls_of(gid)[("01", "action")] >= 1, what="the first attempt")
        await first.stop()  # its local wake-up goes with it, and NATS is down: only the sweeper is left
        tx = await wait_final(second, gid, within=15)
        assert tx.status == pb.STATUS_SUCCEEDED
        assert [e for e in tx.history if e.kind == "state"][-1].actor == second.runtime.engine.actor
        assert second.metric("mesh_timer_lateness_seconds_count", source="sweeper") >= 1
        assert await bank.balance("a") == (2, 0)
    finally:
        await first.stop()
        await second.stop()
        nats.stop()
