"""The flash sale's hot state in Redis: quota, per-user units, tickets, rate counters (Lua scripts).

Keys of one sale share the hash tag ``{<namespace>:<sale_id>}`` (one cluster slot, so every script
touches a single slot):

* ``{ns:sale}:sale`` - hash: ``quota`` (units left), ``limit`` (units one user may hold), ``expire_at``
  (epoch ms when the sale's keys expire: its end plus ``order.flash_redis_retention_seconds``);
* ``{ns:sale}:users`` - hash: user id -> units the user holds (absent = none);
* ``{ns:sale}:tickets`` - hash: ticket -> ``<held 1|0>|<quantity>|<user_id>``, every ticket of the sale,
  for idempotency (a retried FlashBuy finds its ticket) and for give-backs once per ticket.

A sale's copy exists (``:sale`` present) or not; every script first checks and answers "not loaded"
before writing anything. The loader (:data:`LOAD_SCRIPT`) creates the three keys from a database
snapshot only when ``:sale`` is absent (atomic set-if-absent), so concurrent loaders cannot overwrite a
copy in use. Because a give-back is recorded in the database before its Redis half runs and the snapshot
marks failed tickets as returned, a give-back racing with a reload counts exactly once either way.

Rate counters: ``<ns>:rate:<user_id>:<epoch second>`` (INCR, expires after 2 s): a fixed one-second window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshkit.errors import ResourceExhausted, TransientError
from order_svc.flash.rules import FlashSale, QuotaSnapshot, TicketEntry

RATE_WINDOW_MS = 2000

# KEYS: sale, users, tickets. ARGV: ticket, user, quantity, entry. Idempotent on the ticket; the user's
# units and the quota are checked, then both change, or nothing does.
BUY_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, ''} end
local seen = redis.call('HGET', KEYS[3], ARGV[1])
if seen then return {2, 0, seen} end
local q = tonumber(ARGV[3])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if held + q > tonumber(redis.call('HGET', KEYS[1], 'limit')) then return {3, held, ''} end
local left = tonumber(redis.call('HGET', KEYS[1], 'quota'))
if left < q then return {4, left, ''} end
redis.call('HINCRBY', KEYS[1], 'quota', -q)
redis.call('HINCRBY', KEYS[2], ARGV[2], q)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
local expire_at = redis.call('HGET', KEYS[1], 'expire_at')
redis.call('PEXPIREAT', KEYS[2], expire_at)
redis.call('PEXPIREAT', KEYS[3], expire_at)
return {1, left - q, ''}
"""

# KEYS: sale, users, tickets. ARGV: ticket, user, quantity, returned entry. Once per ticket: only a ticket
# still marked as holding its units gives them back. 1 = given back, 0 = nothing to give, -1 = not loaded.
GIVE_BACK_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seen = redis.call('HGET', KEYS[3], ARGV[1])
if not seen or string.sub(seen, 1, 1) ~= '1' then return 0 end
local q = tonumber(ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('HINCRBY', KEYS[1], 'quota', q)
if redis.call('HINCRBY', KEYS[2], ARGV[2], -q) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""

# KEYS: sale, users, tickets. ARGV: quota, limit, expire_at, number of users, then user/units pairs, then
# ticket/entry pairs. Set-if-absent: 1 = loaded, 0 = a copy exists already.
LOAD_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'quota', ARGV[1], 'limit', ARGV[2], 'expire_at', ARGV[3])
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for k = 1, 3 do redis.call('PEXPIREAT', KEYS[k], ARGV[3]) end
return 1
"""

# KEYS: the user's counter of this second. ARGV: its lifetime in ms. Returns the calls counted so far.
RATE_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class BuyKind(Enum):
    """What the buy script answered."""

    TAKEN = 1  # the units are the ticket's
    DUPLICATE = 2  # the ticket exists already (a retry)
    USER_LIMIT = 3  # the user would hold more than the limit
    SOLD_OUT = 4  # not enough units left
    NOT_LOADED = -1  # no Redis copy of the sale: load it and run again


@dataclass(frozen=True, slots=True)
class BuyOutcome:
    """The buy script's answer: units left (TAKEN, SOLD_OUT) or held (USER_LIMIT), the entry (DUPLICATE)."""

    kind: BuyKind
    count: int
    entry: TicketEntry | None = None


