"""The SQL subtransaction barrier on real SQLite and MariaDB databases (each test runs on both).

The business change is a real account table (balance, frozen): try freezes 10, confirm spends the
frozen 10, cancel gives it back; so "applied once" is checked on real data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from meshkit.barrier import (
    BARRIER_VERSIONS,
    BarrierCleaner,
    DuplicateMessage,
    FinalityUnavailable,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
    SqlBarrier,
)
from meshkit.errors import BranchFailure
from meshkit.infra.migrate import upgrade
from meshkit.runtime.clock import ManualClock, SystemClock
from meshkit.settings.config import BarrierSettings
from meshkit.tx.context import Op, TxContext, TxMode
from tests.integration.finality_coordinator import Ledger, running_ledger, unreachable_oracle

TIMEOUT = 10.0
POLL_SECONDS = 0.02
AMOUNT = 10
START_BALANCE = 100
# (balance delta, frozen delta) of each op.
DELTAS = {
    Op.TRY: (-AMOUNT, AMOUNT),
    Op.CONFIRM: (0, -AMOUNT),
    Op.CANCEL: (AMOUNT, -AMOUNT),
    Op.ACTION: (-AMOUNT, 0),
    Op.COMPENSATE: (AMOUNT, 0),
    Op.MSG: (-AMOUNT, 0),
}
DAY = 86_400.0


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """A real coordinator that tells the cleaners which gids are final."""
    async with running_ledger(tmp_path) as running:
        yield running


@pytest.fixture
async def engine(db_engine: AsyncEngine) -> AsyncEngine:
    """The test database with the barrier table and a test account table."""
    await upgrade(db_engine, "barrier", BARRIER_VERSIONS)
    async with db_engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE account (owner VARCHAR(160) PRIMARY KEY, "
                "balance INTEGER NOT NULL, frozen INTEGER NOT NULL)"
            )
        )
    return db_engine


async def open_account(engine: AsyncEngine, owner: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO account (owner, balance, frozen) VALUES (:o, :b, 0)"),
            {"o": owner, "b": START_BALANCE},
        )


async def account(engine: AsyncEngine, owner: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT balance, frozen FROM account WHERE owner = :o"), {"o": owner})
        ).one()
    return int(row[0]), int(row[1])


async def barrier_rows(engine: AsyncEngine, gid: str) -> dict[tuple[str, str], str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT branch_id, op, reason FROM tx_barrier WHERE gid = :g"), {"g": gid}
        )
        return {(r[0], r[1]): r[2] for r in rows}


def business(owner: str, op: Op, ran: list[Op] | None = None) -> Callable[[AsyncSession], Awaitable[str]]:
    """The account change of ``op``; records in ``ran`` that it ran."""
    d_balance, d_frozen = DELTAS[op]

    async def run(session: AsyncSession) -> str:
        await session.execute(
            text("UPDATE account SET balance = balance + :b, frozen = frozen + :f WHERE owner = :o"),
            {"b": d_balance, "f": d_frozen, "o": owner},
        )
        if ran is not None:
            ran.append(op)
        return op.value

    return run


def ctx(gid: str, op: Op, branch: str = "01", mode: TxMode = TxMode.TCC) -> TxContext:
    return TxContext(gid=gid, branch_id=branch, op=op, mode=mode)


async def run_op(barrier: SqlBarrier, gid: str, op: Op, branch: str = "01") -> Outcome:
    result = await asyncio.wait_for(barrier.call(ctx(gid, op, branch), business(gid, op)), TIMEOUT)
    return result.outcome


async def test_try_then_confirm(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    tried = await barrier.call(ctx(gid, Op.TRY), business(gid, Op.TRY))
    assert (tried.outcome, tried.value) == (Outcome.APPLIED, "try")
    assert await account(engine, gid) == (90, 10)
    assert await run_op(barrier, gid, Op.CONFIRM) is Outcome.APPLIED

    assert await account(engine, gid) == (90, 0)
    assert await barrier_rows(engine, gid) == {("01", "try"): "try", ("01", "confirm"): "confirm"}


async def test_try_then_cancel(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    assert await run_op(barrier, gid, Op.TRY) is Outcome.APPLIED
    assert await run_op(barrier, gid, Op.CANCEL) is Outcome.APPLIED

    assert await account(engine, gid) == (START_BALANCE, 0)
    assert await barrier_rows(engine, gid) == {("01", "try"): "try", ("01", "cancel"): "cancel"}


async def test_action_then_compensate(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    assert await run_op(barrier, gid, Op.ACTION) is Outcome.APPLIED
    assert await account(engine, gid) == (90, 0)
    assert await run_op(barrier, gid, Op.COMPENSATE) is Outcome.APPLIED
    assert await run_op(barrier, gid, Op.COMPENSATE) is Outcome.DUPLICATE

    assert await account(engine, gid) == (START_BALANCE, 0)


async def test_duplicate_try_confirm_cancel_applied_once(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    # Branch 01 is confirmed, branch 02 cancelled; every op arrives twice.
    outcomes = [await run_op(barrier, gid, op, "01") for op in (Op.TRY, Op.TRY, Op.CONFIRM, Op.CONFIRM)]
    outcomes += [await run_op(barrier, gid, op, "02") for op in (Op.TRY, Op.TRY, Op.CANCEL, Op.CANCEL)]

    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE] * 4
    assert await account(engine, gid) == (90, 0)


async def test_cancel_before_try_is_empty_rollback_and_late_try_rejected(
    engine: AsyncEngine, gid: str
) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)
    ran: list[Op] = []

    cancelled = await asyncio.wait_for(
        barrier.call(ctx(gid, Op.CANCEL), business(gid, Op.CANCEL, ran)), TIMEOUT
    )
    assert cancelled.outcome is Outcome.EMPTY_ROLLBACK
    with pytest.raises(LateTryRejected):
        await asyncio.wait_for(barrier.call(ctx(gid, Op.TRY), business(gid, Op.TRY, ran)), TIMEOUT)
    assert await run_op(barrier, gid, Op.CANCEL) is Outcome.DUPLICATE

    assert ran == []
    assert await account(engine, gid) == (START_BALANCE, 0)
    assert await barrier_rows(engine, gid) == {("01", "try"): "cancel", ("01", "cancel"): "cancel"}


async def test_business_exception_leaves_no_barrier_row(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    async def freeze_then_fail(session: AsyncSession) -> None:
        await business(gid, Op.TRY)(session)
        raise BranchFailure("insufficient balance")

    with pytest.raises(BranchFailure, match="insufficient balance"):
        await barrier.call(ctx(gid, Op.TRY), freeze_then_fail)

    assert await barrier_rows(engine, gid) == {}
    assert await account(engine, gid) == (START_BALANCE, 0)
    # Nothing remembers the failed attempt: a retry runs the business code.
    assert await run_op(barrier, gid, Op.TRY) is Outcome.APPLIED
    assert await account(engine, gid) == (90, 10)


async def test_call_in_joins_the_callers_transaction(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    async with AsyncSession(engine) as session, session.begin():
        result = await barrier.call_in(session, ctx(gid, Op.TRY), business(gid, Op.TRY))
        assert result.outcome is Outcome.APPLIED
        await session.rollback()
    assert await barrier_rows(engine, gid) == {}
    assert await account(engine, gid) == (START_BALANCE, 0)

    async with AsyncSession(engine) as session, session.begin():
        await barrier.call_in(session, ctx(gid, Op.TRY), business(gid, Op.TRY))
    assert await barrier_rows(engine, gid) == {("01", "try"): "try"}
    assert await account(engine, gid) == (90, 10)


async def test_concurrent_identical_cancels_apply_once(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)
    assert await run_op(barrier, gid, Op.TRY) is Outcome.APPLIED
    ran: list[Op] = []

    def slow_cancel() -> Callable[[AsyncSession], Awaitable[str]]:
        cancel = business(gid, Op.CANCEL, ran)

        async def run(session: AsyncSession) -> str:
            value = await cancel(session)
            await asyncio.sleep(0.1)  # hold the transaction so that the other call overlaps it
            return value

        return run

    results = await asyncio.wait_for(
        asyncio.gather(
            barrier.call(ctx(gid, Op.CANCEL), slow_cancel()),
            barrier.call(ctx(gid, Op.CANCEL), slow_cancel()),
        ),
        TIMEOUT,
    )

    assert sorted(r.outcome for r in results) == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert ran == [Op.CANCEL]
    assert await account(engine, gid) == (START_BALANCE, 0)


async def test_concurrent_try_and_cancel_never_both_skip_and_run(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)

    tried, cancelled = await asyncio.wait_for(
        asyncio.gather(
            barrier.call(ctx(gid, Op.TRY), business(gid, Op.TRY)),
            barrier.call(ctx(gid, Op.CANCEL), business(gid, Op.CANCEL)),
            return_exceptions=True,
        ),
        TIMEOUT,
    )

    # Either try ran and cancel undid it, or cancel was an empty rollback and try was rejected.
    if isinstance(tried, LateTryRejected):
        assert not isinstance(cancelled, BaseException)
        assert cancelled.outcome is Outcome.EMPTY_ROLLBACK
    else:
        assert not isinstance(tried, BaseException) and not isinstance(cancelled, BaseException)
        assert (tried.outcome, cancelled.outcome) == (Outcome.APPLIED, Outcome.APPLIED)
    assert await account(engine, gid) == (START_BALANCE, 0)


async def test_cleanup_removes_only_rows_past_retention(
    engine: AsyncEngine, gid: str, ledger: Ledger
) -> None:
    clock = ManualClock()
    barrier = SqlBarrier(engine, clock)
    settings = BarrierSettings(retention_days=7, cleanup_batch=2)
    old, new = f"{gid}-old", f"{gid}-new"
    for owner in (old, new):
        await open_account(engine, owner)
        await ledger.finish(owner)
    for branch in ("01", "02", "03"):
        await run_op(barrier, old, Op.TRY, branch)  # 3 rows, 2 per batch: more than one batch
    await run_op(barrier, old, Op.CANCEL, "04")  # empty rollback: 2 rows
    clock.advance(6 * DAY)
    await run_op(barrier, new, Op.TRY)
    clock.advance(1 * DAY + 1)

    deleted = await BarrierCleaner(engine, settings, clock, ledger.oracle).run_once()

    assert deleted == 5
    assert await barrier_rows(engine, old) == {}
    assert await barrier_rows(engine, new) == {("01", "try"): "try"}
    assert await BarrierCleaner(engine, settings, clock, ledger.oracle).run_once() == 0


async def test_item1_cleanup_deletes_every_row_of_a_final_gid_at_once(
    engine: AsyncEngine, gid: str, ledger: Ledger
) -> None:
    """A final gid whose oldest row is past the retention loses ALL its rows, the young ones too (before,
    only the old try row went and the cancel row stayed: a half-deleted gid)."""
    clock = ManualClock()
    barrier = SqlBarrier(engine, clock)
    settings = BarrierSettings(retention_days=7, cleanup_batch=2)
    await open_account(engine, gid)
    await ledger.finish(gid)
    await run_op(barrier, gid, Op.TRY)
    clock.advance(6 * DAY)
    assert await run_op(barrier, gid, Op.CANCEL) is Outcome.APPLIED
    clock.advance(1 * DAY + 1)  # the try is past the retention, the cancel one day old

    assert await BarrierCleaner(engine, settings, clock, ledger.oracle).run_once() == 2
    assert await barrier_rows(engine, gid) == {}


async def test_item1_cleanup_deletes_final_and_unknown_gids_and_keeps_unfinished_ones(
    engine: AsyncEngine, gid: str, ledger: Ledger
) -> None:
    clock = ManualClock()
    barrier = SqlBarrier(engine, clock)
    settings = BarrierSettings(retention_days=7, cleanup_batch=2)
    unfinished = [f"{gid}-open{i}" for i in range(3)]  # oldest first: the cursor must walk past them
    final, unknown = f"{gid}-final", f"{gid}-unknown"
    for owner in unfinished:
        await ledger.open(owner)
    await ledger.finish(final)
    for owner in [*unfinished, final, unknown]:
        await open_account(engine, owner)
        await run_op(barrier, owner, Op.TRY, "01")
        await run_op(barrier, owner, Op.TRY, "02")
        clock.advance(1)
    clock.advance(30 * DAY)  # far past retention: age alone would delete everything

    deleted = await BarrierCleaner(engine, settings, clock, ledger.oracle).run_once()

    assert deleted == 4
    assert await barrier_rows(engine, final) == {}
    assert await barrier_rows(engine, unknown) == {}
    for owner in unfinished:
        assert await barrier_rows(engine, owner) == {("01", "try"): "try", ("02", "try"): "try"}
        # The transaction is still being driven: its late cancel undoes the try (not an empty rollback).
        assert await run_op(barrier, owner, Op.CANCEL, "01") is Outcome.APPLIED
        assert await account(engine, owner) == (START_BALANCE - AMOUNT, AMOUNT)


async def test_item1_cleanup_deletes_nothing_when_the_coordinator_is_unreachable(
    engine: AsyncEngine, gid: str
) -> None:
    clock = ManualClock()
    barrier = SqlBarrier(engine, clock)
    await open_account(engine, gid)
    await run_op(barrier, gid, Op.TRY, "01")
    clock.advance(30 * DAY)
    oracle = unreachable_oracle()
    cleaner = BarrierCleaner(engine, BarrierSettings(retention_days=1), clock, oracle)
    try:
        with pytest.raises(FinalityUnavailable):
            await cleaner.run_once()
        task = asyncio.create_task(cleaner.run_forever())
        try:
            for _ in range(int(TIMEOUT / POLL_SECONDS)):  # a round that gives up still ends
                if cleaner.rounds:
                    break
                await asyncio.sleep(POLL_SECONDS)
            assert cleaner.rounds == 1
        finally:
            task.cancel()
    finally:
        await oracle.close()
    assert await barrier_rows(engine, gid) == {("01", "try"): "try"}


async def test_cleanup_runs_every_interval(engine: AsyncEngine, gid: str, ledger: Ledger) -> None:
    clock = ManualClock()
    barrier = SqlBarrier(engine, clock)
    settings = BarrierSettings(retention_days=1, cleanup_interval_seconds=3600)
    await open_account(engine, gid)
    await ledger.finish(gid)
    await run_op(barrier, gid, Op.TRY, "01")
    clock.advance(DAY + 1)
    task = asyncio.create_task(BarrierCleaner(engine, settings, clock, ledger.oracle).run_forever())
    try:
        await wait_until_no_rows(engine, gid, "01")
        await run_op(barrier, gid, Op.TRY, "02")
        clock.advance(DAY + 1)  # passes the retention and wakes the cleaner's sleep
        await wait_until_no_rows(engine, gid, "02")
    finally:
        task.cancel()
    assert await barrier_rows(engine, gid) == {}


async def wait_until_no_rows(engine: AsyncEngine, gid: str, branch: str) -> None:
    for _ in range(int(TIMEOUT / POLL_SECONDS)):
        if all(b != branch for b, _ in await barrier_rows(engine, gid)):
            return
        await asyncio.sleep(POLL_SECONDS)
    pytest.fail(f"barrier rows of branch {branch} still there after {TIMEOUT}s")


async def test_msg_local_transaction_then_query_prepared_ok(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)
    msg = ctx(gid, Op.MSG, "00", TxMode.MSG)

    result = await barrier.call(msg, business(gid, Op.MSG))
    assert result.outcome is Outcome.APPLIED
    await asyncio.wait_for(barrier.query_prepared(gid), TIMEOUT)
    with pytest.raises(DuplicateMessage):
        await barrier.call(msg, business(gid, Op.MSG))

    await barrier.query_prepared(gid)
    assert await account(engine, gid) == (90, 0)
    assert await barrier_rows(engine, gid) == {("00", "msg"): "msg"}


async def test_query_prepared_first_fails_and_late_local_transaction_refused(
    engine: AsyncEngine, gid: str
) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)
    ran: list[Op] = []

    with pytest.raises(MessageRolledBack):
        await asyncio.wait_for(barrier.query_prepared(gid), TIMEOUT)
    with pytest.raises(MessageRolledBack):
        await asyncio.wait_for(
            barrier.call(ctx(gid, Op.MSG, "00", TxMode.MSG), business(gid, Op.MSG, ran)), TIMEOUT
        )
    with pytest.raises(MessageRolledBack):
        await barrier.query_prepared(gid)

    assert ran == []
    assert await account(engine, gid) == (START_BALANCE, 0)
    assert await barrier_rows(engine, gid) == {("00", "msg"): "rollback"}


async def test_query_prepared_waits_for_in_flight_local_transaction(engine: AsyncEngine, gid: str) -> None:
    barrier = SqlBarrier(engine, SystemClock())
    await open_account(engine, gid)
    inside, release = asyncio.Event(), asyncio.Event()

    async def held_local_transaction(session: AsyncSession) -> str:
        value = await business(gid, Op.MSG)(session)
        inside.set()
        await release.wait()
        return value

    local = asyncio.create_task(barrier.call(ctx(gid, Op.MSG, "00", TxMode.MSG), held_local_transaction))
    await asyncio.wait_for(inside.wait(), TIMEOUT)
    check = asyncio.create_task(barrier.query_prepared(gid))
    await asyncio.sleep(0.2)
    assert not check.done()  # blocked behind the in-flight local transaction
    release.set()

    assert (await asyncio.wait_for(local, TIMEOUT)).outcome is Outcome.APPLIED
    await asyncio.wait_for(check, TIMEOUT)  # committed: OK
    assert await account(engine, gid) == (90, 0)
