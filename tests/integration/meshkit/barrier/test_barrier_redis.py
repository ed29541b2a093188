"""The Redis subtransaction barrier (barrier + business body in one Lua script) on a real redis-server.

The business change is a real account hash ``acct:{gid}`` (balance, frozen): try freezes ARGV[1],
confirm spends it, cancel gives it back; so "applied once" is checked on real data. Keys carry the
gid hash tag, as they must in cluster mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from meshkit.barrier import (
    BarrierMetrics,
    DuplicateMessage,
    FinalityUnavailable,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
    RedisBarrier,
    RedisBarrierCleaner,
    RedisBarrierScript,
)
from meshkit.barrier.redis import INDEX_KEY, barrier_key, legacy_key
from meshkit.errors import BranchFailure
from meshkit.runtime.clock import Clock, ManualClock, SystemClock
from meshkit.settings.config import BarrierSettings
from meshkit.tx.context import Op, TxContext, TxMode
from tests.integration.finality_coordinator import Ledger, running_ledger, unreachable_oracle

TIMEOUT = 10.0
POLL_SECONDS = 0.02
AMOUNT = 10
START_BALANCE = 100
DAY = 86_400.0

TRY_BODY = """
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
if balance < tonumber(ARGV[1]) then
  return redis.error_reply('insufficient balance')
end
redis.call('HINCRBY', KEYS[1], 'balance', -ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'frozen', ARGV[1])
"""
CONFIRM_BODY = "return redis.call('HINCRBY', KEYS[1], 'frozen', -ARGV[1])"
CANCEL_BODY = """
redis.call('HINCRBY', KEYS[1], 'frozen', -ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
"""
# The MSG local transaction: spend from the balance and remember that it ran.
MSG_BODY = """
redis.call('HINCRBY', KEYS[1], 'balance', -ARGV[1])
return redis.call('INCR', KEYS[2])
"""
BODIES = {
    Op.TRY: TRY_BODY,
    Op.CONFIRM: CONFIRM_BODY,
    Op.CANCEL: CANCEL_BODY,
    Op.ACTION: TRY_BODY,
    Op.COMPENSATE: CANCEL_BODY,
}


class Bank:
    """Barrier scripts for the account ops of one test, and the account's keys."""

    def __init__(
        self,
        client: aioredis.Redis,
        gid: str,
        clock: Clock | None = None,
        metrics: BarrierMetrics | None = None,
    ) -> None:
        self.client = client
        self.gid = gid
        self.barrier = RedisBarrier(client, clock or SystemClock(), metrics=metrics)
        self.scripts: dict[Op, RedisBarrierScript] = {op: self.barrier.script(b) for op, b in BODIES.items()}
        self.msg_script = self.barrier.script(MSG_BODY)
        self.account_key = f"acct:{{{gid}}}"
        self.msg_runs_key = f"msgruns:{{{gid}}}"

    async def open(self, balance: int = START_BALANCE) -> None:
        await self.client.hset(self.account_key, mapping={"balance": balance, "frozen": 0})

    async def account(self) -> tuple[int, int]:
        balance, frozen = await self.client.hmget(self.account_key, ["balance", "frozen"])
        assert balance is not None and frozen is not None
        return int(balance), int(frozen)

    async def run(self, op: Op, branch: str = "01", amount: int = AMOUNT) -> Outcome:
        ctx = TxContext(gid=self.gid, branch_id=branch, op=op, mode=TxMode.TCC)
        result = await asyncio.wait_for(
            self.scripts[op].call(ctx, keys=[self.account_key], args=[amount]), TIMEOUT
        )
        return result.outcome

    async def run_msg(self) -> Outcome:
        ctx = TxContext(gid=self.gid, branch_id="00", op=Op.MSG, mode=TxMode.MSG)
        result = await asyncio.wait_for(
            self.msg_script.call(ctx, keys=[self.account_key, self.msg_runs_key], args=[AMOUNT]), TIMEOUT
        )
        return result.outcome

    async def msg_runs(self) -> int:
        return int(await self.client.get(self.msg_runs_key) or 0)

    async def barrier_keys(self) -> dict[str, str]:
        """The gid's barrier entries, ``<branch>:<op>`` -> reason."""
        entries = await self.client.hgetall(barrier_key(self.gid))
        return {text(field): text(reason) for field, reason in entries.items()}


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """A real coordinator that tells the cleaner which gids are final."""
    async with running_ledger(tmp_path) as running:
        yield running


@pytest.fixture
def bank(redis_client: aioredis.Redis, gid: str) -> Bank:
    return Bank(redis_client, gid)


async def test_try_then_confirm(bank: Bank) -> None:
    await bank.open()

    ctx = TxContext(gid=bank.gid, branch_id="01", op=Op.TRY, mode=TxMode.TCC)
    tried = await bank.scripts[Op.TRY].call(ctx, keys=[bank.account_key], args=[AMOUNT])
    assert (tried.outcome, tried.value) == (Outcome.APPLIED, AMOUNT)  # the body's return value
    assert await bank.account() == (90, 10)
    assert await bank.run(Op.CONFIRM) is Outcome.APPLIED

    assert await bank.account() == (90, 0)
    assert await bank.barrier_keys() == {"01:try": "try", "01:confirm": "confirm"}


async def test_try_then_cancel(bank: Bank) -> None:
    await bank.open()

    assert await bank.run(Op.TRY) is Outcome.APPLIED
    assert await bank.run(Op.CANCEL) is Outcome.APPLIED

    assert await bank.account() == (START_BALANCE, 0)
    assert await bank.barrier_keys() == {"01:try": "try", "01:cancel": "cancel"}


async def test_action_then_compensate(bank: Bank) -> None:
    await bank.open()

    assert await bank.run(Op.ACTION) is Outcome.APPLIED
    assert await bank.run(Op.COMPENSATE) is Outcome.APPLIED
    assert await bank.run(Op.COMPENSATE) is Outcome.DUPLICATE

    assert await bank.account() == (START_BALANCE, 0)


async def test_duplicate_try_confirm_cancel_applied_once(bank: Bank) -> None:
    await bank.open()

    outcomes = [await bank.run(op, "01") for op in (Op.TRY, Op.TRY, Op.CONFIRM, Op.CONFIRM)]
    outcomes += [await bank.run(op, "02") for op in (Op.TRY, Op.TRY, Op.CANCEL, Op.CANCEL)]

    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE] * 4
    assert await bank.account() == (90, 0)


