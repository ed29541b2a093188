"""Hot stock in Redis: one hash per SKU, changed only by Lua scripts (most of them behind the Redis barrier).

Key layout: ``{<namespace>}:sku:<sku>`` (default namespace ``stock``), a hash with

* ``available`` - units that may still be reserved,
* ``reserved``  - units reserved by TCC tries not yet confirmed or cancelled,
* ``base``      - the ``stock_sku.version`` of the database row this copy was loaded from.

Every stock key carries the same hash tag ``{<namespace>}``, so all SKU hashes live in one cluster slot
and the multi-SKU reserve script never spans slots. That makes the stock side cluster-ready, but not
the whole call: the barrier keys that share the script hash on ``{gid}`` (meshkit.barrier.redis), so on a
Redis Cluster the script would still touch two slots. Run stock_svc against a single Redis primary
(with replicas/Sentinel for availability) until the barrier can take a hash tag of the caller's choosing.

Loading: every business script first checks that all its hashes are loaded and otherwise answers
:data:`NOT_LOADED` before writing anything (and before the barrier key is written). The domain then creates
the missing hashes from the database rows (available, version) with an atomic set-if-absent Lua script
(:data:`LOAD_SCRIPT`) and runs the business script again (see :mod:`stock_svc.stock.domain`).
Concurrent loaders cannot overwrite each other or a copy already in use, and a copy that vanishes
between the load and the script is simply loaded again. The common case (loaded) costs one EVALSHA.

Version gate: a change that is persisted in the database first (confirm, release, restock) carries the
version its database transaction produced, and its Redis half applies only when that version is newer
than the copy's ``base``. A copy loaded after the database change already contains it, so a reload racing
with a change never counts it twice. A retry is absorbed by the Redis barrier (confirm, release) or, for
PutSku, which is no branch, by a per-request marker ``{<namespace>}:restock:<request_id>`` written in the
same script (:data:`RESTOCK_SCRIPT`). The reconciler (:mod:`stock_svc.hot.reconciler`) checks a copy against
the database with :data:`REPAIR_SCRIPT`, and moves ``base`` up when nothing is owed to it.

After a Redis loss the reservations that were in flight are gone: the reloaded copy counts their units as
available (the database has not deducted them yet). Their confirm and cancel then clamp at the
``reserved`` they find, taking the rest from ``available``, so ``db_available = available + reserved``
keeps holding; but until they end, those units can be reserved twice. The loss is detected through the
Redis epoch (:mod:`stock_svc.hot.epoch`), so that a confirm whose try entry went with the data still persists
its sale instead of waiting forever for a try that already ran. Production Redis should persist
(AOF) for that reason, and for the barrier keys, which are lost with it; and it must not evict them
(``maxmemory-policy noeviction``, or a ``volatile-*`` policy: stock hashes carry no TTL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshkit.barrier import BarrierResult, RedisBarrier, RedisBarrierScript
from meshkit.barrier.redis import barrier_field, barrier_key, legacy_key
from meshkit.errors import BranchFailure, TransientError
from meshkit.runtime.clock import MS_PER_DAY
from meshkit.tx.context import Op, TxContext
from stock_svc.stock.validation import Item

# The error every script answers when a SKU hash is missing; never a business failure.
NOT_LOADED = "stock-not-loaded"
FIELD_AVAILABLE = "available"
FIELD_RESERVED = "reserved"
FIELD_BASE = "base"

# Shared prologue: refuse to write anything unless every hash is loaded. The SKU names end ARGV (for
# messages): ARGV[names + i] is the name of KEYS[i].
_CHECK_LOADED = f"""
local n = #KEYS
local names = #ARGV - n
for i = 1, n do
  if redis.call('HEXISTS', KEYS[i], '{FIELD_BASE}') == 0 then
    return redis.error_reply('{NOT_LOADED}: ' .. ARGV[names + i])
  end
end
"""

# TryReserve. ARGV = quantities (n), skus (n). All-or-nothing: check every SKU, then write.
RESERVE_BODY = (
    _CHECK_LOADED
    + f"""
