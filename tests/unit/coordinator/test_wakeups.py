"""Local wake-ups on a manual clock: they fire when due, not before, and rescheduling replaces them."""

from __future__ import annotations

import asyncio

from coordinator.engine.wakeups import LocalWakeups
from meshkit.observability import logctx
from meshkit.runtime.clock import ManualClock


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fires_only_when_due() -> None:
    clock = ManualClock()
    fired: list[tuple[str, int]] = []
    wakeups = LocalWakeups(clock, lambda gid, at: fired.append((gid, at)))
    due = int(clock.now() * 1000) + 500
    wakeups.schedule("g", due)
    await settle()
    clock.advance(0.499)
    await settle()
    assert fired == []
    clock.advance(0.001)
    await settle()
    assert fired == [("g", due)]
    assert wakeups.pending() == 0


async def test_reschedule_replaces_and_cancel_drops() -> None:
    clock = ManualClock()
    fired: list[str] = []
    wakeups = LocalWakeups(clock, lambda gid, _at: fired.append(gid))
    now = int(clock.now() * 1000)
    wakeups.schedule("a", now + 100)
    wakeups.schedule("a", now + 300)
    wakeups.schedule("b", now + 100)
    await settle()
    wakeups.cancel("b")
    clock.advance(0.2)
    await settle()
    assert fired == []
    clock.advance(0.1)
    await settle()
    assert fired == ["a"]
    await wakeups.close()


async def test_beyond_the_horizon_is_left_to_timers_and_the_sweeper() -> None:
    clock = ManualClock()
    wakeups = LocalWakeups(clock, lambda *_: None, horizon_ms=1_000)
    wakeups.schedule("far", int(clock.now() * 1000) + 5_000)
    assert wakeups.pending() == 0


async def test_many_due_wakeups_fire_in_one_pass_in_due_order() -> None:
    clock = ManualClock()
    fired: list[str] = []
    wakeups = LocalWakeups(clock, lambda gid, _at: fired.append(gid))
    now = int(clock.now() * 1000)
    for i in range(100):
        wakeups.schedule(f"g{i:03d}", now + 1_000 - i)  # the last scheduled is due first
    wakeups.schedule("later", now + 5_000)
    await settle()
    clock.advance(1.0)
    await settle()
    assert fired == [f"g{i:03d}" for i in reversed(range(100))]
    assert wakeups.pending() == 1
    await wakeups.close()


async def test_fires_do_not_carry_the_context_of_the_first_schedule() -> None:
    clock = ManualClock()
    seen: list[tuple[str, dict[str, object], str]] = []

    def fire(gid: str, _at: int) -> None:
        seen.append((gid, dict(logctx.log_fields.get()), logctx.current_traceparent.get()))

    wakeups = LocalWakeups(clock, fire)
    now = int(clock.now() * 1000)

    async def first_request() -> None:  # e.g. the Prepare of gid-A, served in its own task
        logctx.current_traceparent.set("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
        with logctx.bound(gid="gid-A", trace_id="a" * 32):
            wakeups.schedule("gid-A", now + 10)

    await asyncio.create_task(first_request())
    wakeups.schedule("gid-B", now + 20)  # from a context without log fields
    await settle()
    clock.advance(0.02)
    await settle()
    await wakeups.close()
    assert [gid for gid, _, _ in seen] == ["gid-A", "gid-B"]
    for _gid, fields, traceparent in seen:
        assert fields.get("gid") is None and fields.get("trace_id") is None
        assert traceparent == logctx.current_traceparent.get()