async def test_cancel_before_try_is_empty_rollback_and_late_try_rejected(bank: Bank) -> None:
    await bank.open()

    assert await bank.run(Op.CANCEL) is Outcome.EMPTY_ROLLBACK
    assert await bank.account() == (START_BALANCE, 0)  # business skipped
    with pytest.raises(LateTryRejected):
        await bank.run(Op.TRY)
    assert await bank.run(Op.CANCEL) is Outcome.DUPLICATE

    assert await bank.account() == (START_BALANCE, 0)
    assert await bank.barrier_keys() == {"01:try": "cancel", "01:cancel": "cancel"}


async def test_business_failure_leaves_no_barrier_key(bank: Bank) -> None:
    await bank.open(balance=5)

    with pytest.raises(BranchFailure, match="insufficient balance"):
        await bank.run(Op.TRY)

    assert await bank.barrier_keys() == {}
    assert await bank.account() == (5, 0)
    # Nothing remembers the failed attempt: a retry that can succeed runs the body.
    assert await bank.run(Op.TRY, amount=5) is Outcome.APPLIED
    assert await bank.account() == (0, 5)


async def test_concurrent_identical_cancels_apply_once(bank: Bank) -> None:
    await bank.open()
    assert await bank.run(Op.TRY) is Outcome.APPLIED

    outcomes = await asyncio.gather(bank.run(Op.CANCEL), bank.run(Op.CANCEL))

    assert sorted(outcomes) == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert await bank.account() == (START_BALANCE, 0)


