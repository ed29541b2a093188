"""The coordinator's log lines: the ``gid`` on every line about a transaction, and transient branch
failures at WARNING, one per target per interval (the clock is moved, never slept).

Real store (SQLite and MariaDB), real gRPC invoker, real participant.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.commands import OptionsInput, PrepareCommand, SubmitCommand
from coordinator.engine.executor import TRANSIENT_LOG_INTERVAL_SECONDS
from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.model import BranchSpec, Mode, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from coordinator.invoker import GrpcBranchInvoker
from meshkit.observability.logging import TxContextFilter
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.runtime.clock import ManualClock
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from tests.integration.coordinator.clocked import clocked_engine, settle
from tests.integration.coordinator.participants import SERVICE, Bank, payload

EXECUTOR = "coordinator.engine.executor"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def clocked(db_engine: AsyncEngine) -> AsyncIterator[tuple[TxEngine, ManualClock, CollectorRegistry]]:
    settings = EngineSettings(replica_id="logs", default_retry_interval_ms=1_000, jitter=0.0, lease_ms=5_000)
    registry = CollectorRegistry()
    invoker = GrpcBranchInvoker(metrics=ClientRpcMetrics(registry))
    metrics = EngineMetrics(registry, replica="logs")
    async with clocked_engine(db_engine, settings, metrics=metrics, invoker=invoker) as (engine, clock):
        yield engine, clock, registry


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog with the context filter every process's log handler has."""
    context = TxContextFilter()
    caplog.handler.addFilter(context)
    with caplog.at_level(logging.INFO, logger=EXECUTOR):
        yield caplog
    caplog.handler.removeFilter(context)


async def begin_tcc(engine: TxEngine, bank: Bank, gid: str, headers: dict[str, str]) -> None:
    """A TCC with one tried branch, submitted (its confirm then runs)."""
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC), options=OptionsInput(headers=headers)))
    spec = BranchSpec(
        "01",
        action=bank.target("Try"),
        confirm=bank.target("Confirm"),
        cancel=bank.target("Cancel"),
        payload=payload("a", 3),
    )
    await engine.register_branch(gid, spec)
    pool = ChannelPool()
    try:
        ctx = TxContext(gid, "01", Op.TRY, TxMode.TCC)
        await pool.call(bank.target("Try"), payload("a", 3), branch_metadata(ctx), 5)
    finally:
        await pool.close()
    await engine.submit(SubmitCommand(gid=gid, mode=int(Mode.TCC)))


def warnings_of(caplog: pytest.LogCaptureFixture, gid: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == EXECUTOR and r.levelno == logging.WARNING and r.__dict__.get("gid") == gid
    ]


async def test_transient_failures_log_one_warning_per_target_per_interval(
    clocked: tuple[TxEngine, ManualClock, CollectorRegistry],
    bank: Bank,
    gid: str,
    records: pytest.LogCaptureFixture,
) -> None:
    engine, clock, _ = clocked
    bank.fail("Confirm", grpc.StatusCode.UNAVAILABLE, times=5, gid=gid)
    await begin_tcc(engine, bank, gid, {})
    await settle(engine)
    # attempts at 0 s (logged), 1 s, 3 s, 7 s (held back: within the interval), 15 s (logged, 3 held)
    for step in (1.0, 2.0, 4.0):
        clock.advance(step)
        await settle(engine)
    assert 7.0 < TRANSIENT_LOG_INTERVAL_SECONDS <= 15.0
    assert len(warnings_of(records, gid)) == 1
    clock.advance(8.0)
    await settle(engine)
    clock.advance(16.0)
    await settle(engine)

    assert (await engine.query(gid)).tx.status is Status.SUCCEEDED
    lines = warnings_of(records, gid)
    assert [r.__dict__["held_back"] for r in lines] == [0, 3]
    # no initiator trace: the coordinator's lines carry the gid-derived one its branch calls carry
    sent = bank.metadata[(gid, "01", "confirm")]["traceparent"]
    for line in lines:
        assert line.__dict__["trace_id"] == sent[3:35]
        assert (line.__dict__["branch"], line.__dict__["op"]) == ("01", "confirm")
        assert line.__dict__["target"] == bank.target("Confirm")
        assert "UNAVAILABLE" in line.getMessage()


async def test_coordinator_lines_about_a_transaction_carry_its_gid_and_trace(
    clocked: tuple[TxEngine, ManualClock, CollectorRegistry],
    bank: Bank,
    gid: str,
    records: pytest.LogCaptureFixture,
) -> None:
    engine, _, registry = clocked
    await begin_tcc(engine, bank, gid, {"traceparent": TRACEPARENT})
    await settle(engine)

    assert (await engine.query(gid)).tx.status is Status.SUCCEEDED
    done = [r for r in records.records if r.name == EXECUTOR and "SUCCEEDED" in r.getMessage()]
    assert [r.__dict__["gid"] for r in done] == [gid]
    assert done[0].__dict__["trace_id"] == TRACEPARENT[3:35]
    # the branch call went through the client metrics of the branch channel pool
    labels = {"service": SERVICE, "method": "Confirm", "code": "OK"}
    assert registry.get_sample_value("mesh_rpc_client_handled_total", labels) == 1.0
    # and the participant's barrier counted its try and confirm as applied
    applied = {"service": "bank", "outcome": "applied"}
    assert bank.registry.get_sample_value("mesh_barrier_outcomes_total", applied) == 2.0