for i = 1, n do
  local available = tonumber(redis.call('HGET', KEYS[i], '{FIELD_AVAILABLE}'))
  local wanted = tonumber(ARGV[i])
  if available < wanted then
    return redis.error_reply('insufficient stock for sku ' .. ARGV[names + i] ..
      ': available ' .. available .. ', requested ' .. wanted)
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], '{FIELD_AVAILABLE}', -tonumber(ARGV[i]))
  redis.call('HINCRBY', KEYS[i], '{FIELD_RESERVED}', tonumber(ARGV[i]))
end
return n
"""
)

# ConfirmReserve's Redis half. ARGV = quantities (n), versions (n), skus (n). The units left the database's
# available stock at that version; here they leave ``reserved`` (or, after a reload lost the reservation,
# ``available``, which the reload counted them in).
CONFIRM_BODY = (
    _CHECK_LOADED
    + f"""
for i = 1, n do
  if tonumber(ARGV[n + i]) > tonumber(redis.call('HGET', KEYS[i], '{FIELD_BASE}')) then
    local q = tonumber(ARGV[i])
    local r = math.min(q, tonumber(redis.call('HGET', KEYS[i], '{FIELD_RESERVED}')))
    if r > 0 then redis.call('HINCRBY', KEYS[i], '{FIELD_RESERVED}', -r) end
    if q > r then redis.call('HINCRBY', KEYS[i], '{FIELD_AVAILABLE}', r - q) end
  end
end
return n
"""
)

# CancelReserve. ARGV = quantities (n), skus (n). Gives back what is still reserved (a reload after a
# Redis loss already counted the rest as available).
CANCEL_BODY = (
    _CHECK_LOADED
    + f"""
for i = 1, n do
  local r = math.min(tonumber(ARGV[i]), tonumber(redis.call('HGET', KEYS[i], '{FIELD_RESERVED}')))
  if r > 0 then
    redis.call('HINCRBY', KEYS[i], '{FIELD_RESERVED}', -r)
    redis.call('HINCRBY', KEYS[i], '{FIELD_AVAILABLE}', r)
  end
end
return n
"""
)

# ReleaseStock's Redis half. ARGV = quantities (n), versions (n), skus (n).
ADD_AVAILABLE_BODY = (
    _CHECK_LOADED
    + f"""
for i = 1, n do
  if tonumber(ARGV[n + i]) > tonumber(redis.call('HGET', KEYS[i], '{FIELD_BASE}')) then
    redis.call('HINCRBY', KEYS[i], '{FIELD_AVAILABLE}', tonumber(ARGV[i]))
  end
end
return n
"""
)

# PutSku's Redis half, exactly once per request: KEYS = stock hash, the request's marker; ARGV = quantity,
# version, marker TTL (ms), sku. The marker (written whether or not the version gate let the units in)
# makes a retry, or the reconciler finishing the same request, a no-op. A retry that finds the marker
# renews its TTL: the request is not recorded done yet (else nothing would retry), so the marker must live
# on while mark_restock_done keeps failing; the reconciler retries every round and gives up on a request
# older than the TTL (stock_svc.hot.reconciler). Returns 1 when it added the units.
RESTOCK_SCRIPT = f"""
if redis.call('HEXISTS', KEYS[1], '{FIELD_BASE}') == 0 then
  return redis.error_reply('{NOT_LOADED}: ' .. ARGV[4])
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
  return 0
