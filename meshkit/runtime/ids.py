"""Snowflake-style 64-bit ids: time-ordered, with a worker id, safe when the clock goes backwards.

Layout (most significant first): 1 unused sign bit, 41 bits of milliseconds since ``EPOCH_MS``,
10 bits of worker id, 12 bits of sequence. ~69 years of range, 1024 workers, 4096 ids per ms per worker.
"""

from __future__ import annotations

import threading

from meshkit.runtime.clock import Clock, SystemClock

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
TIMESTAMP_BITS = 41
MAX_TIMESTAMP_MS = EPOCH_MS + (1 << TIMESTAMP_BITS) - 1
# How far back the clock may jump before we refuse rather than wait it out.
MAX_BACKWARD_MS = 5_000


class ClockMovedBackwardsError(RuntimeError):
    """The wall clock went back further than :data:`MAX_BACKWARD_MS`."""


class Snowflake:
    """Generates unique, time-ordered 64-bit ids for one worker; thread-safe."""

    def __init__(self, worker_id: int, clock: Clock | None = None) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be in 0..{MAX_WORKER}, got {worker_id}")
        self._worker_id = worker_id
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next_id(self) -> int:
        """Return the next id; never repeats, never decreases, even if the wall clock steps back."""
        with self._lock:
            ms = self._current_ms()
            if ms < self._last_ms:
                if self._last_ms - ms > MAX_BACKWARD_MS:
                    raise ClockMovedBackwardsError(
                        f"clock moved back {self._last_ms - ms} ms (limit {MAX_BACKWARD_MS} ms)"
                    )
                # Small step back (NTP slew): keep issuing from the last timestamp we used.
                ms = self._last_ms
            if ms == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    # Sequence exhausted in this millisecond: borrow the next one.
                    ms = self._last_ms + 1
            else:
                self._sequence = 0
            self._last_ms = ms
            return (
                ((ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS))
                | (self._worker_id << SEQUENCE_BITS)
                | self._sequence
            )

    def next_str(self) -> str:
        """The next id as a decimal string (the form ids travel in over the API)."""
        return str(self.next_id())

    def _current_ms(self) -> int:
        ms = int(self._clock.now() * 1000)
        if not EPOCH_MS <= ms <= MAX_TIMESTAMP_MS:
            # Outside the 41-bit window the id would be negative or overflow into the sign bit.
            raise ValueError(
                f"clock {ms} ms is outside the id range (epoch {EPOCH_MS} .. {MAX_TIMESTAMP_MS} ms)"
            )
        return ms


def id_timestamp_ms(snowflake_id: int) -> int:
    """The epoch milliseconds encoded in an id."""
    return (snowflake_id >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS


def id_worker(snowflake_id: int) -> int:
    """The worker id encoded in an id."""
    return (snowflake_id >> SEQUENCE_BITS) & MAX_WORKER
