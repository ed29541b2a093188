"""The points rules: grants, TCC holds (freeze for orders, deduct for payments), refunds, the audit.

Every change is one unit of work on the process's :class:`~meshkit.store.StoreRunner` (a synchronous
function of a :class:`~meshkit.store.Conn`, one transaction) that writes the points log row and the
account change together; branch operations run inside the barrier's unit (:meth:`RunnerBarrier.run`),
so a duplicate, an empty rollback or a late try is decided in the same commit as the business change.

Decisions (documented here because callers rely on them):

* **Idempotency**: one log row per ``(out_trade_no, type)``. Repeating a Grant/Refund with the same
  ``out_trade_no``, user and amount changes nothing and answers the account as it is now; the same key
  with another user or amount is refused (``AlreadyExists``; a ``BranchFailure`` for RefundBranch).
* **Holds**: a try with an ``out_trade_no`` whose hold of that type is trying or confirmed under another
  gid is refused (``BranchFailure``: no double payment of one order). A *cancelled* hold is re-armed by
  the next try (a payment attempt that rolled back may be retried with a new gid).
* **Confirm/Cancel** use the amount and user stored by the try, not the request's. A confirm with no
  hold yet answers ``FAILED_PRECONDITION`` (not yet: retried); a confirm of a hold another gid owns, or
  that was cancelled, can never succeed: ``ABORTED``. So can a cancel whose try ran (the barrier says so)
  but left no hold of this kind, or whose hold this gid confirmed: ``ABORTED`` too, never a silent
  success. All are logged at WARNING with the gid. Frozen points below a hold mean the data is
  inconsistent: :class:`LedgerMismatch` (``INTERNAL``, retried by the coordinator and listed as stuck).
* **Refunds give back a spending** (issue 15 item 3): every refund names the spending it returns
  (``spending_type`` freeze|deduct + ``spending_out_trade_no``: the hold row), which must be a
  *confirmed* hold of the same user; the refunds naming one spending never add up to more than it took
  (the spending row is locked first, so concurrent refunds of one spending see each other). The order's
  cancel chain names ``deduct <order>`` for ``<order>:payment`` and ``freeze <placing gid>`` for
  ``<order>:discount``. ``Refund`` answers ``FAILED_PRECONDITION`` naming the spending otherwise.
  ``RefundBranch`` answers ``FAILED_PRECONDITION`` (``BranchOngoing``: retried) only while the spending
  is still trying, and ``ABORTED`` where it can never succeed (no such spending, cancelled, another
  user's, or over what it took).
* **Admin refunds never go around an order**: ``Refund`` (the operator's RPC) refuses a spending made by
  one of the order service's transactions (gid prefix in :data:`ORDER_GID_PREFIXES`: placing
  ``order-...``, points payment ``pay-...``): an order's points come back only through ``Order.Cancel``,
  whose cancel chain calls ``RefundBranch`` and moves the order to REFUNDED. ``Refund`` is for
  spendings of other transactions (corrections). ``RefundBranch`` of an order's spending takes only the
  cancel chain's own key (``<order>:payment`` for ``deduct <order>``, ``<order>:discount`` for a
  freeze), else ``ABORTED``.
* **Old cancel chains** (submitted before migration points_0002) send RefundBranch without a spending:
  ``<order>:payment`` gives back ``deduct <order>``; ``<order>:discount`` (its freeze is keyed by the
  placing gid, which the key does not tell) is held to the old per-user cap, logged at WARNING.
  ``Refund`` (the operator's RPC) stays strict.
* **Limits**: Grant, Refund and tries take at most ``points.max_amount``; confirm, cancel and
  RefundBranch (ops that must succeed) only the hard ceiling 10^12, so a lowered limit strands nothing.
* **GetAccount**: ``NOT_FOUND`` when the user has no account (accounts are created by the first Grant);
  an account at zero still exists and is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from meshkit.barrier import RunnerBarrier
from meshkit.errors import (
    AlreadyExists,
    BranchFailure,
    BranchOngoing,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TransientError,
)
from meshkit.runtime.clock import Clock, now_ms
from meshkit.store import Conn, StoreRunner
from meshkit.tx.context import OP_KEY, Op, TxContext
from points_svc.config import AMOUNT_CEILING, PointsSection
from points_svc.ledger import queries as q
from points_svc.ledger.queries import LogRow, Origin, PointsRepo
from points_svc.ledger.validation import (
    check_movement,
    check_refund,
    check_user_id,
    is_legacy_discount,
    legacy_spending,
)
from points_svc.ledger.values import Account, AuditReport, EntryState, EntryType, Movement, RefundMove

log = logging.getLogger(__name__)

Business = Callable[[Conn], str]

NOTE_APPLIED = "applied"
NOTE_ALREADY = "already done"

# The gids of the order service's transactions that spend points (order_svc.placing.place_gid and
# order_svc.paying.pay_gid): their spendings are refunded only through the order's cancel chain.
ORDER_GID_PREFIXES: tuple[str, ...] = ("order-", "pay-")
# The cancel chain's refund keys: ``<order>:payment`` (of ``deduct <order>``), ``<order>:discount``.
PAYMENT_SUFFIX = ":payment"
DISCOUNT_SUFFIX = ":discount"


class LedgerMismatch(TransientError):
    """A confirm/cancel found no hold matching its try: inconsistent data, never a silent success."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="INTERNAL")
        log.error("points ledger mismatch: %s", message)


