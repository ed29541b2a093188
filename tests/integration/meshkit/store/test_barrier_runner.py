"""The barrier on the store runner (:class:`RunnerBarrier`) on real SQLite and MariaDB.

The scenarios of meshkit/barrier/test_barrier_sql.py with the same assertions (outcomes, account
balance and frozen, barrier rows), business code written as units of work. The sequential ones are
rows of :data:`SCENARIOS`; the concurrent ones and those about the business code are tests of their own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import (
    BarrierMetrics,
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
    RunnerBarrier,
)
from meshkit.barrier.outcome import BarrierResult
from meshkit.errors import BranchFailure
from meshkit.runtime.clock import SystemClock
from meshkit.store import Conn, StoreRunner, Unit
from meshkit.tx.context import Op, TxMode
from tests.integration.meshkit.barrier.test_barrier_sql import (
    DELTAS,
    START_BALANCE,
    TIMEOUT,
    account,
    barrier_rows,
    ctx,
)
from tests.integration.meshkit.barrier.test_barrier_sql import open_account as open_account_of

CHECK = None  # a step that is the MSG check-back (query_prepared) rather than a branch op
Expected = Outcome | type[BranchFailure] | None


@dataclass(frozen=True)
class Step:
    """One call and what it must answer (an Outcome, a BranchFailure class; None = query_prepared OK)."""

    op: Op | None
    expect: Expected
    branch: str = "01"


@dataclass(frozen=True)
class Scenario:
    """Steps in order, then the account (balance, frozen) and the barrier rows they must leave."""

    steps: tuple[Step, ...]
    account: tuple[int, int]
    rows: dict[tuple[str, str], str] | None = None


SCENARIOS = {
    "try_then_confirm": Scenario(
        (Step(Op.TRY, Outcome.APPLIED), Step(Op.CONFIRM, Outcome.APPLIED)),
        (90, 0),
        {("01", "try"): "try", ("01", "confirm"): "confirm"},
    ),
    "try_then_cancel": Scenario(
        (Step(Op.TRY, Outcome.APPLIED), Step(Op.CANCEL, Outcome.APPLIED)),
        (START_BALANCE, 0),
        {("01", "try"): "try", ("01", "cancel"): "cancel"},
    ),
    "action_then_compensate": Scenario(
        (
            Step(Op.ACTION, Outcome.APPLIED),
            Step(Op.COMPENSATE, Outcome.APPLIED),
            Step(Op.COMPENSATE, Outcome.DUPLICATE),
        ),
        (START_BALANCE, 0),
    ),
    "duplicate_try_confirm_cancel_applied_once": Scenario(
        tuple(
            Step(op, outcome, branch)
            for branch, ops in (("01", (Op.TRY, Op.CONFIRM)), ("02", (Op.TRY, Op.CANCEL)))
            for op in ops
            for outcome in (Outcome.APPLIED, Outcome.DUPLICATE)
        ),
        (90, 0),
    ),
    "cancel_before_try_is_empty_rollback_and_late_try_rejected": Scenario(
        (
            Step(Op.CANCEL, Outcome.EMPTY_ROLLBACK),
            Step(Op.TRY, LateTryRejected),
            Step(Op.CANCEL, Outcome.DUPLICATE),
        ),
        (START_BALANCE, 0),
        {("01", "try"): "cancel", ("01", "cancel"): "cancel"},
    ),
    "msg_local_transaction_then_query_prepared_ok": Scenario(
        (Step(Op.MSG, Outcome.APPLIED, "00"), Step(CHECK, None), Step(Op.MSG, DuplicateMessage, "00")),
        (90, 0),
        {("00", "msg"): "msg"},
    ),
    "query_prepared_first_fails_and_late_local_transaction_refused": Scenario(
        (
            Step(CHECK, MessageRolledBack),
            Step(Op.MSG, MessageRolledBack, "00"),
            Step(CHECK, MessageRolledBack),
        ),
        (START_BALANCE, 0),
        {("00", "msg"): "rollback"},
    ),
}


def business(owner: str, op: Op, ran: list[Op] | None = None) -> Unit[str]:
    """The account change of ``op`` as a unit of work; records in ``ran`` that it ran."""
    d_balance, d_frozen = DELTAS[op]

    def run(conn: Conn) -> str:
        conn.execute(
            "UPDATE account SET balance = balance + ?, frozen = frozen + ? WHERE owner = ?",
            (d_balance, d_frozen, owner),
        )
        if ran is not None:
            ran.append(op)
        return op.value

    return run


class Harness:
    """A runner barrier over one test account named after the gid."""

    def __init__(
        self, engine: AsyncEngine, runner: StoreRunner, gid: str, metrics: BarrierMetrics | None = None
    ) -> None:
        self.engine = engine
        self.runner = runner
        self.gid = gid
        self.barrier = RunnerBarrier(runner, SystemClock(), metrics=metrics)
        self.ran: list[Op] = []

    def call(
        self, op: Op, branch: str = "01", body: Unit[str] | None = None
    ) -> asyncio.Task[BarrierResult[str]]:
        """Start one branch op (``body`` or the account change of ``op``)."""
        mode = TxMode.MSG if op is Op.MSG else TxMode.TCC
        unit = body or business(self.gid, op, self.ran)
        return asyncio.create_task(self.barrier.run(ctx(self.gid, op, branch, mode), unit))

    async def step(self, step: Step) -> Expected:
        """Run ``step``; what it answered (the outcome, the BranchFailure class, None for a check-back OK)."""
        try:
            if step.op is None:
                await asyncio.wait_for(self.barrier.query_prepared(self.gid), TIMEOUT)
                return None
            return (await asyncio.wait_for(self.call(step.op, step.branch), TIMEOUT)).outcome
        except BranchFailure as exc:
            return type(exc)

    async def state(self) -> tuple[tuple[int, int], dict[tuple[str, str], str]]:
        """The account and the barrier rows of the gid."""
        return await account(self.engine, self.gid), await barrier_rows(self.engine, self.gid)


@pytest.fixture
async def harness(engine: AsyncEngine, runner: StoreRunner, gid: str) -> Harness:
    """The harness with the gid's account opened."""
    await open_account_of(engine, gid)
    return Harness(engine, runner, gid)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_barrier_rule_scenario(harness: Harness, name: str) -> None:
    scenario = SCENARIOS[name]

    answers = [await harness.step(step) for step in scenario.steps]

    assert answers == [step.expect for step in scenario.steps]
    balance, rows = await harness.state()
    assert balance == scenario.account
    if scenario.rows is not None:
        assert rows == scenario.rows