end
local added = 0
if tonumber(ARGV[2]) > tonumber(redis.call('HGET', KEYS[1], '{FIELD_BASE}')) then
  redis.call('HINCRBY', KEYS[1], '{FIELD_AVAILABLE}', tonumber(ARGV[1]))
  added = 1
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(ARGV[3]))
return added
"""

# The reconciler's check and repair of one SKU, atomic with every stock script. KEYS = stock hash, then a
# pair per database change whose Redis half may be owed (barrier hash + legacy barrier key of a branch
# op, or the marker twice for a restock); ARGV = database version, database available, sku, then
# (version, delta, barrier field or '' for a marker) per pair. A half is owed when it is newer than the
# copy (version > base) and its barrier entry / marker is absent. Redis must hold ``db available - owed``
# in available + reserved; only ``available`` is corrected (``reserved`` is the tries in flight). When
# nothing is owed the copy now reflects every change up to the database version, so ``base`` moves up to
# it (later checks read fewer log rows). The caller holds the database row lock, so the database figures
# cannot move meanwhile. Returns {loaded, available before, reserved, available after, owed, drift}.
REPAIR_SCRIPT = f"""
local key = KEYS[1]
if redis.call('HEXISTS', key, '{FIELD_BASE}') == 0 then return {{0, 0, 0, 0, 0, 0}} end
local base = tonumber(redis.call('HGET', key, '{FIELD_BASE}'))
local available = tonumber(redis.call('HGET', key, '{FIELD_AVAILABLE}'))
local reserved = tonumber(redis.call('HGET', key, '{FIELD_RESERVED}'))
local owed = 0
for i = 1, (#KEYS - 1) / 2 do
  if tonumber(ARGV[3 * i + 1]) > base then
    local hash, legacy, field = KEYS[2 * i], KEYS[2 * i + 1], ARGV[3 * i + 3]
    local done
    if field == '' then
      done = redis.call('EXISTS', hash) == 1
    else
      done = redis.call('HEXISTS', hash, field) == 1 or redis.call('EXISTS', legacy) == 1
    end
    if not done then owed = owed + tonumber(ARGV[3 * i + 2]) end
  end
end
local fixed = available
local drift = tonumber(ARGV[2]) - owed - available - reserved
if drift ~= 0 then
  fixed = math.max(0, available + drift)
  redis.call('HSET', key, '{FIELD_AVAILABLE}', fixed)
end
if owed == 0 and tonumber(ARGV[1]) > base then
  redis.call('HSET', key, '{FIELD_BASE}', ARGV[1])
end
return {{1, available, reserved, fixed, owed, drift}}
"""

# Set-if-absent load (absent = no ``base``, the field every script checks). ARGV = available, version for
# each key in turn. Returns how many it loaded.
LOAD_SCRIPT = f"""
local loaded = 0
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], '{FIELD_BASE}') == 0 then
    redis.call('HSET', KEYS[i], '{FIELD_AVAILABLE}', ARGV[2 * i - 1], '{FIELD_RESERVED}', 0,
      '{FIELD_BASE}', ARGV[2 * i])
    loaded = loaded + 1
  end
end
return loaded
"""

# Set-if-absent of the Redis epoch (see :mod:`stock_svc.hot.epoch`). KEYS = epoch key; ARGV = a fresh id.
# Returns the epoch now in Redis: the fresh id, or the one a concurrent replica set first.
CLAIM_EPOCH_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return ARGV[1] end
return redis.call('GET', KEYS[1])
"""

AUDIT_CHUNK = 500
# A restock marker only has to outlive the step that records the Redis half as done in the database
# (or, after a crash, the reconciler's next round): a week is far more than that, and each retry renews it.
DEFAULT_MARKER_TTL_MS = 7 * MS_PER_DAY


class StockNotLoaded(TransientError):
    """A SKU hash vanished before a script could run; reload and retry (UNAVAILABLE if it persists)."""


@dataclass(frozen=True, slots=True)
class HotLevel:
    """One SKU's Redis copy (zeros and ``loaded = False`` when there is none)."""

    available: int
    reserved: int
    loaded: bool
    base: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a Redis copy is loaded from: the database's available stock at ``version``."""

    available: int
    version: int


@dataclass(frozen=True, slots=True)
class OwedHalf:
    """A database change whose Redis half may be owed: where its barrier entry or marker lives.

    ``field`` names the entry in the barrier hash ``key`` (``legacy_key`` is the pre-hash layout); an
    empty ``field`` means ``key`` is a restock marker. ``delta`` is what the half adds to
    ``available + reserved`` (a confirm takes units away, a release or restock adds them).
    """

    key: str
    legacy_key: str
    field: str
    version: int
    delta: int


@dataclass(frozen=True, slots=True)
class Repair:
    """What :meth:`HotStock.repair` found and did.

    ``drift`` is what ``available`` lacked (negative: had too much); ``available_after`` is
    ``available_before + drift`` unless that would be negative (then 0: the surplus is reserved in flight).
    """

    loaded: bool
    available_before: int
    reserved: int
    available_after: int
    owed: int
    drift: int


def stock_key(namespace: str, sku: str) -> str:
    """The Redis hash of one SKU: ``{<namespace>}:sku:<sku>`` (the namespace is the hash tag)."""
    return f"{{{namespace}}}:sku:{sku}"


