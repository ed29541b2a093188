"""The coordinator engine: the commands of the Coordinator API (the facade the servicers call).

:class:`TxEngine` validates a command, records it atomically (an insert, or a read-decide-write under
the row lock), and starts driving the transaction in-process right away (no timer round trip on the
happy path). Everything that must happen later - retries, timeouts, work of a crashed replica - comes
through its :class:`~coordinator.engine.driver.Driver`: :meth:`TxEngine.poke` (local wake-ups,
JetStream timers) and :meth:`TxEngine.sweep` (the store sweeper) claim a transaction with a lease
first, so two replicas never drive one transaction at once. Operator actions build on
:meth:`TxEngine.start_entry` and :meth:`TxEngine.update` (see :mod:`coordinator.engine.admin`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace

from coordinator.engine.commands import OptionsInput, PrepareCommand, SubmitCommand, TxView
from coordinator.engine.driver import Driver
from coordinator.engine.executor import Decide, Entry
from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.model import (
    CHECK_BACK_BRANCH,
    BranchOp,
    BranchSpec,
    Event,
    EventKind,
    GlobalTx,
    Mode,
    OpStatus,
    Status,
    TxOptions,
    branches_of,
)
from coordinator.engine.msg import MsgPlanner
from coordinator.engine.plan import Planner
from coordinator.engine.ports import (
    BranchInvoker,
    RegisterOutcome,
    TimerSink,
    TxRepository,
    TxWrite,
)
from coordinator.engine.saga import SagaPlanner
from coordinator.engine.settings import EngineSettings
from coordinator.engine.tcc import TccPlanner, tcc_ops
from coordinator.engine.validate import (
    check_gid,
    check_headers,
    check_mode,
    check_msg_branches,
    check_options,
    check_reason,
    check_saga_branches,
    check_target,
    check_tcc_branch,
    check_tcc_branches,
)
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound, TransientError
from meshkit.runtime.clock import Clock, now_ms
from meshkit.tx.context import Op

log = logging.getLogger(__name__)

# What an update changes: the new row, changed ops, events to append, and "skip every pending op".
Change = Callable[[GlobalTx, list[BranchOp]], tuple[GlobalTx, list[BranchOp], list[Event], bool] | None]

MAX_CAS_RETRIES = 8
INITIATOR = "initiator"


def default_replica_id(port: int = 0) -> str:
    """The replica id when none is configured: ``<hostname>:<port>``, else ``<hostname>-<pid>`` for port 0.

    With a fixed port it is stable across restarts of the same pod or host (so a restart takes over
    its own leases at once) and unique among live processes (two cannot listen on one port of one
    host). With port 0 (a random port) nothing is stable anyway, and the pid keeps it unique.
    """
    host = socket.gethostname()[:40]
    return f"{host}:{port}" if port else f"{host}-{os.getpid()}"


def resolve_options(options: OptionsInput, settings: EngineSettings) -> TxOptions:
    """Validate requested options and fill in the coordinator's defaults for zeros."""
    check_options(
        options.timeout_ms, options.retry_interval_ms, options.retry_limit, options.request_timeout_ms
    )
    check_headers(options.headers)
    return TxOptions(
        timeout_ms=options.timeout_ms or settings.default_timeout_ms,
        retry_interval_ms=options.retry_interval_ms or settings.default_retry_interval_ms,
        retry_limit=options.retry_limit or settings.default_retry_limit,
        request_timeout_ms=options.request_timeout_ms or settings.default_request_timeout_ms,
        concurrent=options.concurrent,
        headers=tuple(sorted(options.headers.items())),
    )


def _differs(mode: Mode, ops: Sequence[BranchOp], branches: Sequence[BranchSpec]) -> str:
    """What differs between a stored transaction's branches and re-sent ones ("" when the same)."""
    stored = branches_of(mode, list(ops))
    if len(stored) != len(branches):
        return f"{len(stored)} branches recorded, {len(branches)} sent"
    for i, (old, new) in enumerate(zip(stored, branches, strict=True)):
        if old != new:
            return f"branches[{i}] ({new.branch_id!r}) differs from the recorded branch {old.branch_id!r}"
    return ""


