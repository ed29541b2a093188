"""What the order domain needs from the outside, as small protocols (implemented by gRPC/NATS adapters).

* :class:`Catalogue` - stock_svc's SKU catalogue (:mod:`order_svc.adapters.peers`).
* :class:`Payments` - pay_svc's external payments (:mod:`order_svc.adapters.peers`).
* :class:`Mesh` - the coordinator: the placing TCC, the points-pay TCC, the cancel MSG, queries
  (:mod:`order_svc.adapters.coordinator`).
* :class:`DeadlineTimer` - the pay deadline message (:mod:`order_svc.adapters.deadline_timer`).
* :class:`FlashQueue` - the flash work queue and restock broadcast (:mod:`order_svc.flash.queue`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from meshkit.errors import MeshError
from meshkit.store import Unit
from order_svc.orders.values import Channel, Item, PaymentTicket, PlacePlan, SkuInfo

LocalTx = Unit[None]
"""The cancel MSG's local transaction: a unit of work committed with the barrier row of branch ``00``."""


class TxState(StrEnum):
    """A global transaction's status as the coordinator reports it."""

    PREPARED = "PREPARED"
    SUBMITTED = "SUBMITTED"
    SUCCEEDED = "SUCCEEDED"
    ABORTING = "ABORTING"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class TxView:
    """A global transaction's status and reason."""

    gid: str
    state: TxState
    reason: str


class RolledBack(MeshError):
    """A transaction's try phase failed and the transaction was rolled back (or will be, by timeout).

    ``business`` tells a participant's business refusal (``ABORTED``: stock out, points short, order no
    longer payable) from an infrastructure failure during the tries.
    """

    def __init__(self, reason: str, *, business: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.business = business


@dataclass(frozen=True, slots=True)
class PointsPayment:
    """The points-channel payment of one order (TCC ``order`` + ``points``)."""

    gid: str
    order_id: str
    user_id: str
    amount_cents: int
    payment_id: str


@dataclass(frozen=True, slots=True)
class Release:
    """What the cancel chain gives back for one order (the MSG branches).

    ``payment_refund`` is the channel whose payment is refunded (``NONE`` when the order was not paid or
    paid nothing); ``finish`` adds the FinishRefund branch (REFUNDING -> REFUNDED).
    """

    gid: str
    order_id: str
    user_id: str
    items: tuple[Item, ...]
    points_used: int
    payment_refund: Channel
    payment_id: str | None
    amount_due_cents: int
    reason: str
    finish: bool
    placing_gid: str  # the PlaceOrder gid: out_trade_no of the points freeze the discount refund returns


class Catalogue(Protocol):
    """The SKU catalogue (stock_svc)."""

    async def get_skus(self, skus: Collection[str]) -> Mapping[str, SkuInfo]:
        """The known SKUs among ``skus`` (unknown ones are absent)."""
        ...


class Payments(Protocol):
    """External payments (pay_svc)."""

    async def create_payment(self, order_id: str, user_id: str, amount_cents: int) -> PaymentTicket:
        """Create (or, per order, find) the external payment of ``order_id``."""
        ...

    async def payment_live(self, payment_id: str) -> bool:
        """True while the payment may still pay its order (PENDING, or SUCCEEDED and not refunded)."""
        ...


class Mesh(Protocol):
    """The order's global transactions, run through the coordinator."""

    async def place(self, plan: PlacePlan) -> None:
        """Run the placing TCC (stock, points, order) to its end.

        Raises :class:`RolledBack` when a try failed (the transaction is rolled back); any other
        :class:`MeshError` means the outcome is unknown (ask :meth:`query`).
        """
        ...

    async def pay_with_points(self, payment: PointsPayment) -> None:
        """Run the points-pay TCC (order TryMarkPaid, points TryDeduct); errors as :meth:`place`."""
        ...

    async def cancel(self, release: Release, local: LocalTx) -> None:
        """Run the cancel MSG: ``local`` as the local transaction through the barrier, then the branches.

        ``local`` and the barrier row commit in one unit on the store runner. Whatever ``local`` raises
        is re-raised (nothing of it is committed and the message is dropped).
        """
        ...

    async def query(self, gid: str) -> TxView | None:
        """The transaction ``gid``, or None when the coordinator does not know it."""
        ...

    async def abort(self, gid: str, reason: str) -> TxView:
        """Roll back a PREPARED transaction (refused with FailedPrecondition once it left PREPARED)."""
        ...

    async def fence(self, gid: str, reason: str) -> TxView:
        """Make sure ``gid`` can never commit: prepare it (if unknown) and abort it; answers its view."""
        ...


class DeadlineTimer(Protocol):
    """Schedules the pay deadline message of an order."""

    async def schedule(self, order_id: str, at_ms: int) -> None:
        """Have the deadline of ``order_id`` fire at ``at_ms`` (best effort: the sweeper covers misses)."""
        ...


class FlashQueue(Protocol):
    """The flash sale's work queue (one job per ticket) and its restock broadcast."""

    @property
    def available(self) -> bool:
        """True while jobs can be queued."""
        ...

    async def publish_job(self, ticket: str) -> None:
        """Queue the job of ``ticket``; TransientError when the queue did not take it."""
        ...

    async def broadcast_restock(self, sale_id: str) -> None:
        """Tell every replica that ``sale_id`` has units again (best effort)."""
        ...