async def test_applied_result_carries_the_business_value(harness: Harness) -> None:
    tried = await harness.call(Op.TRY)
    assert (tried.outcome, tried.value) == (Outcome.APPLIED, "try")
    assert await harness.state() == ((90, 10), {("01", "try"): "try"})


async def test_duplicates_in_one_commit_group_applied_once(harness: Harness) -> None:
    """The same op submitted 8 times at once (SQLite: one group commit) still applies once."""
    await harness.call(Op.TRY)
    confirms = await asyncio.wait_for(asyncio.gather(*(harness.call(Op.CONFIRM) for _ in range(8))), TIMEOUT)

    assert sorted(r.outcome for r in confirms) == sorted([Outcome.APPLIED] + [Outcome.DUPLICATE] * 7)
    assert harness.ran == [Op.TRY, Op.CONFIRM]


async def test_business_exception_leaves_no_barrier_row(harness: Harness) -> None:
    def freeze_then_fail(conn: Conn) -> str:
        business(harness.gid, Op.TRY)(conn)
        raise BranchFailure("insufficient balance")

    with pytest.raises(BranchFailure, match="insufficient balance"):
        await harness.call(Op.TRY, body=freeze_then_fail)
    assert await harness.state() == ((START_BALANCE, 0), {})

    # Nothing remembers the failed attempt: a retry runs the business code.
    assert (await harness.call(Op.TRY)).outcome is Outcome.APPLIED
    assert (await harness.state())[0] == (90, 10)


