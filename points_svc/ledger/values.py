"""The points vocabulary: log entry types and states, and the values the domain hands out.

Every movement of points is one row of the points log, unique per ``(out_trade_no, type)``:

==========  ==========================================  ===================================
type        effect on the account                        states
==========  ==========================================  ===================================
grant       balance += a                                 done
freeze      try: balance -= a, frozen += a               trying -> confirmed | cancelled
            confirm: frozen -= a (spent)
            cancel: frozen -= a, balance += a
deduct      the same mechanics as freeze (payment)       trying -> confirmed | cancelled
refund      balance += a                                 done
==========  ==========================================  ===================================

A refund names the spending it gives back (``spending_type``/``spending_out_trade_no``: a confirmed
freeze or deduct of the same user); the refunds of one spending never add up to more than it took.

The audit totals are sums over the log, never separate counters: issued = grants, spent = confirmed
freezes and deducts, refunded = refunds. So ``sum(balance) + sum(frozen) + spent - refunded = issued``
holds whenever each movement commits its log row and its account change together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EntryType(StrEnum):
    """The ``type`` of a points log row."""

    GRANT = "grant"
    FREEZE = "freeze"
    DEDUCT = "deduct"
    REFUND = "refund"


class EntryState(StrEnum):
    """The ``state`` of a points log row: TCC entries move trying -> confirmed | cancelled."""

    TRYING = "trying"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    DONE = "done"


# The TCC entry types: points held by a try and spent by a confirm.
HOLD_TYPES: tuple[EntryType, ...] = (EntryType.FREEZE, EntryType.DEDUCT)
# What the audit lists (spending and refunds, not grants).
AUDITED_TYPES: tuple[EntryType, ...] = (EntryType.FREEZE, EntryType.DEDUCT, EntryType.REFUND)


@dataclass(frozen=True, slots=True)
class Account:
    """A user's points: ``balance`` spendable, ``frozen`` held by tries not yet confirmed or cancelled."""

    user_id: str
    balance: int
    frozen: int


@dataclass(frozen=True, slots=True)
class Movement:
    """A validated request to move ``amount`` points of ``user_id``, keyed by ``out_trade_no``."""

    user_id: str
    amount: int
    out_trade_no: str


@dataclass(frozen=True, slots=True)
class SpendingRef:
    """Which spending a refund gives back: the hold log row ``(out_trade_no, type)``."""

    type: EntryType
    out_trade_no: str

    def __str__(self) -> str:
        return f"{self.type.value} {self.out_trade_no}"


@dataclass(frozen=True, slots=True)
class RefundMove:
    """A validated refund: the movement (keyed by the refund's own ``out_trade_no``) and its spending."""

    move: Movement
    spending: SpendingRef


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One row of the points log as the audit shows it."""

    out_trade_no: str
    type: EntryType
    user_id: str
    amount: int
    state: EntryState
    gid: str = ""
    spending: SpendingRef | None = None  # refunds only

    def same_movement(self, movement: Movement) -> bool:
        """True when this entry moved the same user and amount as ``movement`` (an idempotent repeat)."""
        return self.user_id == movement.user_id and self.amount == movement.amount


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The points totals for the invariant ``sum_balance + sum_frozen + spent - refunded = issued``."""

    issued: int
    spent: int
    refunded: int
    sum_balance: int
    sum_frozen: int
    negative_accounts: int
    entries: tuple[LogEntry, ...] = ()

    @property
    def balanced(self) -> bool:
        """True when the points invariant holds and no account is negative."""
        held = self.sum_balance + self.sum_frozen + self.spent - self.refunded
        return held == self.issued and self.negative_accounts == 0