class Points:
    """The points service's rules over its store runner (hot path), barrier, audit repository and clock."""

    def __init__(
        self,
        runner: StoreRunner,
        barrier: RunnerBarrier,
        repo: PointsRepo,
        clock: Clock,
        settings: PointsSection,
    ) -> None:
        self._runner = runner
        self._barrier = barrier
        self._repo = repo
        self._clock = clock
        self._settings = settings

    # ------------------------------------------------------------------ public RPCs

    async def grant(self, user_id: str, amount: int, out_trade_no: str) -> Account:
        """Credit ``amount`` once per ``out_trade_no`` (creating the account); answers the account."""
        move = self._movement(user_id, amount, out_trade_no)
        now = now_ms(self._clock)

        def grant_unit(conn: Conn) -> Account:
            if q.insert_entry(conn, EntryType.GRANT, EntryState.DONE, move, origin=Origin(), now=now):
                q.credit(conn, move.user_id, move.amount, now)
            else:
                existing = q.entry(conn, move.out_trade_no, EntryType.GRANT)
                if existing is None or not existing.entry.same_movement(move):
                    raise AlreadyExists(_key_taken(move, existing))
            return _existing_account(conn, move.user_id)

        return await self._runner.run(grant_unit)

    async def account(self, user_id: str) -> Account:
        """The user's account; ``NotFound`` when the user has none."""
        check_user_id(user_id)
        return await self._runner.read(lambda conn: _existing_account(conn, user_id))

    async def refund(
        self, user_id: str, amount: int, out_trade_no: str, spending: tuple[str, str]
    ) -> Account:
        """Give ``amount`` of a non-order spending back once per ``out_trade_no``; answers the account.

        ``spending`` is ``(spending_out_trade_no, spending_type)``; see the module docstring.
        """
        refund = check_refund(user_id, amount, out_trade_no, spending, self._settings.max_amount)
        now = now_ms(self._clock)

        def refund_unit(conn: Conn) -> Account:
            _refund_in(conn, refund, Origin(), now, branch=False)
            return _existing_account(conn, refund.move.user_id)

        return await self._runner.run(refund_unit)

    async def audit(self) -> AuditReport:
        """The totals of the points invariant and the spending/refund entries, from one snapshot."""
        async with self._repo.snapshot() as conn:
            return await self._repo.audit(conn)

    # ------------------------------------------------------------------ branch RPCs

    async def try_hold(
        self, kind: EntryType, ctx: TxContext, user_id: str, amount: int, out_trade_no: str
    ) -> str:
        """TCC try: balance -= amount, frozen += amount; ``BranchFailure`` when the balance is short."""
        _expect(ctx, Op.TRY)
        move = self._movement(user_id, amount, out_trade_no)
        origin = Origin(ctx.gid, ctx.branch_id)
        now = now_ms(self._clock)

        def business(conn: Conn) -> str:
            _open_hold(conn, kind, move, origin, now)
            if not q.hold(conn, move.user_id, move.amount, now):
                raise BranchFailure(
                    f"insufficient points: user {move.user_id} cannot {kind.value} {move.amount}"
                )
            return NOTE_APPLIED

        return await self._through_barrier(ctx, business)

    async def confirm_hold(
        self, kind: EntryType, ctx: TxContext, user_id: str, amount: int, out_trade_no: str
    ) -> str:
        """TCC confirm: the held points are spent (frozen -= amount, the log row becomes confirmed)."""
        _expect(ctx, Op.CONFIRM)
        move = _settling_movement(user_id, amount, out_trade_no)
        now = now_ms(self._clock)

        def business(conn: Conn) -> str:
            found = q.entry(conn, move.out_trade_no, kind, lock=True)
            row = _confirmable(kind, move, ctx, found)
            if row.entry.state is EntryState.CONFIRMED:
                return NOTE_ALREADY
            _settle(conn, row, EntryState.CONFIRMED, now)
            return NOTE_APPLIED

        return await self._through_barrier(ctx, business)

    async def cancel_hold(
        self, kind: EntryType, ctx: TxContext, user_id: str, amount: int, out_trade_no: str
    ) -> str:
        """TCC cancel: the held points go back (frozen -= amount, balance += amount).

        An empty rollback (no try ran) succeeds whatever the payload holds, so the request is only
        validated when there is a hold to give back: a try refused for bad input can still be cancelled.
        """
        _expect(ctx, Op.CANCEL)
        now = now_ms(self._clock)

        def business(conn: Conn) -> str:
            move = _settling_movement(user_id, amount, out_trade_no)
            found = q.entry(conn, move.out_trade_no, kind, lock=True)
            row = _cancellable(kind, move, ctx, found)
            if row.entry.gid != ctx.gid or row.entry.state is EntryState.CANCELLED:
                return NOTE_ALREADY  # this gid's hold was cancelled before (and maybe re-armed since)
            _settle(conn, row, EntryState.CANCELLED, now)
            return NOTE_APPLIED

        return await self._through_barrier(ctx, business)

    async def refund_branch(
        self, ctx: TxContext, user_id: str, amount: int, out_trade_no: str, spending: tuple[str, str]
    ) -> str:
        """The MSG branch form of :meth:`refund` (op ``action``: the cancel chain), through the barrier."""
        _expect(ctx, Op.ACTION)
        origin = Origin(ctx.gid, ctx.branch_id)
        if spending == ("", ""):  # a cancel chain submitted before the spending fields existed
            derived = legacy_spending(out_trade_no)
            if derived is None and is_legacy_discount(out_trade_no):
                return await self._legacy_capped_refund(ctx, user_id, amount, out_trade_no)
            spending = derived or spending
        refund = check_refund(user_id, amount, out_trade_no, spending, AMOUNT_CEILING)
        now = now_ms(self._clock)

        def business(conn: Conn) -> str:
            applied = _refund_in(conn, refund, origin, now, branch=True)
            return NOTE_APPLIED if applied else NOTE_ALREADY

        return await self._through_barrier(ctx, business)

    async def _legacy_capped_refund(
        self, ctx: TxContext, user_id: str, amount: int, out_trade_no: str
    ) -> str:
        """An old ``<order>:discount`` refund naming no spending: the pre-points_0002 per-user cap.

        The freeze it gives back is keyed by the placing gid, which the request does not carry, so the
        refund is held only to the user's total: refunds never exceed the confirmed spending.
        """
        move = _settling_movement(user_id, amount, out_trade_no)
        log.warning(
            "refund %s names no spending (submitted before points_0002): capped per user %s",
            out_trade_no,
            move.user_id,
            extra={"gid": ctx.gid},
        )
        origin = Origin(ctx.gid, ctx.branch_id)
        now = now_ms(self._clock)

        def business(conn: Conn) -> str:
            if not q.insert_entry(conn, EntryType.REFUND, EntryState.DONE, move, origin=origin, now=now):
                existing = q.entry(conn, move.out_trade_no, EntryType.REFUND)
                if existing is None or not existing.entry.same_movement(move):
                    raise BranchFailure(_key_taken(move, existing))
                return NOTE_ALREADY
            # The credit locks the account row first, so refunds of one user see each other's rows here.
            q.credit(conn, move.user_id, move.amount, now)
            spent, refunded = q.spent_and_refunded(conn, move.user_id)
            if refunded > spent:
                raise BranchOngoing(
                    f"refund {move.out_trade_no} of {move.amount}: user {move.user_id} would get back "
                    f"more than spent (spent {spent}, refunded {refunded - move.amount} before)"
                )
            return NOTE_APPLIED

        return await self._through_barrier(ctx, business)

    # ------------------------------------------------------------------ helpers

    def _movement(self, user_id: str, amount: int, out_trade_no: str) -> Movement:
        return check_movement(user_id, amount, out_trade_no, self._settings.max_amount)

    async def _through_barrier(self, ctx: TxContext, business: Business) -> str:
        result = await self._barrier.run(ctx, business)
        return result.value if result.applied and result.value is not None else result.outcome.value


