"""The executor drives one transaction: plan, write (compare-and-set), call branches, record, repeat.

Each round is one database write and one batch of concurrent branch calls:

1. the mode's planner decides the status and which ops to call now;
2. one compare-and-set write records the results of the previous batch, counts an attempt for every
   op about to be called (before the call, so a crash mid-call still counts it and a saga step that may
   have run is compensated), moves the global status, and renews or releases the lease;
3. the calls are made concurrently; their results are applied by the retry policy.

The loop ends when the transaction is final, when nothing is due (the lease is released and
``next_run_at`` tells timers and the sweeper when to come back), or when a write loses its compare (an
operator or another replica changed the transaction: this replica stops touching it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.model import (
    CHECK_BACK_BRANCH,
    AdminAction,
    BranchOp,
    Event,
    EventKind,
    GlobalTx,
    Mode,
    OpKey,
    OpStatus,
    Status,
)
from coordinator.engine.plan import Decision, Planner
from coordinator.engine.policy import RetryPolicy
from coordinator.engine.ports import BranchCall, BranchInvoker, BranchResult, Outcome, TxRepository, TxWrite
from meshkit.observability.logctx import (
    TRACEPARENT_KEY,
    bound,
    normalized_traceparent,
    seeded_trace_id,
    trace_id_of,
)
from meshkit.observability.ratelimit import LogLimiter
from meshkit.runtime.clock import Clock, now_ms
from meshkit.tx.context import Op

log = logging.getLogger(__name__)

# A failing target gets one WARNING line per this many seconds (with the count of the ones held back).
TRANSIENT_LOG_INTERVAL_SECONDS = 10.0


def tx_log_fields(tx: GlobalTx) -> contextlib.AbstractContextManager[None]:
    """Binds the transaction's ``gid`` and ``trace_id`` to every line logged inside.

    The trace is the initiator's, else the one derived from the gid (what the branch calls carry).
    """
    parent = normalized_traceparent(dict(tx.options.headers).get(TRACEPARENT_KEY, ""))
    return bound(gid=tx.gid, trace_id=trace_id_of(parent) if parent else seeded_trace_id(tx.gid))


@dataclass(frozen=True, slots=True)
class Entry:
    """A status change requested by a command (Submit, Abort, admin), applied in the first write.

    The first write then also checks the transaction still has ``expect_status`` (when given; a
    creation has none).
    """

    status: Status
    reason: str
    expect_status: Status | None = None
    events: tuple[Event, ...] = ()
    ops: tuple[BranchOp, ...] = ()  # op rows the command changes (e.g. TCC tries -> succeeded)


@dataclass(slots=True)
class Run:
    """The in-memory state of one transaction being driven by this replica."""

    tx: GlobalTx
    ops: dict[OpKey, BranchOp]
    calls: list[BranchOp] = field(default_factory=list)
    dirty: dict[OpKey, BranchOp] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    stuck: bool = False
    check_back_now: bool = False  # the next round calls a PREPARED MSG's check-back, timeout or not
    halted: bool = False  # an operator paused the transaction while this run held it: no new calls

    def put(self, op: BranchOp) -> None:
        """Record a changed op (written with the next write)."""
        self.ops[op.key] = op
        self.dirty[op.key] = op


MAX_REQUEST_REPLANS = 4  # operator requests arriving during one round (each is taken at once)


@dataclass(frozen=True, slots=True)
class _Saved:
    """A run's state before planning a round, to plan it again when the write was refused."""

    ops: dict[OpKey, BranchOp]
    dirty: dict[OpKey, BranchOp]
    events: list[Event]
    calls: list[BranchOp]
    check_back_now: bool

    @classmethod
    def of(cls, run: Run) -> _Saved:
        return cls(dict(run.ops), dict(run.dirty), list(run.events), list(run.calls), run.check_back_now)

    def restore(self, run: Run) -> None:
        run.ops, run.dirty, run.events = dict(self.ops), dict(self.dirty), list(self.events)
        run.calls, run.check_back_now = list(self.calls), self.check_back_now


# The history entry of a recorded force-abort its taker could not apply; the operator is told why.
ABORT_DROPPED = "force abort (requested) dropped"
ALREADY_ABORTING = "already aborting"  # dropped, but what the operator asked for happens anyway


