"""The Redis subtransaction barrier (barrier + business body in one Lua script) on a real redis-server.

The business change is a real account hash ``acct:{gid}`` (balance, frozen): try freezes ARGV[1],
confirm spends it, cancel gives it back; so "applied once" is checked on real data. Keys carry the
gid hash tag, as they must in cluster mode.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from meshkit.barrier import (
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
    RedisBarrier,
    RedisBarrierScript,
)
from meshkit.barrier.redis import barrier_key
from meshkit.config import BarrierSettings
from meshkit.errors import BranchFailure
from meshkit.txcontext import Op, TxContext, TxMode

TIMEOUT = 10.0
POLL_SECONDS = 0.02
AMOUNT = 10
START_BALANCE = 100

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

    def __init__(self, client: aioredis.Redis, gid: str, settings: BarrierSettings | None = None) -> None:
        self.client = client
        self.gid = gid
        self.barrier = RedisBarrier(client, settings or BarrierSettings())
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
        found = {}
        async for key in self.client.scan_iter(match=f"mesh:barrier:{{{self.gid}}}:*"):
            value = await self.client.get(key)
            if value is not None:
                found[text(key).split("}:", 1)[1]] = text(value)
        return found


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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


async def test_cleanup_removes_only_keys_past_retention(redis_client: aioredis.Redis, gid: str) -> None:
    retention_seconds = 1.0
    bank = Bank(redis_client, gid, BarrierSettings(retention_days=retention_seconds / 86_400))
    await bank.open()
    assert await bank.run(Op.TRY, "01") is Outcome.APPLIED
    await asyncio.sleep(0.5)
    assert await bank.run(Op.TRY, "02") is Outcome.APPLIED

    ttl_ms = await redis_client.pttl(barrier_key(gid, "02", "try"))
    assert 0 < ttl_ms <= bank.barrier.ttl_ms == 1000

    for _ in range(int(TIMEOUT / POLL_SECONDS)):
        if not await redis_client.exists(barrier_key(gid, "01", "try")):
            break
        await asyncio.sleep(POLL_SECONDS)
    assert await bank.barrier_keys() == {"02:try": "try"}


async def test_default_retention_is_seven_days(bank: Bank) -> None:
    await bank.open()
    assert await bank.run(Op.TRY) is Outcome.APPLIED

    ttl_ms = await bank.client.pttl(barrier_key(bank.gid, "01", "try"))

    assert 7 * 86_400_000 - 60_000 < ttl_ms <= 7 * 86_400_000


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
