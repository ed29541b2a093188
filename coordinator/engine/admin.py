"""Operator actions on one transaction (the engine side of the Admin service and ``meshctl tx``).

Every action is one atomic change (compare-and-set under the row lock) and writes an ``admin`` history
entry naming who acted and why. An action never takes a transaction from a driver holding a live lease
(DESIGN.md section 4): pause and resume only flip the flag, and retry, force-abort and force-fail are
recorded in the row (``admin_request``) for the holder, which takes them on its next write (its write
is refused until it has seen them) - or for the next claimer once the lease lapsed. So no op is ever
called by two drivers at once. Without a live lease the action applies at once. A recorded action
answers once the holder applied it; ``FailedPrecondition`` when the holder dropped it (a force-abort
that no longer applies, e.g. the initiator's Submit landed first; the reason is in the answer) or has
not taken it within ``REQUEST_WAIT_SECONDS`` (it stays recorded and applies later).

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

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from coordinator.engine.executor import ABORT_DROPPED, ALREADY_ABORTING, Entry, abort_refusal
from coordinator.engine.model import (
    REQUEST_STRENGTH,
    AdminAction,
    AdminRequest,
    BranchOp,
    Event,
    EventKind,
    GlobalTx,
    Mode,
    OpStatus,
    Status,
)
from coordinator.engine.service import TxEngine
from coordinator.engine.validate import check_gid, check_reason
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound, TransientError
from meshkit.runtime.clock import now_ms
from meshkit.tx.context import Op

MAX_ACTOR_LEN = 200
MAX_LEASE_RACES = 4
REQUEST_WAIT_SECONDS = 3.0  # how long an action recorded for a lease holder waits to see it taken
REQUEST_POLL_SECONDS = 0.02
ACTION_NAMES = {
    AdminAction.RETRY: "retry now",
    AdminAction.FORCE_ABORT: "force abort",
    AdminAction.FORCE_FAIL: "force fail",
}

log = logging.getLogger(__name__)

Changed = tuple[GlobalTx, list[BranchOp], list[Event], bool]


class AdminOps:
    """Operator actions, each recorded in the transaction's history with ``actor`` and ``reason``."""

    def __init__(self, engine: TxEngine) -> None:
        self._engine = engine

    async def retry_now(self, gid: str, *, actor: str, reason: str = "") -> GlobalTx:
        """Run the transaction now: pending ops become due and this replica drives it.

        While another driver holds a live lease the request is recorded for it instead.
        """
        _check(gid, actor, reason)
        request = AdminRequest(AdminAction.RETRY, actor, reason)

        def refuse(tx: GlobalTx) -> None:
            _unfinished(tx, "retried")
            if tx.retry_paused:
                raise FailedPrecondition(f"transaction {gid} is paused: resume it first")

        async def direct() -> GlobalTx:
            now = self._now()

            def change(tx: GlobalTx, ops: list[BranchOp]) -> Changed:
                refuse(tx)
                _not_leased(tx, now)
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

        return await self._act(gid, request, refuse, direct)

    async def pause(self, gid: str, *, actor: str, reason: str = "") -> GlobalTx:
        """Stop automatic driving (retries, timeouts, sweeps) until :meth:`resume`.

        Only the flag is set: a driver holding the lease sees it on its next write and makes no new
        call after the ones in flight, then releases the transaction.
        """
        _check(gid, actor, reason)
        now = self._now()

        def change(tx: GlobalTx, _ops: list[BranchOp]) -> Changed | None:
            _unfinished(tx, "paused")
            if tx.retry_paused:
                return None
            new = replace(tx, retry_paused=True, request_seq=tx.request_seq + 1, updated_at=now)
            return new, [], [_admin_event(tx, now, actor, "pause", reason)], False

        return await self._required(gid, self._engine.update(gid, change))

    async def resume(self, gid: str, *, actor: str, reason: str = "") -> GlobalTx:
        """Restart automatic driving; the transaction is looked at right away (or by its lease holder)."""
        _check(gid, actor, reason)
        now = self._now()

        def change(tx: GlobalTx, _ops: list[BranchOp]) -> Changed | None:
            _unfinished(tx, "resumed")
            if not tx.retry_paused:
                return None
            due = tx.next_run_at if _leased(tx, now) else now
            new = replace(
                tx, retry_paused=False, request_seq=tx.request_seq + 1, next_run_at=due, updated_at=now
            )
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
        request = AdminRequest(AdminAction.FORCE_ABORT, actor, reason)

        def refuse(tx: GlobalTx) -> None:
            if tx.status is not Status.ABORTING:
                refusal = abort_refusal(tx)
                if refusal:
                    raise FailedPrecondition(refusal)

        async def direct() -> GlobalTx:
            def decide(tx: GlobalTx, _ops: list[BranchOp]) -> Entry | None:
                refuse(tx)
                if tx.status is Status.ABORTING:
                    return None
                now = self._now()
                _not_leased(tx, now)
                events = (
                    _admin_event(tx, now, actor, "force abort", reason),
                    Event(
                        gid,
                        now,
                        EventKind.STATE,
                        actor,
                        reason,
                        from_status=tx.status,
                        to_status=Status.ABORTING,
                    ),
                )
                return Entry(
                    Status.ABORTING, f"force abort: {reason}", expect_status=tx.status, events=events
                )

            return await self._required(gid, self._engine.start_entry(gid, decide))

        return await self._act(gid, request, refuse, direct)

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
            sent = "will be sent once resumed" if now_tx.retry_paused else "was sent"
            raise FailedPrecondition(
                f"transaction {gid}: the check-back says the local transaction committed, so the message"
                f" {sent} instead of aborted (now {now_tx.status.name})"
            )
        return now_tx

    async def force_fail(self, gid: str, *, actor: str, reason: str) -> GlobalTx:
        """Mark the transaction FAILED with no compensation; its pending ops are skipped."""
        _check(gid, actor, reason, reason_required=True)
        request = AdminRequest(AdminAction.FORCE_FAIL, actor, reason)

        def refuse(tx: GlobalTx) -> None:
            _unfinished(tx, "failed")

        async def direct() -> GlobalTx:
            now = self._now()

            def change(tx: GlobalTx, _ops: list[BranchOp]) -> Changed:
                refuse(tx)
                _not_leased(tx, now)
                new = replace(
                    tx,
                    status=Status.FAILED,
                    reason=f"force fail: {reason}",
                    finished_at=now,
                    next_run_at=None,
                    owner=None,
                    lease_until=None,
                    admin_request=None,
                    updated_at=now,
                    version=tx.version + 1,
                )
                events = [
                    _admin_event(tx, now, actor, "force fail", reason),
                    Event(
                        gid,
                        now,
                        EventKind.STATE,
                        actor,
                        reason,
                        from_status=tx.status,
                        to_status=Status.FAILED,
                    ),
                ]
                return new, [], events, True

            return await self._required(gid, self._engine.update(gid, change))

        return await self._act(gid, request, refuse, direct)

    async def _act(
        self,
        gid: str,
        request: AdminRequest,
        refuse: Callable[[GlobalTx], None],
        direct: Callable[[], Awaitable[GlobalTx]],
    ) -> GlobalTx:
        """Record ``request`` for the driver holding a live lease, or act ``direct``-ly when none does.

        ``refuse`` raises when the action does not apply to the transaction's state. Both paths check
        the lease under the row lock; a claim slipping in between just sends the action round again.
        """
        for _ in range(MAX_LEASE_RACES):
            recorded = False

            def record(tx: GlobalTx, _ops: list[BranchOp]) -> Changed | None:
                nonlocal recorded
                refuse(tx)
                now = self._now()
                if not _leased(tx, now):
                    return None
                recorded = True
                pending = tx.admin_request
                keep = (
                    pending is not None
                    and REQUEST_STRENGTH[pending.action] > REQUEST_STRENGTH[request.action]
                )
                new = replace(
                    tx,
                    admin_request=pending if keep else request,
                    request_seq=tx.request_seq + 1,
                    updated_at=now,
                )
                log.info("transaction %s: %s recorded for %s (lease holder)", gid, request.action, tx.owner)
                event = _admin_event(tx, now, request.actor, ACTION_NAMES[request.action], request.reason)
                return new, [], [event], False

            tx = await self._required(gid, self._engine.update(gid, record))
            if recorded:
                return await self._taken(tx, request)
            try:
                return await direct()
            except _LeaseHeld:
                continue
        raise TransientError(f"transaction {gid} keeps being claimed by drivers; retry")

    async def _taken(self, tx: GlobalTx, request: AdminRequest) -> GlobalTx:
        """``tx`` once its lease holder took the recorded ``request`` and applied it.

        The holder takes it when its calls in flight return; an operator mostly sees the result at once.
        ``FailedPrecondition`` when the holder dropped it (a force-abort that no longer applies, e.g.
        the initiator submitted first) or has not taken it within a few seconds (it stays recorded).
        """
        gid, owner, lease_until = tx.gid, tx.owner, tx.lease_until
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_WAIT_SECONDS
        while tx.admin_request is not None and not tx.status.final and loop.time() < deadline:
            await asyncio.sleep(REQUEST_POLL_SECONDS)
            tx = await self._required(gid, self._engine.store.get(gid))
        action = ACTION_NAMES[request.action]
        if tx.admin_request is not None and not tx.status.final:
            raise FailedPrecondition(
                f"transaction {gid}: {action} recorded, not yet taken by replica {tx.owner or owner}"
                f" (lease until {tx.lease_until or lease_until} ms); it will apply when that replica's"
                " calls in flight return, or when its lease lapses and another replica claims the"
                " transaction; nothing else to do (Query shows it)"
            )
        if request.action is AdminAction.FORCE_ABORT:
            dropped = await self._dropped(gid, request)
            if dropped:
                raise FailedPrecondition(f"transaction {gid}: {action} was not applied: {dropped}")
        return tx

    async def _dropped(self, gid: str, request: AdminRequest) -> str:
        """Why the taker dropped ``request`` ("" when it applied it), from the transaction's history."""
        history = await self._engine.store.history(gid)
        recorded = _admin_event_detail(ACTION_NAMES[request.action], request.reason)
        mine = [
            i
            for i, e in enumerate(history)
            if e.kind is EventKind.ADMIN and e.actor == request.actor and e.detail == recorded
        ]
        if not mine:
            return ""
        for event in history[mine[-1] + 1 :]:
            if event.kind is EventKind.ADMIN and event.detail.startswith(f"{ABORT_DROPPED}: "):
                why = event.detail.removeprefix(f"{ABORT_DROPPED}: ")
                return "" if why == ALREADY_ABORTING else why
        return ""

    def _now(self) -> int:
        return now_ms(self._engine.clock)

    @staticmethod
    async def _required(gid: str, pending: Awaitable[GlobalTx | None]) -> GlobalTx:
        tx = await pending
        if tx is None:
            raise NotFound(f"transaction {gid} not found")
        return tx


class _LeaseHeld(Exception):
    """A driver took the lease between the two steps of :meth:`AdminOps._act`."""


def _leased(tx: GlobalTx, now: int) -> bool:
    """True while a driver (this replica or another) holds a live lease on ``tx``."""
    return tx.owner is not None and tx.lease_until is not None and tx.lease_until >= now


def _not_leased(tx: GlobalTx, now: int) -> None:
    if _leased(tx, now):
        raise _LeaseHeld(tx.gid)


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
    return Event(tx.gid, now, EventKind.ADMIN, actor, _admin_event_detail(action, reason))


def _admin_event_detail(action: str, reason: str) -> str:
    return f"{action}: {reason}" if reason else action
