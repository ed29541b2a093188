"""The subtransaction barrier for resources kept in Redis: barrier and business change in ONE Lua script.

A service supplies the business body of each branch op as Lua (e.g. stock's all-or-nothing multi-SKU
reserve) and gets a :class:`RedisBarrierScript` that first applies the barrier rules (the same as
:mod:`meshkit.barrier.sql`), runs the body only when due, and only then writes the barrier entry::

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

Key layout (no TTL on any of them):

* ``mesh:barrier:{gid}`` - one hash per global transaction; field ``<branch>:<op>``, value = reason.
* ``mesh:barrier:index`` - a sorted set: member = gid, score = the epoch ms (injected clock) of the
  gid's LATEST entry, written by the same script (``ZADD GT``). The latest, not the first: the cleaner
  compares it with the retention period, and a hash must outlive every database row whose Redis half
  it records (the stock reconciler reads the barrier entries of log rows younger than the retention; a
  confirm written days after its try must keep its hash that long).

Entries never expire on their own: :class:`meshkit.barrier.redis_cleanup.RedisBarrierCleaner` deletes
a gid's hash and index member only when its latest entry is older than the retention period AND the
coordinator says the gid is final. A key of the former layout ``mesh:barrier:{gid}:<branch>:<op>`` (with a
TTL) is moved into the hash the first time a call of that gid touches it, so an upgrade keeps in-flight
transactions.

The body sees its own ``KEYS``/``ARGV`` (1-based as usual). It fails a branch with
``return redis.error_reply('why')`` -> :class:`BranchFailure`, and must fail before writing anything
(check all, then write): Redis does not undo a script's writes, and the barrier entry is then not written.
Lua numbers come back to Python as integers (return strings for anything else).

Redis Cluster: the script touches the gid's hash (tag ``{gid}``), the shared index and the body's keys
in one call, which must all hash to one slot; run the barrier on a single node (with replicas/Sentinel).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshkit.barrier.metrics import BarrierMetrics
from meshkit.barrier.outcome import (
    MSG_BRANCH,
    REASON_ROLLBACK,
    BarrierResult,
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
)
from meshkit.errors import BranchFailure, TransientError
from meshkit.infra.redisutil import as_text
from meshkit.runtime.clock import Clock, now_ms
from meshkit.tx.context import ORIGIN_OF, Op, TxContext

_HERE = Path(__file__).resolve().parent
_BODY_MARKER = "-- @@BUSINESS_BODY@@"
INDEX_KEY = "mesh:barrier:index"

ScriptArg = str | int | float | bytes

_OUTCOMES = {
    "applied": Outcome.APPLIED,
    "duplicate": Outcome.DUPLICATE,
    "empty_rollback": Outcome.EMPTY_ROLLBACK,
}


def barrier_key(gid: str) -> str:
    """The Redis hash of one global transaction's barrier entries; ``{gid}`` is the cluster hash tag."""
    return f"mesh:barrier:{{{gid}}}"


def barrier_field(branch_id: str, op: str) -> str:
    """The field of one barrier entry in :func:`barrier_key`'s hash."""
    return f"{branch_id}:{op}"


def legacy_key(gid: str, branch_id: str, op: str) -> str:
    """The key of one entry in the former one-key-per-entry layout (adopted into the hash on use)."""
    return f"mesh:barrier:{{{gid}}}:{branch_id}:{op}"


class RedisBarrierScript:
    """One business op wrapped in the barrier; build it with :meth:`RedisBarrier.script`."""

    def __init__(self, script: AsyncScript, clock: Clock, metrics: BarrierMetrics | None = None) -> None:
        self._script = script
        self._clock = clock
        self._metrics = metrics

    async def call(
        self, ctx: TxContext, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()
    ) -> BarrierResult[Any]:
        """Apply the barrier for ``ctx`` and run the body on ``keys``/``args`` when due, atomically.

        Returns APPLIED (value = the body's return), DUPLICATE or EMPTY_ROLLBACK. Raises
        :class:`LateTryRejected`, :class:`DuplicateMessage`, :class:`MessageRolledBack`,
        :class:`BranchFailure` (the body's error reply) or :class:`TransientError` (Redis unreachable).
        """
        origin_op = ORIGIN_OF.get(ctx.op)
        own_legacy = legacy_key(ctx.gid, ctx.branch_id, ctx.op.value)
        origin_legacy = legacy_key(ctx.gid, ctx.branch_id, origin_op.value) if origin_op else own_legacy
        barrier_keys = [barrier_key(ctx.gid), INDEX_KEY, own_legacy, origin_legacy]
        barrier_args: list[ScriptArg] = [
            ctx.op.value,
            origin_op.value if origin_op else "",
            ctx.branch_id,
            ctx.gid,
            now_ms(self._clock),
        ]
        try:
            reply = await self._script(keys=[*barrier_keys, *keys], args=[*barrier_args, *args])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"barrier {ctx.gid}: redis unavailable: {exc}") from exc
        if self._metrics is None:
            return _result(ctx, reply)
        try:
            result = _result(ctx, reply)
        except LateTryRejected:
            self._metrics.late_try_rejected()
            raise
        self._metrics.outcome(result.outcome)
        return result


def _result(ctx: TxContext, reply: Any) -> BarrierResult[Any]:
    status = as_text(reply[0])
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
        raise BranchFailure(f"gid {ctx.gid} branch {ctx.branch_id} {ctx.op.value}: {as_text(value)}")
    raise RuntimeError(f"barrier script answered unknown status {status!r}")


class RedisBarrier:
    """Factory of barrier-wrapped Lua scripts on one Redis client, plus the MSG check-back.

    ``clock`` stamps each gid's latest entry in the index (the age the cleaner compares with the
    retention period).
    """

    def __init__(self, client: Redis, clock: Clock, *, metrics: BarrierMetrics | None = None) -> None:
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._template = (_HERE / "barrier.lua").read_text()
        self._query_prepared = client.register_script((_HERE / "query_prepared.lua").read_text())

    def script(self, body: str) -> RedisBarrierScript:
        """Wrap the Lua ``body`` of one branch op in the barrier (see the module docstring)."""
        if _BODY_MARKER in body:
            raise ValueError("business body must not contain the barrier's body marker")
        source = self._template.replace(_BODY_MARKER, body)
        return RedisBarrierScript(self._client.register_script(source), self._clock, self._metrics)

    async def query_prepared(self, gid: str) -> None:
        """MSG check-back: return when the local transaction (op msg) committed, else BranchFailure.

        When it has not run yet, the ``rollback`` mark written here makes it refuse to run later.
        """
        keys = [barrier_key(gid), INDEX_KEY, legacy_key(gid, MSG_BRANCH, Op.MSG.value)]
        args: list[ScriptArg] = [barrier_field(MSG_BRANCH, Op.MSG.value), gid, now_ms(self._clock)]
        try:
            reason = as_text(await self._query_prepared(keys=keys, args=args))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise TransientError(f"barrier {gid}: redis unavailable: {exc}") from exc
        if reason == REASON_ROLLBACK:
            raise MessageRolledBack(gid)