def abort_refusal(tx: GlobalTx) -> str:
    """Why an operator's force-abort cannot apply to ``tx`` now ("" when it can)."""
    if tx.status.final:
        return f"transaction {tx.gid} is {tx.status.name}: it cannot be aborted"
    if tx.status is Status.SUBMITTED and tx.mode is not Mode.SAGA:
        what = "confirms" if tx.mode is Mode.TCC else "branches"
        return (
            f"transaction {tx.gid} is a submitted {tx.mode.name}: its {what} must complete"
            " (force-fail gives up)"
        )
    if tx.mode is Mode.MSG and tx.status is Status.PREPARED:
        return f"transaction {tx.gid} is a prepared MSG: only its check-back can decide it"
    return ""


def take_request(run: Run, now: int) -> None:
    """Act on an operator's request recorded in the run's transaction (then it is cleared)."""
    request = run.tx.admin_request
    if request is None:
        return
    tx = run.tx = replace(run.tx, admin_request=None)
    if request.action is AdminAction.RETRY:
        for op in list(run.ops.values()):
            if op.status is OpStatus.PENDING and op.next_attempt_at is not None:
                run.put(replace(op, next_attempt_at=None, updated_at=now))
        return
    if request.action is AdminAction.FORCE_ABORT:
        refusal = abort_refusal(tx) if tx.status is not Status.ABORTING else ALREADY_ABORTING
        if refusal:
            detail = f"{ABORT_DROPPED}: {refusal}"
            run.events.append(Event(tx.gid, now, EventKind.ADMIN, request.actor, detail))
            return
        status, reason = Status.ABORTING, f"force abort: {request.reason}"
    else:
        status, reason = Status.FAILED, f"force fail: {request.reason}"
    run.events.append(
        Event(
            tx.gid,
            now,
            EventKind.STATE,
            request.actor,
            request.reason,
            from_status=tx.status,
            to_status=status,
        )
    )
    run.tx = replace(tx, status=status, reason=reason)


WaitHook = Callable[[GlobalTx], None]
Decide = Callable[[GlobalTx, list[BranchOp]], Entry | None]


