"""Driving transactions on this replica: claims, background drives, wake-ups, waiters.

:class:`Driver` owns the :class:`~coordinator.engine.executor.Executor` and everything that makes it
run: drives begun by commands continue in background tasks; :meth:`Driver.poke` (local wake-ups,
JetStream timers) and :meth:`Driver.sweep` (the store sweeper) claim due transactions with a lease
before driving them, so two replicas never drive one transaction at once. After every write it
arranges the next wake-up (local and on every registered :class:`TimerSink`) and wakes the callers
waiting for a transaction to finish.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import random
from collections import OrderedDict
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from coordinator.engine.executor import Executor, Run
from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.model import GlobalTx, Mode
from coordinator.engine.plan import Planner
from coordinator.engine.policy import RetryPolicy
from coordinator.engine.ports import BranchInvoker, Claimed, TimerSink, TxRepository
from coordinator.engine.settings import EngineSettings
from coordinator.engine.wakeups import LocalWakeups
from meshkit.errors import NotFound, TransientError
from meshkit.runtime.clock import Clock, now_ms

log = logging.getLogger(__name__)

RECENTLY_FINISHED = 10_000  # finished gids remembered so that stale timer fires cost no database read
CLAIM_BATCH = 256  # hinted gids claimed by one statement
MAX_HINTS = 100_000  # hints queued beyond this are refused: the sweeper finds that work
CLAIM_RETRY_SECONDS = 0.1  # first pause after a failed claim of hints; doubles up to the max
CLAIM_RETRY_MAX_SECONDS = 5.0


class Driver:
    """Drives the transactions of one replica (``owner``)."""

    def __init__(
        self,
        store: TxRepository,
        invoker: BranchInvoker,
        planners: Mapping[Mode, Planner],
        clock: Clock,
        *,
        settings: EngineSettings,
        metrics: EngineMetrics,
        owner: str,
        rng: random.Random | None = None,
        timers: Sequence[TimerSink] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.metrics = metrics
        self.owner = owner
        self.executor = Executor(
            store,
            invoker,
            planners,
            RetryPolicy(settings.max_backoff_ms, settings.jitter, rng),
            clock,
            metrics=metrics,
            owner=owner,
            lease_ms=settings.lease_ms,
            on_written=self.after_write,
        )
        self._local = LocalWakeups(clock, self._on_local_wake)
        self._timers: list[TimerSink] = list(timers)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._active: dict[str, int] = {}
        self._claimed_running = 0
        self._waiters: dict[str, set[asyncio.Future[GlobalTx]]] = {}
        self._recently_finished: OrderedDict[str, None] = OrderedDict()
        self._hinted: dict[str, str] = {}  # gid -> source, in arrival order: waiting for a claim
        self._claiming: set[str] = set()  # hinted gids in a claim statement right now
        self._rehinted: dict[str, str] = {}  # hinted again while in a claim statement
        self._handled: dict[str, asyncio.Future[None]] = {}  # awaited hints (claim_hinted) not yet claimed
        self._claimer = False  # a task is claiming hints
        self._closed = False

    def add_timer(self, sink: TimerSink) -> None:
        """Also tell ``sink`` when a transaction waits (e.g. JetStream timers once connected)."""
        self._timers.append(sink)

    def remove_timer(self, sink: TimerSink) -> None:
        """Stop telling ``sink`` (e.g. NATS went away)."""
        if sink in self._timers:
            self._timers.remove(sink)

    async def wait_final(self, gid: str, timeout_seconds: float) -> GlobalTx:
        """Wait until ``gid`` is final or ``timeout_seconds`` passed; returns it as it is then.

        While this replica drives ``gid`` the answer comes from the drive itself (no database read);
        otherwise the store is re-read every ``wait_poll_ms``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_seconds)
        poll = self.settings.wait_poll_ms / 1000
        while True:
            future: asyncio.Future[GlobalTx] = loop.create_future()
            self._waiters.setdefault(gid, set()).add(future)
            try:
                remaining = deadline - loop.time()
                if not self._active.get(gid) or remaining <= 0:
                    tx = await self.store.get(gid)
                    if tx is None:
                        raise NotFound(f"transaction {gid} not found")
                    if tx.status.final or remaining <= 0:
                        return tx
                    remaining = deadline - loop.time()
                await asyncio.wait({future}, timeout=max(0.0, min(poll, remaining)))
                if future.done():
                    return future.result()
            finally:
                waiting = self._waiters.get(gid)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._waiters[gid]

    def poke(self, gid: str, source: str = "local") -> None:
        """A hint that ``gid`` may be due (a timer fired): claim and drive it in the background.

        Hints are queued and claimed in batches (one statement for up to :data:`CLAIM_BATCH` gids)
        whenever this replica has room to drive; a hint for a gid already queued, driven here or
        just finished costs nothing, one for a gid in a claim statement is queued again if that claim
        misses it, and one whose transaction is not due (final, leased elsewhere, deadline moved) is
        dropped by the claim. A failed claim is retried after a pause (doubling up to
        :data:`CLAIM_RETRY_MAX_SECONDS`), not dropped.
        """
        self._hint(gid, source)

    async def claim_hinted(self, gids: Sequence[str], source: str) -> None:
        """Hints for ``gids`` (a batch of timer fires); returns once each one is handled.

        Handled: its claim statement returned (the gid claimed and its drive started, or not due:
        final, leased elsewhere, deadline moved), or it is being driven here or just finished. A
        failed claim is retried, so this waits until the database answers; raises
        :class:`~meshkit.errors.TransientError` when this replica stops or its hint queue is full,
        so the caller keeps the fires for later (e.g. does not ack them).
        """
        pending: list[asyncio.Future[None]] = []
        for gid in gids:
            if not self._hint(gid, source):
                raise TransientError("the coordinator takes no timer hints now (stopping or backlog full)")
            if gid in self._hinted or gid in self._claiming:
                future = self._handled.get(gid)
                if future is None:
                    future = self._handled[gid] = asyncio.get_running_loop().create_future()
                pending.append(future)
        if pending:
            await asyncio.wait(pending)  # not gather: a cancelled waiter leaves the shared futures be
            for future in pending:
                future.result()  # raises TransientError if this replica stopped meanwhile

    def _hint(self, gid: str, source: str) -> bool:
        """Queue a hint for ``gid`` unless it costs nothing; False when it was refused."""
        self.metrics.hinted(source)
        if self._closed:
            return False
        if gid in self._hinted or self._active.get(gid) or gid in self._recently_finished:
            return True
        if gid in self._claiming:
            # That claim may have used an earlier time (a stale fire of a moved deadline) and miss
            # the gid: queued again when the claim ends without it.
            self._rehinted[gid] = source
            return True
        if len(self._hinted) >= MAX_HINTS:
            return False
        self._hinted[gid] = source
        self._start_claiming()
        return True

    def _start_claiming(self) -> None:
        """Start a task claiming the queued hints, unless one runs (or there is no room: a drive ends)."""
        if self._claimer or self._closed or not self._hinted:
            return
        if self._claimed_running >= self.settings.max_concurrent_drives:
            return
        self._claimer = True
        self._spawn(self._claim_hints(), "claim-hints")

    async def _claim_hints(self) -> None:
        """Claim queued hints in batches while there are some and there is room to drive them."""
        failures = 0
        try:
            while self._hinted and not self._closed:
                room = min(CLAIM_BATCH, self.settings.max_concurrent_drives - self._claimed_running)
                if room <= 0:
                    return  # a finishing drive starts claiming again
                batch = {gid: self._hinted.pop(gid) for gid in list(itertools.islice(self._hinted, room))}
                self._claimed_running += len(batch)  # reserved before the claim: a sweep meanwhile sees it
                try:
                    await self._claim_batch(batch)
                    failures = 0
                except Exception:
                    failures += 1
                    pause = min(CLAIM_RETRY_MAX_SECONDS, CLAIM_RETRY_SECONDS * 2 ** (failures - 1))
                    log.exception("claiming %d hinted transactions failed; again in %.2fs", len(batch), pause)
                    await self.clock.sleep(pause)
        finally:
            self._claimer = False

    async def _claim_batch(self, batch: dict[str, str]) -> None:
        now = now_ms(self.clock)
        self._claiming.update(batch)
        claimed: list[Claimed] = []
        try:
            self.metrics.claimed_hints()
            claimed = await self.store.claim_many(list(batch), self.owner, now, now + self.settings.lease_ms)
        except Exception:
            self._hinted = {**batch, **self._hinted}  # not lost: first in line once the pause is over
            raise
        finally:
            self._claiming.difference_update(batch)
            self._requeue_rehinted(batch, claimed)
            self._unreserve(len(batch) - len(claimed))
        for gid in batch:
            future = None if gid in self._hinted else self._handled.pop(gid, None)
            if future is not None and not future.done():
                future.set_result(None)
        for item in claimed:
            self._spawn(self._drive_swept(item, now, batch[item.tx.gid]), f"drive-{item.tx.gid}")

    def _requeue_rehinted(self, batch: Mapping[str, str], claimed: Sequence[Claimed]) -> None:
        """Queue again the gids hinted during their claim statement that it did not claim."""
        if not self._rehinted:
            return
        taken = {item.tx.gid for item in claimed}
        for gid in batch:
            source = self._rehinted.pop(gid, None)
            if source is not None and gid not in taken and not self._closed:
                self._hinted[gid] = source

    def remind(self, gid: str, at_ms: int) -> None:
        """Wake locally for ``gid`` at ``at_ms`` (e.g. a timer that fired before the due time)."""
        if not self._closed:
            self._local.schedule(gid, at_ms)

    async def drive(self, gid: str, *, source: str = "local", force: bool = False) -> GlobalTx | None:
        """Claim ``gid`` if it is due (or ``force``) and drive it; None when it was not claimable."""
        if self._claimed_running >= self.settings.max_concurrent_drives and not force:
            return None
        self._claimed_running += 1
        # Active from now: a timer hint for gid meanwhile (e.g. the wake-up of the write that made it
        # due) is dropped instead of racing this claim on another store connection.
        self._active[gid] = self._active.get(gid, 0) + 1
        try:
            now = now_ms(self.clock)
            claimed = await self.store.claim(gid, self.owner, now, now + self.settings.lease_ms, force=force)
            if claimed is None:
                return None
            return await self._drive_claimed(claimed, source, now)
        finally:
            self._claimed_running -= 1
            self._release_active(gid)
            self._start_claiming()  # hints may have waited for this slot

    async def sweep(self, limit: int) -> int:
        """Claim up to ``limit`` due transactions (fewer when this replica is busy) and drive them."""
        room = min(limit, self.settings.max_concurrent_drives - self._claimed_running)
        if room <= 0 or self._closed:
            return 0
        now = now_ms(self.clock)
        self._claimed_running += room  # reserved before the claim: hint claims meanwhile see it
        claimed: list[Claimed] = []
        try:
            claimed = await self.store.claim_due(self.owner, now, now + self.settings.lease_ms, room)
        finally:
            self._unreserve(room - len(claimed))
        for item in claimed:
            self._spawn(self._drive_swept(item, now, "sweeper"), f"sweep-{item.tx.gid}")
        return len(claimed)

    def _unreserve(self, slots: int) -> None:
        """Give back drive slots reserved for a claim that took fewer; queued hints may use them."""
        if slots > 0:
            self._claimed_running -= slots
            self._start_claiming()

    async def _drive_swept(self, claimed: Claimed, now: int, source: str) -> GlobalTx | None:
        try:
            return await self._drive_claimed(claimed, source, now)
        finally:
            self._claimed_running -= 1
            self._start_claiming()

    async def _drive_claimed(self, claimed: Claimed, source: str, now: int) -> GlobalTx | None:
        if claimed.due_at is not None:
            self.metrics.late(source, (now - claimed.due_at) / 1000)
        gid = claimed.tx.gid
        self._active[gid] = self._active.get(gid, 0) + 1
        try:
            return await self.executor.drive(claimed.tx, claimed.ops)
        finally:
            self._release_active(gid)

    def continue_run(self, run: Run) -> None:
        """Finish a run begun by a command, in the background."""
        if not run.calls or run.tx.status.final:
            return
        gid = run.tx.gid
        self._active[gid] = self._active.get(gid, 0) + 1

        async def finish() -> None:
            try:
                await self.executor.finish(run)
            finally:
                self._release_active(gid)

        self._spawn(finish(), f"finish-{gid}", keep_context=True)

    def _release_active(self, gid: str) -> None:
        count = self._active.get(gid, 0) - 1
        if count > 0:
            self._active[gid] = count
        else:
            self._active.pop(gid, None)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, keep_context: bool = False) -> None:
        """Run ``coro`` in the background; in a clean context unless ``keep_context``.

        Claims and drives are started from whatever task noticed the work (a request, the wake-up
        task, a timer consumer): a copy of its context would carry that caller's gid and trace into
        every line of unrelated work. Only a command's own run (``continue_run``) keeps its context.
        """
        context = None if keep_context else contextvars.Context()
        task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed; the sweeper will retry", task.get_name(), exc_info=task.exception())

    def _on_local_wake(self, gid: str, _due_ms: int) -> None:
        self.poke(gid, "local")

    def after_write(self, tx: GlobalTx) -> None:
        """After every successful write: wake waiters, arrange the next wake-up."""
        if tx.status.final:
            self._local.cancel(tx.gid)
            self._recently_finished[tx.gid] = None
            if len(self._recently_finished) > RECENTLY_FINISHED:
                self._recently_finished.popitem(last=False)
            for future in self._waiters.get(tx.gid, ()):
                if not future.done():
                    future.set_result(tx)
            return
        if tx.owner is not None or tx.next_run_at is None or tx.retry_paused:
            self._local.cancel(tx.gid)
            return
        self._local.schedule(tx.gid, tx.next_run_at)
        for sink in self._timers:
            try:
                sink.schedule(tx.gid, tx.next_run_at)
            except Exception:
                log.exception("timer %r could not schedule %s", sink, tx.gid)

    async def idle(self) -> None:
        """Wait until no background drive is running (tests and graceful stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, drain_seconds: float = 0.0) -> None:
        """Stop: no new drives; running ones get ``drain_seconds`` to finish, then are cancelled.

        A cancelled drive leaves its transaction leased until the lease lapses; then another replica
        (or this one after a restart) takes over.
        """
        self._closed = True
        await self._local.close()
        self._hinted.clear()
        self._rehinted.clear()
        for future in self._handled.values():
            if not future.done():
                future.set_exception(TransientError("the coordinator stopped before claiming the hint"))
        self._handled.clear()
        tasks = list(self._tasks)
        if tasks and drain_seconds > 0:
            await asyncio.wait(tasks, timeout=drain_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