async def test_item1_entries_have_no_ttl_and_the_index_holds_the_latest_write(
    redis_client: aioredis.Redis, gid: str
) -> None:
    clock = ManualClock()
    bank = Bank(redis_client, gid, clock)
    await bank.open()
    assert await bank.run(Op.TRY) is Outcome.APPLIED
    clock.advance(DAY)
    assert await bank.run(Op.CANCEL) is Outcome.APPLIED

    assert await redis_client.pttl(barrier_key(gid)) == -1  # no expiry: only the cleaner deletes
    assert await redis_client.zscore(INDEX_KEY, gid) == int(clock.now() * 1000)
    assert await bank.barrier_keys() == {"01:try": "try", "01:cancel": "cancel"}
    # A clock that went back (another replica's) never makes the gid look older than it is.
    clock.set(clock.now() - 2 * DAY)
    assert await bank.run(Op.CANCEL) is Outcome.DUPLICATE
    assert await bank.run(Op.TRY, "02") is Outcome.APPLIED
    assert await redis_client.zscore(INDEX_KEY, gid) == int(clock.now() * 1000 + 2 * DAY * 1000)


async def test_item1_cleaner_keeps_a_hash_until_its_latest_entry_is_past_retention(
    redis_client: aioredis.Redis, gid: str, ledger: Ledger
) -> None:
    """A confirm written days after its try keeps the whole hash for a full retention period after it
    (before, the index held the try's time and the confirm's entry went with it 1 day later), and the
    hash then goes whole: every entry and the index member."""
    clock = ManualClock(start=3_000_000_000.0)  # later than every other test's entries in this Redis
    bank = Bank(redis_client, gid, clock)
    await ledger.finish(gid)
    await bank.open()
    assert await bank.run(Op.TRY) is Outcome.APPLIED
    clock.advance(6 * DAY)
    assert await bank.run(Op.CONFIRM) is Outcome.APPLIED
    confirmed_ms = int(clock.now() * 1000)
    cleaner = RedisBarrierCleaner(
        redis_client, BarrierSettings(retention_days=7, cleanup_batch=2), clock, ledger.oracle
    )

    clock.advance(2 * DAY)  # the try is 8 days old, the confirm 2
    await cleaner.run_once()
    assert await bank.barrier_keys() == {"01:try": "try", "01:confirm": "confirm"}
    assert await redis_client.zscore(INDEX_KEY, gid) == confirmed_ms

    clock.advance(5 * DAY + 1)  # the confirm is past the retention too
    await cleaner.run_once()
    assert not await redis_client.exists(barrier_key(gid))
    assert await redis_client.zscore(INDEX_KEY, gid) is None


async def test_item1_legacy_key_of_an_in_flight_transaction_is_adopted(bank: Bank) -> None:
    await bank.open(START_BALANCE - AMOUNT)
    await bank.client.hset(bank.account_key, "frozen", AMOUNT)  # a try applied before the upgrade
    await bank.client.set(legacy_key(bank.gid, "01", "try"), "try", px=60_000)

    assert await bank.run(Op.CANCEL) is Outcome.APPLIED  # not an empty rollback

    assert await bank.account() == (START_BALANCE, 0)
    assert await bank.barrier_keys() == {"01:try": "try", "01:cancel": "cancel"}
    assert not await bank.client.exists(legacy_key(bank.gid, "01", "try"))


async def test_item1_cleaner_deletes_final_and_unknown_gids_and_keeps_unfinished_ones(
    redis_client: aioredis.Redis, gid: str, ledger: Ledger
) -> None:
    clock = ManualClock(start=3_000_000_000.0)  # later than every other test's entries in this Redis
    banks = {
        name: Bank(redis_client, f"{gid}-{name}", clock) for name in ("open0", "open1", "final", "unknown")
    }
    for name, bank in banks.items():
        if name.startswith("open"):
            await ledger.open(bank.gid)
        elif name == "final":
            await ledger.finish(bank.gid)
        await bank.open()
        assert await bank.run(Op.TRY, "01") is Outcome.APPLIED
        assert await bank.run(Op.TRY, "02") is Outcome.APPLIED
        clock.advance(1)
    young = Bank(redis_client, f"{gid}-young", clock)
    clock.advance(30 * DAY)
    await ledger.finish(young.gid)
    await young.open()
    assert await young.run(Op.TRY) is Outcome.APPLIED
    cleaner = RedisBarrierCleaner(
        redis_client, BarrierSettings(retention_days=7, cleanup_batch=2), clock, ledger.oracle
    )

    await cleaner.run_once()

    for name in ("final", "unknown"):
        assert await banks[name].barrier_keys() == {}
        assert await redis_client.zscore(INDEX_KEY, banks[name].gid) is None
    assert await young.barrier_keys() == {"01:try": "try"}
    for name in ("open0", "open1"):
        bank = banks[name]
        assert await bank.barrier_keys() == {"01:try": "try", "02:try": "try"}
        assert await bank.run(Op.CANCEL, "01") is Outcome.APPLIED  # the undo still happens
        assert await bank.account() == (START_BALANCE - AMOUNT, AMOUNT)