def epoch_key(namespace: str) -> str:
    """The key holding the Redis epoch, the id of this Redis data set (same hash tag as the stock)."""
    return f"{{{namespace}}}:epoch"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Tried:
    """A branch's try entry in the barrier (``None``: none), and the Redis epoch read with it."""

    reason: str | None
    epoch: str | None


def restock_marker(namespace: str, request_id: str) -> str:
    """The marker of one applied restock Redis half (same hash tag as the stock hashes)."""
    return f"{{{namespace}}}:restock:{request_id}"


def branch_half(gid: str, branch_id: str, op: Op, version: int, delta: int) -> OwedHalf:
    """The Redis half of a confirm or release, as the reconciler checks it (its barrier entry)."""
    return OwedHalf(
        barrier_key(gid),
        legacy_key(gid, branch_id, op.value),
        barrier_field(branch_id, op.value),
        version,
        delta,
    )


def _is_not_loaded(exc: Exception) -> bool:
    return NOT_LOADED in str(exc)


@asynccontextmanager
async def redis_errors(what: str) -> AsyncIterator[None]:
    """Turn Redis connection failures into :class:`TransientError` (the caller retries)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"{what}: redis unavailable: {exc}") from exc


class HotStock:
    """The Redis side of the stock: loading, the barrier-wrapped branch scripts, reads."""

    def __init__(
        self, client: Redis, barrier: RedisBarrier, namespace: str, marker_ttl_ms: int = DEFAULT_MARKER_TTL_MS
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._marker_ttl_ms = marker_ttl_ms
        self._reserve = barrier.script(RESERVE_BODY)
        self._confirm = barrier.script(CONFIRM_BODY)
        self._cancel = barrier.script(CANCEL_BODY)
        self._release = barrier.script(ADD_AVAILABLE_BODY)
        self._restock = client.register_script(RESTOCK_SCRIPT)
        self._repair = client.register_script(REPAIR_SCRIPT)
        self._load = client.register_script(LOAD_SCRIPT)
        self._claim_epoch = client.register_script(CLAIM_EPOCH_SCRIPT)

    def key(self, sku: str) -> str:
        """The hash of ``sku``."""
        return stock_key(self._namespace, sku)

    def restock_half(self, request_id: str, version: int, quantity: int) -> OwedHalf:
        """The Redis half of a restock, as the reconciler checks it (its marker tells whether it ran)."""
        marker = restock_marker(self._namespace, request_id)
        return OwedHalf(marker, marker, "", version, quantity)

    async def missing(self, skus: Sequence[str]) -> list[str]:
        """The SKUs among ``skus`` that have no Redis copy."""
        async with redis_errors("stock load"):
            pipe = self._client.pipeline(transaction=False)
            for sku in skus:
                pipe.exists(self.key(sku))
            found = await pipe.execute()
        return [sku for sku, exists in zip(skus, found, strict=True) if not exists]

    async def load(self, snapshots: Mapping[str, Snapshot]) -> int:
        """Create the copies that are still missing from ``snapshots``; how many were created."""
        if not snapshots:
            return 0
        keys = [self.key(sku) for sku in snapshots]
        args: list[int] = []
        for snap in snapshots.values():
            args += [snap.available, snap.version]
        async with redis_errors("stock load"):
            return int(await self._load(keys=keys, args=args))

    async def reserve(self, ctx: TxContext, items: Sequence[Item]) -> BarrierResult[Any]:
        """TryReserve: all items or none (BranchFailure naming the SKU that is short)."""
        args: list[int | str] = [*(i.quantity for i in items), *(i.sku for i in items)]
        return await self._barrier_call(self._reserve, ctx, items, args)

    async def confirm(
        self, ctx: TxContext, items: Sequence[Item], versions: Mapping[str, int]
    ) -> BarrierResult[Any]:
        """ConfirmReserve's Redis half: the persisted units leave ``reserved``."""
        args: list[int | str] = [
            *(i.quantity for i in items),
            *(versions[i.sku] for i in items),
            *(i.sku for i in items),
        ]
        return await self._barrier_call(self._confirm, ctx, items, args)

    async def cancel(self, ctx: TxContext, items: Sequence[Item]) -> BarrierResult[Any]:
        """CancelReserve: reserved units go back to ``available`` (nothing on an empty rollback)."""
        args: list[int | str] = [*(i.quantity for i in items), *(i.sku for i in items)]
        return await self._barrier_call(self._cancel, ctx, items, args)

    async def release(
        self, ctx: TxContext, items: Sequence[Item], versions: Mapping[str, int]
    ) -> BarrierResult[Any]:
        """ReleaseStock's Redis half: the released units become available again."""
        args: list[int | str] = [
            *(i.quantity for i in items),
            *(versions[i.sku] for i in items),
            *(i.sku for i in items),
        ]
        return await self._barrier_call(self._release, ctx, items, args)

    async def restock(self, sku: str, request_id: str, quantity: int, version: int) -> bool:
        """PutSku's Redis half, once per request (its marker); True when it added the units just now."""
        keys = [self.key(sku), restock_marker(self._namespace, request_id)]
        async with redis_errors("stock restock"):
            try:
                added = await self._restock(keys=keys, args=[quantity, version, self._marker_ttl_ms, sku])
            except ResponseError as exc:
                if _is_not_loaded(exc):
                    raise StockNotLoaded(str(exc)) from exc
                raise
        return bool(added)

    async def repair(self, sku: str, db: Snapshot, owed: Sequence[OwedHalf]) -> Repair:
        """Make ``available + reserved`` equal ``db.available`` less the halves still owed (atomically)."""
        keys = [self.key(sku)]
        args: list[int | str] = [db.version, db.available, sku]
        for half in owed:
            keys += [half.key, half.legacy_key]
            args += [half.version, half.delta, half.field]
        async with redis_errors("stock repair"):
            reply = await self._repair(keys=keys, args=args)
        loaded, before, reserved, after, pending, drift = (int(v) for v in reply)
        return Repair(bool(loaded), before, reserved, after, pending, drift)

    async def tried(self, ctx: TxContext) -> Tried:
        """The branch's try entry in the barrier and the Redis epoch, in one round trip.

        The entry is ``try`` when the try ran, ``cancel`` when a cancel came first and blocks it, and
        ``None`` when no try has run yet (or its entry was lost with the Redis data: see the epoch).
        """
        field = barrier_field(ctx.branch_id, Op.TRY.value)
        async with redis_errors("stock read"):
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(barrier_key(ctx.gid), field)
            pipe.get(legacy_key(ctx.gid, ctx.branch_id, Op.TRY.value))  # the former layout, not yet adopted
            pipe.get(epoch_key(self._namespace))
            entry, legacy, epoch = await pipe.execute()
        return Tried(_text(entry if entry is not None else legacy), _text(epoch))

    async def epoch(self) -> str | None:
        """The Redis epoch (``None`` when this Redis has none: new, or its data was lost)."""
        async with redis_errors("stock epoch"):
            return _text(await self._client.get(epoch_key(self._namespace)))

    async def claim_epoch(self, candidate: str) -> str:
        """Set the epoch to ``candidate`` unless one is set; the epoch Redis holds afterwards."""
        async with redis_errors("stock epoch"):
            return str(_text(await self._claim_epoch(keys=[epoch_key(self._namespace)], args=[candidate])))

    async def levels(self, skus: Sequence[str]) -> dict[str, HotLevel]:
        """The Redis copies of ``skus`` (read only: nothing is loaded)."""
        out: dict[str, HotLevel] = {}
        async with redis_errors("stock read"):
            for start in range(0, len(skus), AUDIT_CHUNK):
                chunk = skus[start : start + AUDIT_CHUNK]
                pipe = self._client.pipeline(transaction=False)
                for sku in chunk:
                    pipe.hmget(self.key(sku), [FIELD_AVAILABLE, FIELD_RESERVED, FIELD_BASE])
                for sku, (available, reserved, base) in zip(chunk, await pipe.execute(), strict=True):
                    loaded = base is not None
                    out[sku] = HotLevel(int(available or 0), int(reserved or 0), loaded, int(base or 0))
        return out

    async def _barrier_call(
        self, script: RedisBarrierScript, ctx: TxContext, items: Sequence[Item], args: Sequence[int | str]
    ) -> BarrierResult[Any]:
        keys = [self.key(i.sku) for i in items]
        try:
            result = await script.call(ctx, keys=keys, args=args)
        except BranchFailure as exc:
            if type(exc) is BranchFailure and _is_not_loaded(exc):
                raise StockNotLoaded(str(exc)) from exc
            raise
        return result
