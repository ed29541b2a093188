"""The local sold-out flags of one order_svc node (in memory, never shared).

When the Lua script answers "sold out" (no unit left), the node sets the sale's flag; while it is set,
FlashBuy answers "sold out" at once, without a Redis call. A flag is cleared by the broadcast a give-back
sends (every node receives it), and it expires after ``order.flash_sold_out_ttl_seconds`` on its own, so a
lost broadcast (core NATS is at-most-once) costs at most that long.

Idempotency survives the shortcut: a flag remembers the tickets the sale's Redis copy knew when it was set
(no new ticket can appear while nothing is left, and a give-back clears the flag). A retried FlashBuy whose
ticket is among them goes on to the script, which answers its ticket; everyone else is answered at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshkit.runtime.clock import Clock


@dataclass(frozen=True, slots=True)
class _Flag:
    until: float  # monotonic
    tickets: frozenset[str]


class SoldOutFlags:
    """Sale id -> sold-out flag, each with its expiry and the tickets known when it was set."""

    def __init__(self, clock: Clock, ttl_seconds: float) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._flags: dict[str, _Flag] = {}

    def tickets(self, sale_id: str) -> frozenset[str] | None:
        """The tickets known when the sale's flag was set, or None when no (fresh) flag is set."""
        flag = self._flags.get(sale_id)
        if flag is None:
            return None
        if self._clock.monotonic() >= flag.until:
            self._flags.pop(sale_id, None)
            return None
        return flag.tickets

    def is_set(self, sale_id: str) -> bool:
        """True while the sale's flag is set and fresh."""
        return self.tickets(sale_id) is not None

    def set(self, sale_id: str, tickets: Iterable[str]) -> None:
        """Flag ``sale_id`` sold out, remembering its known ``tickets``."""
        self._flags[sale_id] = _Flag(self._clock.monotonic() + self._ttl, frozenset(tickets))

    def clear(self, sale_id: str) -> bool:
        """Drop the sale's flag (stock came back); True when one was set."""
        return self._flags.pop(sale_id, None) is not None