@asynccontextmanager
async def redis_errors(what: str) -> AsyncIterator[None]:
    """Turn Redis connection failures into :class:`TransientError` (UNAVAILABLE; the caller retries)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"{what}: redis unavailable: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class FlashHot:
    """The Redis side of flash sales (see the module docstring for the key layout)."""

    def __init__(self, client: Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._buy = client.register_script(BUY_SCRIPT)
        self._give_back = client.register_script(GIVE_BACK_SCRIPT)
        self._load = client.register_script(LOAD_SCRIPT)
        self._rate = client.register_script(RATE_SCRIPT)

    def keys(self, sale_id: str) -> list[str]:
        """The sale's ``:sale``, ``:users`` and ``:tickets`` keys."""
        tag = f"{{{self._namespace}:{sale_id}}}"
        return [f"{tag}:sale", f"{tag}:users", f"{tag}:tickets"]

    async def admit(self, user_id: str, now_seconds: float, limit: int) -> None:
        """Count one FlashBuy call of ``user_id``; ResourceExhausted past ``limit`` calls in this second."""
        second = int(now_seconds)
        async with redis_errors("flash rate limit"):
            calls = int(
                await self._rate(keys=[f"{self._namespace}:rate:{user_id}:{second}"], args=[RATE_WINDOW_MS])
            )
        if calls > limit:
            raise ResourceExhausted(f"user {user_id}: more than {limit} FlashBuy calls per second; slow down")

    async def buy(self, sale_id: str, ticket: str, entry: TicketEntry) -> BuyOutcome:
        """Run the buy script for ``ticket`` (see :data:`BUY_SCRIPT`)."""
        async with redis_errors("flash buy"):
            code, count, seen = await self._buy(
                keys=self.keys(sale_id), args=[ticket, entry.user_id, entry.quantity, entry.encode()]
            )
        kind = BuyKind(int(code))
        found = TicketEntry.parse(_text(seen)) if kind is BuyKind.DUPLICATE else None
        return BuyOutcome(kind, int(count), found)

    async def give_back(self, sale_id: str, ticket: str, entry: TicketEntry) -> int:
        """Give a ticket's units back once: 1 = done now, 0 = nothing to give, -1 = the copy is not loaded."""
        returned = TicketEntry(held=False, quantity=entry.quantity, user_id=entry.user_id)
        async with redis_errors("flash give-back"):
            return int(
                await self._give_back(
                    keys=self.keys(sale_id),
                    args=[ticket, entry.user_id, entry.quantity, returned.encode()],
                )
            )

    async def load(self, sale: FlashSale, snap: QuotaSnapshot, expire_at_ms: int) -> bool:
        """Create the sale's copy from ``snap`` unless one exists; True when this call created it."""
        args: list[str | int] = [snap.remaining, sale.per_user_limit, expire_at_ms, len(snap.users)]
        for user_id, units in snap.users.items():
            args += [user_id, units]
        for ticket, entry in snap.entries.items():
            args += [ticket, entry.encode()]
        async with redis_errors("flash load"):
            return int(await self._load(keys=self.keys(sale.sale_id), args=args)) == 1

    async def remaining(self, sale_id: str) -> int | None:
        """Units left in the sale's copy (None when it is not loaded)."""
        async with redis_errors("flash read"):
            value = await self._client.hget(self.keys(sale_id)[0], "quota")
        return None if value is None else int(value)

    async def user_units(self, sale_id: str, user_id: str) -> int:
        """Units ``user_id`` holds in the sale's copy (0 when none or not loaded)."""
        async with redis_errors("flash read"):
            value = await self._client.hget(self.keys(sale_id)[1], user_id)
        return 0 if value is None else int(value)

    async def ticket_ids(self, sale_id: str) -> list[str]:
        """Every ticket the sale's copy knows."""
        async with redis_errors("flash read"):
            found = await self._client.hkeys(self.keys(sale_id)[2])
        return [_text(ticket) for ticket in found]