async def test_item1_cleaner_deletes_nothing_when_the_coordinator_is_unreachable(
    redis_client: aioredis.Redis, gid: str
) -> None:
    clock = ManualClock(start=3_000_000_000.0)
    bank = Bank(redis_client, gid, clock)
    await bank.open()
    assert await bank.run(Op.TRY) is Outcome.APPLIED
    clock.advance(30 * DAY)
    oracle = unreachable_oracle()
    try:
        cleaner = RedisBarrierCleaner(redis_client, BarrierSettings(retention_days=1), clock, oracle)
        with pytest.raises(FinalityUnavailable):
            await cleaner.run_once()
    finally:
        await oracle.close()
    assert await bank.barrier_keys() == {"01:try": "try"}


async def test_msg_local_transaction_then_query_prepared_ok(bank: Bank) -> None:
    await bank.open()

    assert await bank.run_msg() is Outcome.APPLIED
    await asyncio.wait_for(bank.barrier.query_prepared(bank.gid), TIMEOUT)
    with pytest.raises(DuplicateMessage):
        await bank.run_msg()

    await bank.barrier.query_prepared(bank.gid)
    assert await bank.msg_runs() == 1
    assert await bank.account() == (90, 0)
    assert await bank.barrier_keys() == {"00:msg": "msg"}


async def test_query_prepared_first_fails_and_late_local_transaction_refused(bank: Bank) -> None:
    await bank.open()

    with pytest.raises(MessageRolledBack):
        await asyncio.wait_for(bank.barrier.query_prepared(bank.gid), TIMEOUT)
    with pytest.raises(MessageRolledBack):
        await bank.run_msg()
    with pytest.raises(MessageRolledBack):
        await bank.barrier.query_prepared(bank.gid)

    assert await bank.msg_runs() == 0
    assert await bank.account() == (START_BALANCE, 0)
    assert await bank.barrier_keys() == {"00:msg": "rollback"}


async def test_script_reloads_after_script_flush(bank: Bank) -> None:
    await bank.open()
    assert await bank.run(Op.TRY) is Outcome.APPLIED

    await bank.client.script_flush()

    assert await bank.run(Op.CONFIRM) is Outcome.APPLIED  # NOSCRIPT -> reloaded
    assert await bank.account() == (90, 0)


async def test_barrier_outcomes_are_counted_on_the_registry_passed_in(
    redis_client: aioredis.Redis, gid: str
) -> None:
    registry = CollectorRegistry()
    bank = Bank(redis_client, gid, metrics=BarrierMetrics(registry, "stock_svc"))
    await bank.open()

    assert await bank.run(Op.CANCEL) is Outcome.EMPTY_ROLLBACK
    with pytest.raises(LateTryRejected):
        await bank.run(Op.TRY)
    assert await bank.run(Op.CANCEL) is Outcome.DUPLICATE
    assert await bank.run(Op.TRY, "02") is Outcome.APPLIED

    def count(outcome: str) -> float | None:
        return registry.get_sample_value(
            "mesh_barrier_outcomes_total", {"service": "stock_svc", "outcome": outcome}
        )

    counts = {o: count(o) for o in ("applied", "duplicate", "empty_rollback", "late_try_rejected")}
    assert counts == {"applied": 1.0, "duplicate": 1.0, "empty_rollback": 1.0, "late_try_rejected": 1.0}
