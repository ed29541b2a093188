"""Snowflake ids: unique, increasing, worker id encoded, clock steps back handled."""

from __future__ import annotations

import itertools
import threading

import pytest

from meshkit.runtime.clock import ManualClock, SystemClock
from meshkit.runtime.ids import (
    EPOCH_MS,
    MAX_BACKWARD_MS,
    MAX_SEQUENCE,
    MAX_WORKER,
    ClockMovedBackwardsError,
    Snowflake,
    id_timestamp_ms,
    id_worker,
)


def test_100k_ids_are_unique_and_increasing() -> None:
    gen = Snowflake(worker_id=7, clock=SystemClock())
    ids = [gen.next_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(0 < i < 2**63 for i in (ids[0], ids[-1]))


def test_worker_id_and_time_are_encoded() -> None:
    clock = ManualClock(start=1_800_000_000.123)
    for worker in (0, 1, 513, MAX_WORKER):
        snowflake_id = Snowflake(worker_id=worker, clock=clock).next_id()
        assert id_worker(snowflake_id) == worker
        assert id_timestamp_ms(snowflake_id) == 1_800_000_000_123


def test_ids_from_different_workers_differ_in_the_same_millisecond() -> None:
    clock = ManualClock()
    first, second = Snowflake(1, clock), Snowflake(2, clock)
    assert first.next_id() != second.next_id()


def test_sequence_exhaustion_borrows_the_next_millisecond() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    gen = Snowflake(worker_id=3, clock=clock)
    ids = [gen.next_id() for _ in range(MAX_SEQUENCE + 10)]
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert id_timestamp_ms(ids[MAX_SEQUENCE]) == 1_800_000_000_000
    assert id_timestamp_ms(ids[-1]) == 1_800_000_000_001


def test_small_clock_step_back_is_absorbed() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    gen = Snowflake(worker_id=4, clock=clock)
    before = gen.next_id()
    clock.set(1_800_000_000.0 - (MAX_BACKWARD_MS / 1000) / 2)
    after = [gen.next_id() for _ in range(100)]
    assert before < after[0]
    assert all(a < b for a, b in itertools.pairwise(after))
    assert id_timestamp_ms(after[-1]) == 1_800_000_000_000  # kept issuing from the last timestamp
    clock.set(1_800_000_001.0)
    assert id_timestamp_ms(gen.next_id()) == 1_800_000_001_000


def test_large_clock_step_back_raises() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    gen = Snowflake(worker_id=5, clock=clock)
    gen.next_id()
    clock.set(1_800_000_000.0 - (MAX_BACKWARD_MS / 1000) - 1)
    with pytest.raises(ClockMovedBackwardsError, match="moved back"):
        gen.next_id()


@pytest.mark.parametrize("worker", [-1, MAX_WORKER + 1])
def test_worker_id_out_of_range_is_refused(worker: int) -> None:
    with pytest.raises(ValueError, match="worker_id"):
        Snowflake(worker_id=worker)


def test_clock_before_epoch_is_refused() -> None:
    gen = Snowflake(worker_id=0, clock=ManualClock(start=EPOCH_MS / 1000 - 1))
    with pytest.raises(ValueError, match="epoch"):
        gen.next_id()


def test_next_str_is_the_decimal_id() -> None:
    gen = Snowflake(worker_id=9, clock=ManualClock())
    text = gen.next_str()
    assert text.isdigit()
    assert id_worker(int(text)) == 9


def test_concurrent_threads_never_share_an_id() -> None:
    gen = Snowflake(worker_id=11, clock=SystemClock())
    results: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        out.extend(gen.next_id() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in results for i in out]
    assert len(set(every)) == 20_000