# -------------------------------------------------------------------------- units of work (on a Conn)


def _existing_account(conn: Conn, user_id: str) -> Account:
    found = q.account(conn, user_id)
    if found is None:
        raise NotFound(f"user {user_id} has no points account")
    return found


def _open_hold(conn: Conn, kind: EntryType, move: Movement, origin: Origin, now: int) -> None:
    """Write the trying log row, or re-arm a cancelled one; refuse a live hold of another try."""
    if q.insert_entry(conn, kind, EntryState.TRYING, move, origin=origin, now=now):
        return
    row = q.entry(conn, move.out_trade_no, kind, lock=True)
    if row is None:  # the insert was ignored, so only a concurrent delete could get here
        raise BranchFailure(f"out_trade_no {move.out_trade_no}: {kind.value} vanished; try again")
    if row.entry.state is EntryState.CANCELLED and q.rearm_entry(conn, row.id, move, origin, now):
        return
    raise BranchFailure(
        f"out_trade_no {move.out_trade_no}: {kind.value} already {row.entry.state.value} "
        f"in gid {row.entry.gid}"
    )


def _settle(conn: Conn, row: LogRow, state: EntryState, now: int) -> None:
    """End a trying hold: spend it (confirmed) or give it back (cancelled)."""
    entry = row.entry
    if state is EntryState.CONFIRMED:
        done = q.spend_held(conn, entry.user_id, entry.amount, now)
    else:
        done = q.release_held(conn, entry.user_id, entry.amount, now)
    if not done:
        raise LedgerMismatch(
            f"user {entry.user_id}: frozen points below the {entry.amount} held by {entry.out_trade_no}"
        )
    if not q.move_entry(conn, row.id, EntryState.TRYING, state, now):
        raise LedgerMismatch(f"{entry.type.value} {entry.out_trade_no}: no longer trying")


