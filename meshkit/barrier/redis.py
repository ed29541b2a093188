"""The subtransaction barrier for resources kept in Redis: barrier and business change in ONE Lua script.

A service supplies the business body of each branch op as Lua (e.g. stock's all-or-nothing multi-SKU
reserve) and gets a :class:`RedisBarrierScript` that first applies the barrier rules (the same as
:mod:`meshkit.barrier.sql`), runs the body only when due, and only then writes the barrier key
``mesh:barrier:{gid}:<branch>:<op>`` (value = reason, TTL = the retention period)::

    reserve = barrier.script('''
        for i, key in ipairs(KEYS) do
          if tonumber(redis.call('GET', key) or '0') < tonumber(ARGV[i]) then
            return redis.error_reply('insufficient stock: ' .. key)
          end
        end
        for i, key in ipairs(KEYS) do redis.call('DECRBY', key, ARGV[i]) end
        return 1
    ''')
    result = await reserve.call(ctx, keys=["stock:{sku1}", ...], args=[2, ...])

The body sees its own ``KEYS``/``ARGV`` (1-based as usual). It fails a branch with
``return redis.error_reply('why')`` -> :class:`BranchFailure`, and must fail before writing anything
(check all, then write): Redis does not undo a script's writes, and the barrier key is then not written.
Lua numbers come back to Python as integers (return strings for anything else).

Redis Cluster: the barrier keys of a transaction share the hash tag ``{gid}``; every key of one call
must hash to one slot, so in cluster mode the body's keys must carry the same tag (or run single-node).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshkit.barrier.outcome import (
    MSG_BRANCH,
    REASON_ROLLBACK,
    BarrierResult,
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
)
from meshkit.config import BarrierSettings
from meshkit.errors import BranchFailure, TransientError
from meshkit.txcontext import ORIGIN_OF, Op, TxContext

_HERE = Path(__file__).resolve().parent
_BODY_MARKER = "-- @@BUSINESS_BODY@@"
MS_PER_DAY = 86_400_000

ScriptArg = str | int | float | bytes

_OUTCOMES = {
    "applied": Outcome.APPLIED,
    "duplicate": Outcome.DUPLICATE,
    "empty_rollback": Outcome.EMPTY_ROLLBACK,
}


def barrier_key(gid: str, branch_id: str, op: str) -> str:
    """The Redis key of one barrier entry; ``{gid}`` is the cluster hash tag."""
    return f"mesh:barrier:{{{gid}}}:{branch_id}:{op}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBarrierScript:
    """One business op wrapped in the barrier; build it with :meth:`RedisBarrier.script`."""

    def __init__(self, script: AsyncScript, ttl_ms: int) -> None:
        self._script = script
        self._ttl_ms = ttl_ms

    async def call(
        self, ctx: TxContext, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()
    ) -> BarrierResult[Any]:
        """Apply the barrier for ``ctx`` and run the body on ``keys``/``args`` when due, atomically.

        Returns APPLIED (value = the body's return), DUPLICATE or EMPTY_ROLLBACK. Raises
        :class:`LateTryRejected`, :class:`DuplicateMessage`, :class:`MessageRolledBack`,
        :class:`BranchFailure` (the body's error reply) or :class:`TransientError` (Redis unreachable).
        """
        own = barrier_key(ctx.gid, ctx.branch_id, ctx.op.value)
        origin_op = ORIGIN_OF.get(ctx.op)
        origin = barrier_key(ctx.gid, ctx.branch_id, origin_op.value) if origin_op else own
        barrier_args: list[ScriptArg] = [ctx.op.value, origin_op.value if origin_op else "", self._ttl_ms]
        try:
            reply = await self._script(keys=[own, origin, *keys], args=[*barrier_args, *args])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"barrier {ctx.gid}: redis unavailable: {exc}") from exc
        return _result(ctx, reply)


def _result(ctx: TxContext, reply: Any) -> BarrierResult[Any]:
    status = _text(reply[0])
    value = reply[1] if len(reply) > 1 else None
    if status in _OUTCOMES:
        return BarrierResult(_OUTCOMES[status], value)
    if status == "rejected":
        raise LateTryRejected(ctx.gid, ctx.branch_id, ctx.op.value)
    if status == "duplicate_msg":
        raise DuplicateMessage(ctx.gid)
    if status == "msg_rolled_back":
        raise MessageRolledBack(ctx.gid)
    if status == "failed":
        raise BranchFailure(f"gid {ctx.gid} branch {ctx.branch_id} {ctx.op.value}: {_text(value)}")
    raise RuntimeError(f"barrier script answered unknown status {status!r}")


class RedisBarrier:
    """Factory of barrier-wrapped Lua scripts on one Redis client, plus the MSG check-back."""

    def __init__(self, client: Redis, settings: BarrierSettings) -> None:
        self._client = client
        self._ttl_ms = max(1, int(settings.retention_days * MS_PER_DAY))
        self._template = (_HERE / "barrier.lua").read_text()
        self._query_prepared = client.register_script((_HERE / "query_prepared.lua").read_text())

    @property
    def ttl_ms(self) -> int:
        """The TTL of every barrier key (the retention period) in milliseconds."""
        return self._ttl_ms

    def script(self, body: str) -> RedisBarrierScript:
        """Wrap the Lua ``body`` of one branch op in the barrier (see the module docstring)."""
        if _BODY_MARKER in body:
            raise ValueError("business body must not contain the barrier's body marker")
        source = self._template.replace(_BODY_MARKER, body)
        return RedisBarrierScript(self._client.register_script(source), self._ttl_ms)

    async def query_prepared(self, gid: str) -> None:
        """MSG check-back: return when the local transaction (op msg) committed, else BranchFailure.

        When it has not run yet, the ``rollback`` mark written here makes it refuse to run later.
        """
        key = barrier_key(gid, MSG_BRANCH, Op.MSG.value)
        try:
            reason = _text(await self._query_prepared(keys=[key], args=[self._ttl_ms]))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"barrier {gid}: redis unavailable: {exc}") from exc
        if reason == REASON_ROLLBACK:
            raise MessageRolledBack(gid)