class Executor:
    """Drives transactions owned by this replica (``owner``)."""

    def __init__(
        self,
        store: TxRepository,
        invoker: BranchInvoker,
        planners: Mapping[Mode, Planner],
        policy: RetryPolicy,
        clock: Clock,
        *,
        metrics: EngineMetrics,
        owner: str,
        lease_ms: int,
        on_written: WaitHook,
    ) -> None:
        self._store = store
        self._invoker = invoker
        self._planners = planners
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self.owner = owner
        self._lease_ms = lease_ms
        self._on_written = on_written
        self._transient_log = LogLimiter(clock, TRANSIENT_LOG_INTERVAL_SECONDS)

    @property
    def actor(self) -> str:
        """The actor recorded in the history for this replica's actions."""
        return f"coordinator/{self.owner}"

    async def begin(
        self,
        tx: GlobalTx,
        ops: Sequence[BranchOp],
        *,
        entry: Entry | None = None,
        create: bool = False,
        check_back_now: bool = False,
    ) -> Run | None:
        """Plan and write the first round; returns the run to :meth:`finish`, or None on a lost compare.

        ``create`` inserts ``tx`` (a new transaction) instead of updating it; None then means the gid
        already exists. ``entry`` applies a command's status change first. ``check_back_now`` makes
        the first round call a PREPARED MSG's check-back even before its timeout.
        """
        with tx_log_fields(tx):
            run = self._entered(tx, ops, entry)
            run.check_back_now = check_back_now
            expect_status = entry.expect_status if entry is not None else None
            ok = await self._round(run, previous=tx, expect_status=expect_status, create=create)
        return run if ok else None

    async def begin_atomic(self, gid: str, decide: Decide) -> tuple[GlobalTx, Run | None] | None:
        """Read, decide and write the first round in one database transaction (commands on a gid).

        ``decide(tx, ops)`` sees the current transaction and returns the :class:`Entry` to apply, or
        None to change nothing (it may raise to refuse). Returns None for an unknown gid, else the
        transaction as it is now and, when something was written, the run to :meth:`finish`.
        """
        runs: list[Run] = []

        def inner(tx: GlobalTx, ops: list[BranchOp]) -> TxWrite | None:
            entry = decide(tx, ops)
            if entry is None:
                return None
            run = self._entered(tx, ops, entry)
            runs.append(run)
            return self._plan(run, previous=tx, expect_status=entry.expect_status)

        with bound(gid=gid):
            result = await self._store.transition(gid, inner)
            if result is None:
                return None
            tx, write = result
            if write is None:
                return tx, None
            run = runs[-1]
            self._commit(run, write, previous=tx)
        return run.tx, run

    async def finish(self, run: Run) -> GlobalTx | None:
        """Make the calls of the run and keep going until final or waiting; None if the compare was lost."""
        with tx_log_fields(run.tx):
            while run.calls and not run.tx.status.final:
                if not await self.step(run):
                    return None
        return run.tx

    async def step(self, run: Run) -> bool:
        """Make the run's calls, record their results and plan the next round; False on a lost compare."""
        results = await asyncio.gather(*(self._invoke(run.tx, op) for op in run.calls))
        for op, result in zip(run.calls, results, strict=True):
            self._apply(run, op, result)
        return await self._round(run, previous=run.tx)

    async def drive(self, tx: GlobalTx, ops: Sequence[BranchOp]) -> GlobalTx | None:
        """Drive a transaction this replica has claimed, to the end or until it waits."""
        run = await self.begin(tx, ops)
        return await self.finish(run) if run is not None else None

    # ------------------------------------------------------------------ one round

    def _entered(self, tx: GlobalTx, ops: Sequence[BranchOp], entry: Entry | None) -> Run:
        run = Run(tx=tx, ops={op.key: op for op in ops})
        # The entry (a command landing now) was decided on the row as read, so it applies first; a
        # recorded request is then taken on the result (a force-abort after a Submit is dropped).
        if entry is not None:
            run.tx = replace(run.tx, status=entry.status, reason=entry.reason)
            run.events.extend(entry.events)
            for op in entry.ops:
                run.put(op)
        take_request(run, now_ms(self._clock))
        return run

    async def _round(
        self, run: Run, *, previous: GlobalTx, expect_status: Status | None = None, create: bool = False
    ) -> bool:
        """Plan and write one round; False when the transaction was taken (by a claim or a command).

        A write refused only because an operator recorded a request or flipped the pause (same
        version) is planned again with the request taken: the lease holder acts on it.
        """
        for _ in range(MAX_REQUEST_REPLANS):
            saved = _Saved.of(run)
            write = self._plan(run, previous=previous, expect_status=expect_status, create=create)
            if create:
                ok = await self._store.create(write.tx, list(run.ops.values()), write.events)
            else:
                ok = await self._store.write(write)
            if ok:
                self._commit(run, write, previous=None if create else previous)
                return True
            if create:
                return False
            saved.restore(run)
            current = await self._store.get(run.tx.gid)
            if current is None or current.version != previous.version:
                break
            run.tx = replace(
                run.tx,
                retry_paused=current.retry_paused,
                request_seq=current.request_seq,
                admin_request=current.admin_request,
            )
            run.halted = current.retry_paused
            take_request(run, now_ms(self._clock))
        log.info("transaction %s changed elsewhere; this replica stops driving it", run.tx.gid)
        return False

    def _plan(
        self, run: Run, *, previous: GlobalTx, expect_status: Status | None = None, create: bool = False
    ) -> TxWrite:
        """Decide the round (pure): the op attempts about to be made, the status, the write."""
        now = now_ms(self._clock)
        decision = self._planners[run.tx.mode].plan(run.tx, run.ops, now)
        if run.check_back_now:
            run.check_back_now = False
            decision = _with_check_back(run, decision)
        if run.halted and decision.calls and not decision.final:
            decision = replace(decision, calls=(), wake_at=now)
        calls = [run.ops[key] for key in decision.calls]
        run.calls = []
        for op in calls:
            started = replace(op, attempts=op.attempts + 1, updated_at=now)
            run.put(started)
            run.calls.append(started)
        if decision.status is not run.tx.status:
            run.events.append(self._state_event(run.tx, decision, now))
        return TxWrite(
            tx=self._next_tx(run, decision, now, bump=not create),
            expect_version=previous.version,
            expect_status=expect_status,
            ops=list(run.dirty.values()),
            events=list(run.events),
            skip_pending=decision.final,
            guard_requests=not create,
        )

    def _commit(self, run: Run, write: TxWrite, *, previous: GlobalTx | None) -> None:
        """Book-keeping once ``write`` is durable."""
        self._written(previous, write.tx)
        run.tx, run.stuck = write.tx, False
        run.dirty.clear()
        run.events.clear()

    def _written(self, previous: GlobalTx | None, tx: GlobalTx) -> None:
        if previous is None or previous.status is not tx.status:
            self._metrics.entered(tx.mode, tx.status)
        if previous is not None and previous.status is not tx.status and tx.status.final:
            log.info("transaction %s %s: %s", tx.gid, tx.status.name, tx.reason or "done")
        self._on_written(tx)

    def _next_tx(self, run: Run, decision: Decision, now: int, *, bump: bool) -> GlobalTx:
        tx = run.tx
        owner: str | None = None
        lease_until: int | None = None
        finished_at: int | None = None
        if decision.final:
            next_run_at = None
            finished_at = now
        elif decision.calls:
            lease_until = now + self._lease_ms + tx.options.request_timeout_ms
            owner, next_run_at = self.owner, lease_until
        else:
            next_run_at = decision.wake_at
        return replace(
            tx,
            status=decision.status,
            reason=decision.reason,
            updated_at=now,
            version=tx.version + 1 if bump else tx.version,
            stuck=tx.stuck or run.stuck,
            owner=owner,
            lease_until=lease_until,
            next_run_at=next_run_at,
            finished_at=finished_at,
        )

    def _state_event(self, tx: GlobalTx, decision: Decision, now: int) -> Event:
        return Event(
            gid=tx.gid,
            at=now,
            kind=EventKind.STATE,
            actor=self.actor,
            detail=decision.reason,
            from_status=tx.status,
            to_status=decision.status,
        )

    # ------------------------------------------------------------------ calls and results

    async def _invoke(self, tx: GlobalTx, op: BranchOp) -> BranchResult:
        call = BranchCall(
            target=op.target,
            payload=op.payload,
            gid=tx.gid,
            branch_id=op.branch_id,
            op=op.op,
            mode=tx.mode.wire,
            timeout_ms=tx.options.request_timeout_ms,
            headers=tx.options.headers,
        )
        try:
            return await self._invoker.invoke(call)
        except Exception as exc:  # an invoker must not raise; if it does, treat it as transient
            log.exception("branch invoker raised for %s %s/%s", tx.gid, op.branch_id, op.op)
            return BranchResult(Outcome.TRANSIENT, f"invoker error: {exc!r}")

    def _apply(self, run: Run, op: BranchOp, result: BranchResult) -> None:
        now = now_ms(self._clock)
        tx = run.tx
        change = self._policy.apply(tx.mode, op, result, tx.options, now)
        run.put(change.op)
        self._metrics.branch_call(tx.mode, op.op.value, result.outcome, op.attempts)
        if result.outcome is Outcome.OK:
            return
        detail = change.op.last_error
        if change.op.status is OpStatus.PENDING and change.op.next_attempt_at is not None:
            detail = f"{detail}; attempt {op.attempts}, next in {change.op.next_attempt_at - now} ms"
        if result.outcome is Outcome.TRANSIENT:
            self._log_transient(op, detail)
        run.events.append(
            Event(
                gid=tx.gid,
                at=now,
                kind=EventKind.BRANCH,
                actor=self.actor,
                detail=detail,
                branch_id=op.branch_id,
                op=op.op.value,
            )
        )
        if change.stuck and not tx.stuck and not run.stuck:
            run.stuck = True
            self._metrics.became_stuck(tx.mode, op.op.value)
            log.warning(
                "transaction %s is stuck: %s of branch %s failed %d times (limit %d): %s",
                tx.gid,
                op.op.value,
                op.branch_id,
                op.attempts,
                tx.options.retry_limit,
                change.op.last_error,
            )
            run.events.append(
                Event(
                    gid=tx.gid,
                    at=now,
                    kind=EventKind.STUCK,
                    actor=self.actor,
                    detail=f"{op.op.value} failed {op.attempts} times (retry limit {tx.options.retry_limit})",
                    branch_id=op.branch_id,
                    op=op.op.value,
                )
            )

    def _log_transient(self, op: BranchOp, detail: str) -> None:
        """A WARNING for a transient branch failure, at most one per target per interval."""
        held = self._transient_log.allow(op.target)
        if held is None:
            return
        log.warning(
            "branch %s %s failed transiently: %s%s",
            op.branch_id,
            op.op.value,
            detail,
            f" ({held} similar lines held back)" if held else "",
            extra={"branch": op.branch_id, "op": op.op.value, "target": op.target, "held_back": held},
        )


def _with_check_back(run: Run, decision: Decision) -> Decision:
    """``decision``, calling the check-back now when the run is a PREPARED MSG waiting for it."""
    check = run.ops.get((CHECK_BACK_BRANCH, Op.MSG))
    waiting = run.tx.mode is Mode.MSG and decision.status is Status.PREPARED and not decision.calls
    if not waiting or check is None or check.status is not OpStatus.PENDING:
        return decision
    return replace(decision, calls=(check.key,), wake_at=None)