def _refund_in(conn: Conn, refund: RefundMove, origin: Origin, now: int, *, branch: bool) -> bool:
    """Refund inside ``conn``'s transaction; True when applied, False for an idempotent repeat."""
    move, spending = refund.move, refund.spending
    # Locked first: every refund of this spending waits here, so the sum below sees the others.
    found = q.entry(conn, spending.out_trade_no, spending.type, lock=True)
    _check_spending(refund, found, origin, branch=branch)
    inserted = q.insert_entry(
        conn, EntryType.REFUND, EntryState.DONE, move, origin=origin, now=now, spending=spending
    )
    if not inserted:
        existing = q.entry(conn, move.out_trade_no, EntryType.REFUND)
        if existing is None or not _same_refund(existing, refund):
            message = _key_taken(move, existing)
            raise BranchFailure(message) if branch else AlreadyExists(message)
        return False
    q.credit(conn, move.user_id, move.amount, now)
    refunded = q.refunded_of(conn, spending)
    spent = found.entry.amount if found is not None else 0
    if refunded > spent:
        message = (
            f"refund {move.out_trade_no} of {move.amount}: spending {spending} took {spent}, "
            f"{refunded - move.amount} already refunded"
        )
        raise BranchFailure(message) if branch else FailedPrecondition(message)
    return True