async def test_unit_joins_the_callers_unit(harness: Harness) -> None:
    guarded = harness.barrier.unit(ctx(harness.gid, Op.TRY), business(harness.gid, Op.TRY))

    def guarded_then_fail(conn: Conn) -> None:
        assert guarded(conn).outcome is Outcome.APPLIED
        raise BranchFailure("the caller's own step failed")

    with pytest.raises(BranchFailure):
        await harness.runner.run(guarded_then_fail)
    assert await harness.state() == ((START_BALANCE, 0), {})

    await harness.runner.run(harness.barrier.unit(ctx(harness.gid, Op.TRY), business(harness.gid, Op.TRY)))
    assert await harness.state() == ((90, 10), {("01", "try"): "try"})


async def test_concurrent_identical_cancels_apply_once(harness: Harness) -> None:
    await harness.call(Op.TRY)
    cancel = business(harness.gid, Op.CANCEL, harness.ran)

    def slow_cancel(conn: Conn) -> str:
        value = cancel(conn)
        time.sleep(0.1)  # hold the transaction so that the other call overlaps it
        return value

    pair = [harness.call(Op.CANCEL, body=slow_cancel) for _ in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*pair), TIMEOUT)

    assert sorted(r.outcome for r in results) == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert harness.ran == [Op.TRY, Op.CANCEL]
    assert (await harness.state())[0] == (START_BALANCE, 0)


async def test_concurrent_try_and_cancel_never_both_skip_and_run(harness: Harness) -> None:
    both = [harness.call(Op.TRY), harness.call(Op.CANCEL)]
    tried, cancelled = await asyncio.wait_for(asyncio.gather(*both, return_exceptions=True), TIMEOUT)

    # Either try ran and cancel undid it, or cancel was an empty rollback and try was rejected.
    outcomes = {
        "try": type(tried) if isinstance(tried, BaseException) else tried.outcome,
        "cancel": type(cancelled) if isinstance(cancelled, BaseException) else cancelled.outcome,
    }
    assert outcomes in (
        {"try": Outcome.APPLIED, "cancel": Outcome.APPLIED},
        {"try": LateTryRejected, "cancel": Outcome.EMPTY_ROLLBACK},
    )
    assert (await harness.state())[0] == (START_BALANCE, 0)


async def test_query_prepared_waits_for_in_flight_local_transaction(harness: Harness) -> None:
    inside, release = threading.Event(), threading.Event()
    msg_change = business(harness.gid, Op.MSG)

    def held_local_transaction(conn: Conn) -> str:
        value = msg_change(conn)
        inside.set()
        release.wait(TIMEOUT)
        return value

    local = harness.call(Op.MSG, "00", body=held_local_transaction)
    assert await asyncio.to_thread(inside.wait, TIMEOUT)
    check = asyncio.create_task(harness.barrier.query_prepared(harness.gid))
    await asyncio.sleep(0.2)
    assert not check.done()  # blocked behind the in-flight local transaction
    release.set()

    assert (await asyncio.wait_for(local, TIMEOUT)).outcome is Outcome.APPLIED
    await asyncio.wait_for(check, TIMEOUT)  # committed: OK
    assert (await harness.state())[0] == (90, 0)


async def test_barrier_outcomes_are_counted_on_the_registry_passed_in(
    engine: AsyncEngine, runner: StoreRunner, gid: str
) -> None:
    await open_account_of(engine, gid)
    registry = CollectorRegistry()
    counted = Harness(engine, runner, gid, BarrierMetrics(registry, "points_svc"))

    steps = [
        Step(Op.CANCEL, Outcome.EMPTY_ROLLBACK),
        Step(Op.TRY, LateTryRejected),
        Step(Op.CANCEL, Outcome.DUPLICATE),
        Step(Op.TRY, Outcome.APPLIED, "02"),
    ]
    assert [await counted.step(step) for step in steps] == [step.expect for step in steps]

    def count(outcome: str) -> float | None:
        return registry.get_sample_value(
            "mesh_barrier_outcomes_total", {"service": "points_svc", "outcome": outcome}
        )

    counts = {o: count(o) for o in ("applied", "duplicate", "empty_rollback", "late_try_rejected")}
    assert counts == {"applied": 1.0, "duplicate": 1.0, "empty_rollback": 1.0, "late_try_rejected": 1.0}
