"""Operator actions on one transaction (the engine side of the Admin service and ``meshctl tx``).

Every action is one atomic change (compare-and-set under the row lock) and writes an ``admin`` history
entry naming who acted and why. A replica that was driving the transaction loses its compare-and-set
on its next write and stops, so an action never races a driver.

* :meth:`AdminOps.retry_now` - make every pending op due now and drive the transaction here.
* :meth:`AdminOps.pause` / :meth:`AdminOps.resume` - stop / restart automatic driving (timers,
  sweeper, retries); commands from initiators still apply.
* :meth:`AdminOps.force_abort` - roll back: TCC cancels every branch, a saga compensates the steps
  that started. A prepared MSG is decided by its check-back, called at once: rolled back (the
  check-back wrote the rollback barrier row, so a late local transaction is refused) -> FAILED;
  committed -> the message is sent instead, answered ``FailedPrecondition``; unreachable -> nothing
  changes, ``FailedPrecondition``. Refused once a TCC/MSG transaction was submitted (its confirms or
  branches must complete; use force-fail to give up on them).
* :meth:`AdminOps.force_fail` - mark FAILED without any compensation (pending ops are skipped).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace

from coordinator.engine.executor import Entry
from coordinator.engine.model import BranchOp, Event, EventKind, GlobalTx, Mode, OpStatus, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.validate import check_gid, check_reason
from meshkit.clock import now_ms
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound
from meshkit.txcontext import Op

MAX_ACTOR_LEN = 200


class AdminOps:
    """Operator actions, each recorded in the transaction's history with ``actor`` and ``reason``."""

    def __init__(self, engine: TxEngine) -> None:
        self._engine = engine

    async def retry_now(self, gid: str, *, actor: str, reason: str = "") -> GlobalTx:
        """Run the transaction now: pending ops become due and this replica drives it."""
        _check(gid, actor, reason)
        now = self._now()

        def change(tx: GlobalTx, ops: list[BranchOp]) -> tuple[GlobalTx, list[BranchOp], list[Event], bool]:
            _unfinished(tx, "retried")
            if tx.retry_paused:
                raise FailedPrecondition(f"transaction {gid} is paused: resume it first")
            due = [
                replace(op, next_attempt_at=None, updated_at=now)
                for op in ops
                if op.status is OpStatus.PENDING
            ]
            new = replace(
                tx, next_run_at=now, owner=None, lease_until=None, updated_at=now, version=tx.version + 1
            )
            return new, due, [_admin_event(tx, now, actor, "retry now", reason)], False

        tx = await self._required(gid, self._engine.update(gid, change))
        driven = await self._engine.drive(gid, source="admin", force=True)
        return driven or tx

    async def pause(self, gid: str, *, actor: str, reason: str = "") -> GlobalTx:
        """Stop automatic driving (retries, timeouts, sweeps) until :meth:`resume`."""
        _check(gid, actor, reason)
        now = self._now()

        def change(
            tx: GlobalTx, _ops: list[BranchOp]
        ) -> tuple[GlobalTx, list[BranchOp], list[Event], bool] | None:
            _unfinished(tx, "paused")
            if tx.retry_paused:
                return None
            new = replace(
                tx, retry_paused=True, owner=None, lease_until=None, updated_at=now, version=tx.version + 1
            )
            return new, [], [_admin_event(tx, now, actor, "pause", reason)], False

        return await self._required(gid, self._engine.update(gid, change))

    async def resume(self, gid: str, *, actor: str, reason: str = "") -> GlobalTx:
        """Restart automatic driving; the transaction is looked at right away."""
        _check(gid, actor, reason)
        now = self._now()

        def change(
            tx: GlobalTx, _ops: list[BranchOp]
        ) -> tuple[GlobalTx, list[BranchOp], list[Event], bool] | None:
            _unfinished(tx, "resumed")
            if not tx.retry_paused:
                return None
            new = replace(tx, retry_paused=False, next_run_at=now, updated_at=now, version=tx.version + 1)
            return new, [], [_admin_event(tx, now, actor, "resume", reason)], False

        tx = await self._required(gid, self._engine.update(gid, change))
        self._engine.poke(gid, "admin")
        return tx

    async def force_abort(self, gid: str, *, actor: str, reason: str) -> GlobalTx:
        """Roll back: cancel (TCC), compensate started steps (saga), ask a prepared MSG's check-back."""
        _check(gid, actor, reason, reason_required=True)
        current = await self._engine.store.get(gid)
        if current is not None and current.mode is Mode.MSG and current.status is Status.PREPARED:
            return await self._abort_prepared_msg(current, actor, reason)

        def decide(tx: GlobalTx, _ops: list[BranchOp]) -> Entry | None:
            _unfinished(tx, "aborted")
            if tx.status is Status.ABORTING:
                return None
            if tx.status is Status.SUBMITTED and tx.mode is not Mode.SAGA:
                raise FailedPrecondition(
                    f"transaction {gid} is a submitted {tx.mode.name}: its "
                    f"{'confirms' if tx.mode is Mode.TCC else 'branches'} must complete (force-fail gives up)"
                )
            now = self._now()
            events = (
                _admin_event(tx, now, actor, "force abort", reason),
                Event(
                    gid, now, EventKind.STATE, actor, reason, from_status=tx.status, to_status=Status.ABORTING
                ),
            )
            return Entry(Status.ABORTING, f"force abort: {reason}", expect_status=tx.status, events=events)

        return await self._required(gid, self._engine.start_entry(gid, decide))

    async def _abort_prepared_msg(self, tx: GlobalTx, actor: str, reason: str) -> GlobalTx:
        """Decide a prepared MSG through its check-back, never blind.

        The check-back (the initiator's ``query_prepared``) either finds the local transaction
        committed - the message is then sent instead, and the answer is ``FailedPrecondition`` saying
        so - or writes the rollback barrier row, so a late local transaction is refused, and the
        message fails (the answer is the FAILED transaction). When it cannot be reached, or a live
        replica is calling it right now, nothing changes and the answer is ``FailedPrecondition``.
        """
        gid = tx.gid
        event = _admin_event(tx, self._now(), actor, "force abort (asks the check-back)", reason)
        after = await self._engine.check_back_now(gid, event)
        loaded = await self._engine.store.load(gid)
        if loaded is None:
            raise NotFound(f"transaction {gid} not found")
        now_tx, ops = loaded
        if after is None and now_tx.status is Status.PREPARED:
            raise FailedPrecondition(
                f"transaction {gid} is being driven by replica {now_tx.owner} (lease until "
                f"{now_tx.lease_until} ms): its check-back call decides the message; ask again after that"
            )
        if now_tx.status is Status.PREPARED:
            check = next((op for op in ops if op.op is Op.MSG), None)
            error = check.last_error if check is not None else "no check-back"
            raise FailedPrecondition(
                f"transaction {gid}: the check-back could not be reached ({error}); nothing changed, the"
                " message is still PREPARED: force-abort again once the initiator answers"
            )
        if now_tx.status in (Status.SUBMITTED, Status.SUCCEEDED):
            raise FailedPrecondition(
                f"transaction {gid}: the check-back says the local transaction committed, so the message"
                f" was sent instead of aborted (now {now_tx.status.name})"
            )
        return now_tx

    async def force_fail(self, gid: str, *, actor: str, reason: str) -> GlobalTx:
        """Mark the transaction FAILED with no compensation; its pending ops are skipped."""
        _check(gid, actor, reason, reason_required=True)
        now = self._now()

        def change(tx: GlobalTx, _ops: list[BranchOp]) -> tuple[GlobalTx, list[BranchOp], list[Event], bool]:
            _unfinished(tx, "failed")
            new = replace(
                tx,
                status=Status.FAILED,
                reason=f"force fail: {reason}",
                finished_at=now,
                next_run_at=None,
                owner=None,
                lease_until=None,
                updated_at=now,
                version=tx.version + 1,
            )
            events = [
                _admin_event(tx, now, actor, "force fail", reason),
                Event(
                    gid, now, EventKind.STATE, actor, reason, from_status=tx.status, to_status=Status.FAILED
                ),
            ]
            return new, [], events, True

        return await self._required(gid, self._engine.update(gid, change))

    def _now(self) -> int:
        return now_ms(self._engine.clock)

    @staticmethod
    async def _required(gid: str, pending: Awaitable[GlobalTx | None]) -> GlobalTx:
        tx = await pending
        if tx is None:
            raise NotFound(f"transaction {gid} not found")
        return tx


def _check(gid: str, actor: str, reason: str, *, reason_required: bool = False) -> None:
    check_gid(gid)
    check_reason(reason)
    if not actor or len(actor) > MAX_ACTOR_LEN:
        raise InvalidArgument("actor", f"1..{MAX_ACTOR_LEN} characters required")
    if reason_required and not reason.strip():
        raise InvalidArgument("reason", "say why (it goes to the transaction's history)")


def _unfinished(tx: GlobalTx, what: str) -> None:
    if tx.status.final:
        raise FailedPrecondition(f"transaction {tx.gid} is {tx.status.name}: it cannot be {what}")


def _admin_event(tx: GlobalTx, now: int, actor: str, action: str, reason: str) -> Event:
    return Event(tx.gid, now, EventKind.ADMIN, actor, f"{action}: {reason}" if reason else action)