def _check_spending(refund: RefundMove, found: LogRow | None, origin: Origin, *, branch: bool) -> None:
    """Refuse a refund whose spending is not a confirmed hold of the same user it may give back."""
    spending, move = refund.spending, refund.move
    prefix = f"refund {move.out_trade_no}: spending {spending}"
    if found is None:
        message = f"{prefix} not found"
    elif found.entry.user_id != move.user_id:
        message = f"{prefix} belongs to user {found.entry.user_id}, not {move.user_id}"
    elif found.entry.state is EntryState.TRYING:
        message = f"{prefix} is not confirmed yet"
        if branch:  # its transaction may still confirm it: "not yet", retried
            log.warning("refund before its spending is confirmed: %s", message, extra={"gid": origin.gid})
            raise BranchOngoing(message)
    elif found.entry.state is not EntryState.CONFIRMED:
        message = f"{prefix} is {found.entry.state.value}: nothing was spent"
    elif found.entry.gid.startswith(ORDER_GID_PREFIXES) and not (branch and _order_key(refund)):
        message = (
            f"{prefix} belongs to an order (gid {found.entry.gid}): "
            "an order's points are refunded only by Order.Cancel"
            + (" (<order>:payment of deduct <order>, <order>:discount of a freeze)" if branch else "")
        )
    else:
        return
    if branch:
        log.warning("refund that can never succeed: %s", message, extra={"gid": origin.gid})
        raise BranchFailure(message)
    raise FailedPrecondition(message)


def _order_key(refund: RefundMove) -> bool:
    """True for the cancel chain's own key of an order's spending (order_svc.mesh)."""
    spending, key = refund.spending, refund.move.out_trade_no
    if spending.type is EntryType.DEDUCT:
        return key == f"{spending.out_trade_no}{PAYMENT_SUFFIX}"
    return key.endswith(DISCOUNT_SUFFIX)  # one PlaceOrder freeze covers each of its orders' discounts


def _same_refund(existing: LogRow, refund: RefundMove) -> bool:
    return existing.entry.same_movement(refund.move) and existing.entry.spending == refund.spending


def _settling_movement(user_id: str, amount: int, out_trade_no: str) -> Movement:
    """Validate an op that must succeed (confirm, cancel, refund branch) against the hard ceiling.

    Not the configured limit: lowering ``points.max_amount`` must never strand a transaction in flight.
    """
    return check_movement(user_id, amount, out_trade_no, AMOUNT_CEILING)


def _expect(ctx: TxContext, op: Op) -> None:
    if ctx.op is not op:
        raise InvalidArgument(OP_KEY, f"this RPC is the {op.value} operation, called as {ctx.op.value}")


def _key_taken(move: Movement, existing: LogRow | None) -> str:
    if existing is None:
        return f"out_trade_no {move.out_trade_no}: already used"
    entry = existing.entry
    return (
        f"out_trade_no {move.out_trade_no}: already used for a {entry.type.value} of {entry.amount} "
        f"to user {entry.user_id}"
    )


def _confirmable(kind: EntryType, move: Movement, ctx: TxContext, row: LogRow | None) -> LogRow:
    """A confirm needs this gid's hold: none yet is "not yet", another gid's or a cancelled one never."""
    if row is None:
        message = _no_hold(kind, move, ctx, row)
        log.warning("confirm before its try: %s", message, extra={"gid": ctx.gid})
        raise BranchOngoing(message)
    if row.entry.gid != ctx.gid or row.entry.state is EntryState.CANCELLED:
        message = _no_hold(kind, move, ctx, row)
        log.warning("confirm that can never succeed: %s", message, extra={"gid": ctx.gid})
        raise BranchFailure(message)
    return row


def _cancellable(kind: EntryType, move: Movement, ctx: TxContext, row: LogRow | None) -> LogRow:
    """A cancel after a try needs a hold; none, or this gid's hold confirmed, can never be cancelled.

    No hold behind a try the barrier saw means another method's try ran under this gid and branch.
    Either way the answer is ``ABORTED``, not an ``INTERNAL`` the coordinator would retry forever.
    """
    if row is None or (row.entry.gid == ctx.gid and row.entry.state is EntryState.CONFIRMED):
        message = _no_hold(kind, move, ctx, row)
        log.warning("cancel that can never succeed: %s", message, extra={"gid": ctx.gid})
        raise BranchFailure(message)
    return row


def _no_hold(kind: EntryType, move: Movement, ctx: TxContext, row: LogRow | None) -> str:
    found = "none" if row is None else f"{row.entry.state.value} in gid {row.entry.gid}"
    return f"{kind.value} {move.out_trade_no}: no trying hold of gid {ctx.gid} (found {found})"
