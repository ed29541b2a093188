"""A per-key limiter for repetitive log lines (a participant that is down fails every retry).

``allow(key)`` answers None while a line for ``key`` was let through less than ``interval_seconds``
ago (by the injected clock's monotonic time), else how many lines for ``key`` it held back since the
last one: the caller logs that count, so nothing is hidden, only folded. Keys are bounded: the
least recently let-through key is forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from meshkit.runtime.clock import Clock

MAX_KEYS = 10_000


@dataclass(slots=True)
class _Slot:
    last: float
    held: int = 0


class LogLimiter:
    """At most one log line per key per ``interval_seconds``; counts the lines it held back."""

    def __init__(self, clock: Clock, interval_seconds: float, *, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._interval = interval_seconds
        self._max_keys = max_keys
        self._slots: OrderedDict[str, _Slot] = OrderedDict()

    def allow(self, key: str) -> int | None:
        """None to hold this line back; else the number held back for ``key`` since the last line."""
        now = self._clock.monotonic()
        slot = self._slots.get(key)
        if slot is not None and now - slot.last < self._interval:
            slot.held += 1
            return None
        held = slot.held if slot is not None else 0
        self._slots[key] = _Slot(last=now)
        self._slots.move_to_end(key)
        while len(self._slots) > self._max_keys:
            self._slots.popitem(last=False)
        return held