class TxEngine:
    """Runs the Coordinator commands and drives transactions (one instance per replica)."""

    def __init__(
        self,
        store: TxRepository,
        invoker: BranchInvoker,
        clock: Clock,
        settings: EngineSettings,
        metrics: EngineMetrics,
        *,
        rng: random.Random | None = None,
        timers: Sequence[TimerSink] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.metrics = metrics
        self.owner = settings.replica_id or default_replica_id()
        planners: dict[Mode, Planner] = {
            Mode.TCC: TccPlanner(),
            Mode.SAGA: SagaPlanner(),
            Mode.MSG: MsgPlanner(),
        }
        self.driver = Driver(
            store,
            invoker,
            planners,
            clock,
            settings=settings,
            metrics=metrics,
            owner=self.owner,
            rng=rng,
            timers=timers,
        )
        self._executor = self.driver.executor

    @property
    def actor(self) -> str:
        """How this replica is named in histories (``coordinator/<replica>``)."""
        return self._executor.actor

    # ------------------------------------------------------------------ driving (see Driver)

    def add_timer(self, sink: TimerSink) -> None:
        """Also tell ``sink`` when a transaction waits (e.g. JetStream timers once connected)."""
        self.driver.add_timer(sink)

    def remove_timer(self, sink: TimerSink) -> None:
        """Stop telling ``sink`` (e.g. NATS went away)."""
        self.driver.remove_timer(sink)

    def poke(self, gid: str, source: str = "local") -> None:
        """A hint that ``gid`` may be due: claim and drive it in the background."""
        self.driver.poke(gid, source)

    async def claim_hinted(self, gids: Sequence[str], source: str) -> None:
        """Hints for ``gids`` (timer fires); returns once each was claimed, found not due or is driven."""
        await self.driver.claim_hinted(gids, source)

    def remind(self, gid: str, at_ms: int) -> None:
        """Wake locally for ``gid`` at ``at_ms``."""
        self.driver.remind(gid, at_ms)

    async def drive(self, gid: str, *, source: str = "local", force: bool = False) -> GlobalTx | None:
        """Claim ``gid`` if it is due (or ``force``) and drive it; None when it was not claimable."""
        return await self.driver.drive(gid, source=source, force=force)

    async def sweep(self, limit: int) -> int:
        """Claim up to ``limit`` due transactions and drive them; returns how many were claimed."""
        return await self.driver.sweep(limit)

    async def wait_final(self, gid: str, timeout_seconds: float) -> GlobalTx:
        """Wait until ``gid`` is final or ``timeout_seconds`` passed; returns it as it is then."""
        return await self.driver.wait_final(gid, timeout_seconds)

    async def idle(self) -> None:
        """Wait until no background drive is running."""
        await self.driver.idle()

    async def close(self, drain_seconds: float = 0.0) -> None:
        """Stop driving (running drives get ``drain_seconds``, then are cancelled)."""
        await self.driver.close(drain_seconds)

    # ================================================================== commands

    async def prepare(self, cmd: PrepareCommand, *, actor: str = INITIATOR) -> GlobalTx:
        """TCC: open the transaction. MSG: record its branches and check-back before the local transaction.

        TCC ``branches`` already known are registered in the same insert, positions in their order (as
        by :meth:`register_branch`, one round trip for all). Idempotent: preparing an existing gid with
        the same mode (and, for MSG, the same branches and check-back) answers the transaction as it
        is; a TCC branch not recorded yet is registered; anything different is ``FailedPrecondition``.
        """
        gid = check_gid(cmd.gid)
        mode = check_mode(cmd.mode)
        options = resolve_options(cmd.options, self.settings)
        if mode is Mode.SAGA:
            raise InvalidArgument("mode", "saga transactions are created by Submit with their steps")
        if mode is Mode.TCC:
            if cmd.query_prepared:
                raise InvalidArgument("query_prepared", "only MSG transactions have a check-back")
            check_tcc_branches(cmd.branches)
        else:
            check_msg_branches(cmd.branches)
            check_target(cmd.query_prepared, "query_prepared")
        now = now_ms(self.clock)
        tx = GlobalTx(
            gid=gid,
            mode=mode,
            status=Status.PREPARED,
            options=options,
            created_at=now,
            updated_at=now,
            query_prepared=cmd.query_prepared,
            timeout_at=now + options.timeout_ms,
        )
        if mode is Mode.MSG:
            ops = self._msg_ops(gid, cmd.branches, now, cmd.query_prepared)
        else:  # TCC: the branches already known are registered in the same insert
            ops = [op for i, b in enumerate(cmd.branches) for op in tcc_ops(gid, b, now, i + 1)]
        created = await self._executor.begin(
            tx,
            ops,
            entry=Entry(Status.PREPARED, "", events=(self._event(tx, None, Status.PREPARED, actor),)),
            create=True,
        )
        if created is not None:
            return created.tx
        return await self._same_prepare(gid, mode, cmd)

    async def _same_prepare(self, gid: str, mode: Mode, cmd: PrepareCommand) -> GlobalTx:
        loaded = await self.store.load(gid)
        if loaded is None:  # deleted in between: practically impossible; let the caller retry
            raise TransientError(f"transaction {gid} changed during Prepare; retry")
        tx, ops = loaded
        if tx.mode is not mode:
            raise FailedPrecondition(f"transaction {gid} exists as {tx.mode.name}, not {mode.name}")
        if mode is Mode.MSG:
            diff = _differs(mode, ops, cmd.branches)
            if diff:
                raise FailedPrecondition(f"transaction {gid} exists with different branches: {diff}")
            if tx.query_prepared != cmd.query_prepared:
                raise FailedPrecondition(
                    f"transaction {gid} exists with query_prepared {tx.query_prepared!r}"
                )
        if mode is Mode.TCC and cmd.branches:
            await self._register_again(gid, ops, cmd.branches)
        return tx

    async def _register_again(self, gid: str, ops: list[BranchOp], branches: Sequence[BranchSpec]) -> None:
        """A retried TCC Prepare: each branch not recorded as sent goes through RegisterBranch."""
        recorded = branches_of(Mode.TCC, ops)
        for branch in branches:
            if branch not in recorded:
                await self.register_branch(gid, branch)

    async def register_branch(self, gid: str, branch: BranchSpec) -> None:
        """TCC: record a branch (try, confirm, cancel) before the initiator calls its try.

        Refused with ``FailedPrecondition`` once the transaction left ``PREPARED``; registering the
        same branch again with the same targets and payload is a no-op.
        """
        check_gid(gid)
        check_tcc_branch(branch)
        now = now_ms(self.clock)
        result = await self.store.add_branch(gid, tcc_ops(gid, branch, now), now)
        if result.outcome is RegisterOutcome.NOT_FOUND:
            raise NotFound(f"transaction {gid} not found")
        tx = result.tx
        if result.outcome is RegisterOutcome.WRONG_STATE and tx is not None:
            if tx.mode is not Mode.TCC:
                raise FailedPrecondition(f"transaction {gid} is {tx.mode.name}: only TCC registers branches")
            raise FailedPrecondition(
                f"transaction {gid} is {tx.status.name}: branches can only be added while PREPARED"
            )
        if result.outcome is RegisterOutcome.DIFFERENT:
            raise FailedPrecondition(
                f"branch {branch.branch_id!r} of transaction {gid} is registered with other targets"
                " or payload"
            )

    async def submit(
        self, cmd: SubmitCommand, *, wait_seconds: float | None = None, actor: str = INITIATOR
    ) -> GlobalTx:
        """TCC/MSG: commit. SAGA (or MSG with branches and no Prepare): create and run.

        With ``wait_seconds`` the answer comes once the transaction is final or that time passed.
        """
        gid = check_gid(cmd.gid)
        mode = check_mode(cmd.mode) if cmd.mode else None
        options = resolve_options(cmd.options, self.settings)
        if mode is Mode.SAGA:
            check_saga_branches(cmd.branches, options.concurrent)
        elif mode is Mode.TCC and cmd.branches:
            raise InvalidArgument("branches", "TCC branches are added with RegisterBranch")
        elif cmd.branches:
            check_msg_branches(cmd.branches)
        tx = await self._submit(gid, mode, options, cmd.branches, actor)
        if wait_seconds is not None and not tx.status.final:
            tx = await self.wait_final(gid, wait_seconds)
        return tx

    async def _submit(
        self, gid: str, mode: Mode | None, options: TxOptions, branches: Sequence[BranchSpec], actor: str
    ) -> GlobalTx:
        def decide(tx: GlobalTx, ops: list[BranchOp]) -> Entry | None:
            if mode is not None and tx.mode is not mode:
                raise FailedPrecondition(f"transaction {gid} exists as {tx.mode.name}, not {mode.name}")
            if branches:
                diff = _differs(tx.mode, ops, branches)
                if diff:
                    raise FailedPrecondition(f"transaction {gid} exists with different branches: {diff}")
            if tx.status in (Status.ABORTING, Status.FAILED):
                raise FailedPrecondition(
                    f"transaction {gid} is {tx.status.name}: it can no longer be submitted"
                )
            if tx.status is not Status.PREPARED:
                return None  # submitted before: answer as it is
            return self._submit_entry(tx, ops, actor)

        creates = mode is Mode.SAGA or (mode is Mode.MSG and bool(branches))
        for _ in range(MAX_CAS_RETRIES):
            if mode is not None and creates:
                # Most such Submits are new: insert first (one commit), read only for a duplicate.
                created = await self._create_submitted(gid, mode, options, branches, actor)
                if created is not None:
                    return created
            tx = await self.start_entry(gid, decide)
            if tx is not None:
                return tx
            if not creates:
                raise NotFound(f"transaction {gid} not found (Prepare it first)")
            # deleted in between (retention): try again
        raise TransientError(f"transaction {gid} kept changing during Submit; retry")

    def _submit_entry(self, tx: GlobalTx, ops: Sequence[BranchOp], actor: str) -> Entry:
        now = now_ms(self.clock)
        # TCC: Submit says every try succeeded. MSG: the check-back is no longer needed.
        done_op = Op.TRY if tx.mode is Mode.TCC else Op.MSG
        done_status = OpStatus.SUCCEEDED if tx.mode is Mode.TCC else OpStatus.SKIPPED
        changed = tuple(
            replace(op, status=done_status, updated_at=now)
            for op in ops
            if op.op is done_op and op.status is OpStatus.PENDING
        )
        event = self._event(tx, Status.PREPARED, Status.SUBMITTED, actor)
        return Entry(Status.SUBMITTED, "", expect_status=Status.PREPARED, events=(event,), ops=changed)

    async def _create_submitted(
        self, gid: str, mode: Mode, options: TxOptions, branches: Sequence[BranchSpec], actor: str
    ) -> GlobalTx | None:
        now = now_ms(self.clock)
        tx = GlobalTx(
            gid=gid, mode=mode, status=Status.SUBMITTED, options=options, created_at=now, updated_at=now
        )
        ops = (
            self._saga_ops(gid, branches, now) if mode is Mode.SAGA else self._msg_ops(gid, branches, now, "")
        )
        entry = Entry(Status.SUBMITTED, "", events=(self._event(tx, None, Status.SUBMITTED, actor),))
        run = await self._executor.begin(tx, ops, entry=entry, create=True)
        if run is None:
            return None
        self.driver.continue_run(run)
        return run.tx

    async def abort(self, gid: str, reason: str = "", *, actor: str = INITIATOR) -> GlobalTx:
        """TCC: roll back (cancel every registered branch). MSG: the local transaction failed; fail it.

        Idempotent while ``ABORTING``/``FAILED``; refused (``FailedPrecondition``) once submitted, and
        for sagas (they roll back by themselves; operators use the Admin service).
        """
        check_gid(gid)
        check_reason(reason)
        why = reason or "aborted by the initiator"

        def decide(tx: GlobalTx, _ops: list[BranchOp]) -> Entry | None:
            if tx.mode is Mode.SAGA:
                raise FailedPrecondition(f"transaction {gid} is a SAGA: it compensates by itself")
            if tx.status in (Status.ABORTING, Status.FAILED):
                return None
            if tx.status is not Status.PREPARED:
                raise FailedPrecondition(
                    f"transaction {gid} is {tx.status.name}: it can no longer be aborted"
                )
            event = self._event(tx, Status.PREPARED, Status.ABORTING, actor, why)
            return Entry(Status.ABORTING, why, expect_status=Status.PREPARED, events=(event,))

        tx = await self.start_entry(gid, decide)
        if tx is None:
            raise NotFound(f"transaction {gid} not found")
        return tx

    async def query(self, gid: str) -> TxView:
        """The transaction, its ops and its history; ``NotFound`` for an unknown gid."""
        check_gid(gid)
        loaded = await self.store.load(gid)
        if loaded is None:
            raise NotFound(f"transaction {gid} not found")
        tx, ops = loaded
        history = await self.store.history(gid)
        return TxView(tx=tx, ops=tuple(ops), history=tuple(history))

    # ================================================================== building blocks

    async def start_entry(self, gid: str, decide: Decide) -> GlobalTx | None:
        """Apply a command's status change atomically and drive what follows in the background.

        ``decide(tx, ops)`` runs inside the database transaction (pure, fast): it returns the
        :class:`Entry` to apply, None to leave the transaction as it is, or raises to refuse. Returns
        None for an unknown gid, else the transaction as it is now.
        """
        result = await self._executor.begin_atomic(gid, decide)
        if result is None:
            return None
        tx, run = result
        if run is not None:
            self.driver.continue_run(run)
        return tx

    async def check_back_now(self, gid: str, event: Event) -> GlobalTx | None:
        """Claim ``gid`` (a PREPARED MSG, paused or not) and call its check-back now, timeout or not.

        ``event`` (who asked, and why) is written with the claim's first round. Returns the
        transaction once the check-back's answer is recorded - SUBMITTED (committed: the branches go
        on in the background, or after a resume when paused), FAILED (rolled back) or still PREPARED
        (no answer) - or None when it
        could not be claimed (unknown, final, or leased by a live driver). Anything else the claimed
        transaction needs is driven as usual.
        """
        now = now_ms(self.clock)
        lease_until = now + self.settings.lease_ms
        claimed = await self.store.claim(gid, self.owner, now, lease_until, force=True, include_paused=True)
        if claimed is None:
            return None
        tx = claimed.tx
        entry = Entry(tx.status, tx.reason, expect_status=tx.status, events=(event,))
        run = await self._executor.begin(tx, claimed.ops, entry=entry, check_back_now=True)
        if run is None:
            return await self.store.get(gid)
        # Paused: the check-back's answer is recorded, but no branch is called before a resume.
        run.halted = tx.retry_paused
        asked = tx.mode is Mode.MSG and any(op.op is Op.MSG for op in run.calls)
        if asked and not await self._executor.step(run):
            return await self.store.get(gid)
        self.driver.continue_run(run)
        return run.tx

    async def update(self, gid: str, change: Change) -> GlobalTx | None:
        """Apply a change that needs no branch calls (pause, resume, force-fail) atomically.

        ``change(tx, ops)`` runs inside the database transaction and returns the new row with
        ``version`` + 1, the ops it changes and the events to append (or None to leave it as it is,
        or raises to refuse). Returns None for an unknown gid, else the transaction as it is now.
        """

        def decide(tx: GlobalTx, ops: list[BranchOp]) -> TxWrite | None:
            changed = change(tx, ops)
            if changed is None:
                return None
            new_tx, new_ops, events, skip_pending = changed
            return TxWrite(
                tx=new_tx,
                expect_version=tx.version,
                ops=new_ops,
                events=events,
                skip_pending=skip_pending,
            )

        result = await self.store.transition(gid, decide)
        if result is None:
            return None
        tx, write = result
        if write is None:
            return tx
        if write.tx.status is not tx.status:
            self.metrics.entered(write.tx.mode, write.tx.status)
        self.driver.after_write(write.tx)
        return write.tx

    # ================================================================== helpers

    def _event(
        self, tx: GlobalTx, before: Status | None, after: Status, actor: str, detail: str = ""
    ) -> Event:
        return Event(
            gid=tx.gid,
            at=now_ms(self.clock),
            kind=EventKind.STATE,
            actor=actor,
            detail=detail,
            from_status=before,
            to_status=after,
        )

    @staticmethod
    def _msg_ops(gid: str, branches: Sequence[BranchSpec], now: int, query_prepared: str) -> list[BranchOp]:
        ops = [
            BranchOp(
                gid=gid,
                branch_id=b.branch_id,
                op=Op.ACTION,
                target=b.action,
                payload=b.payload,
                position=i + 1,
                depends_on=b.depends_on,
                updated_at=now,
            )
            for i, b in enumerate(branches)
        ]
        if query_prepared:
            ops.insert(
                0,
                BranchOp(
                    gid=gid, branch_id=CHECK_BACK_BRANCH, op=Op.MSG, target=query_prepared, updated_at=now
                ),
            )
        return ops

    @staticmethod
    def _saga_ops(gid: str, branches: Sequence[BranchSpec], now: int) -> list[BranchOp]:
        ops: list[BranchOp] = []
        for i, b in enumerate(branches):
            action = BranchOp(
                gid=gid,
                branch_id=b.branch_id,
                op=Op.ACTION,
                target=b.action,
                payload=b.payload,
                position=i + 1,
                depends_on=b.depends_on,
                updated_at=now,
            )
            ops.append(action)
            if b.cancel:
                ops.append(replace(action, op=Op.COMPENSATE, target=b.cancel))
        return ops
