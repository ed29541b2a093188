"""The flash sale's pure rules: sales, buy requests, tickets, validation, the window, the quota snapshot.

No I/O here (see :mod:`order_svc.flash.service` for the whole design). Decisions taken here:

* A sale id is 1..64 characters of ``[A-Za-z0-9_.:-]`` (it goes into Redis hash tags and log lines).
* A sale's terms never change once created: PutFlashSale with the same terms answers the sale again,
  with other terms it is refused (ALREADY_EXISTS naming the differing fields).
* The window is ``[starts_at, ends_at)``; ``per_user_limit`` counts units a user may hold (0 = 1).
* FlashBuy's ``quantity`` 0 means 1 (proto3's unset value); it may not exceed the sale's per-user limit.
* The ticket is derived from ``(sale_id, request_id)``, so a retried FlashBuy finds the same ticket
  and the placed order's ``request_id`` (the ticket) is the same on every attempt of the job.
* A ticket holds quota while it is ``pending`` or ``succeeded``; a ``failed`` one gave it back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from meshkit.errors import FailedPrecondition, InvalidArgument
from order_svc.placing.rules import MAX_ID_LEN, MAX_REQUEST_ID_LEN, MAX_UNIT_PRICE_CENTS, check_id

SALE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_SALE_QUANTITY = 1_000_000
MAX_PER_USER_LIMIT = 10_000
MAX_TICKET_LEN = 64
TICKET_PREFIX = "flash-"
TICKET_HASH_LEN = 40
ENTRY_SEPARATOR = "|"


class FlashState(StrEnum):
    """Where a ticket's order stands."""

    PENDING = "pending"  # the job is queued or running
    SUCCEEDED = "succeeded"  # the order exists
    FAILED = "failed"  # the order could not be placed; the quota and the user's units were given back

    @property
    def final(self) -> bool:
        """True once the ticket will never change state again."""
        return self is not FlashState.PENDING


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FlashSale:
    """A flash sale: ``quantity`` units of ``sku`` at ``price_cents`` within ``[starts_at, ends_at)``."""

    sale_id: str
    sku: str
    merchant_id: str
    price_cents: int
    quantity: int
    per_user_limit: int
    starts_at_ms: int
    ends_at_ms: int
    created_at_ms: int = 0

    @property
    def window(self) -> str:
        """The window as text: ``[start, end)`` in UTC."""
        return f"[{_iso(self.starts_at_ms)}, {_iso(self.ends_at_ms)})"

    def differences(self, other: FlashSale) -> list[str]:
        """The (request field) names of the terms in which ``other`` differs (creation time aside)."""
        terms = {
            "sku": "sku",
            "merchant_id": "merchant_id",
            "price_cents": "price_cents",
            "quantity": "quantity",
            "per_user_limit": "per_user_limit",
            "starts_at_ms": "starts_at",
            "ends_at_ms": "ends_at",
        }
        return [name for attr, name in terms.items() if getattr(self, attr) != getattr(other, attr)]

    def check_open(self, now_ms: int) -> None:
        """FailedPrecondition naming the window unless ``now_ms`` is inside it."""
        if now_ms < self.starts_at_ms:
            raise FailedPrecondition(f"flash sale {self.sale_id} has not started: window {self.window}")
        if now_ms >= self.ends_at_ms:
            raise FailedPrecondition(f"flash sale {self.sale_id} has ended: window {self.window}")


def check_sale_id(sale_id: str, field: str = "sale_id") -> str:
    """A sale id: 1..64 of ``[A-Za-z0-9_.:-]``."""
    if not sale_id:
        raise InvalidArgument(field, "missing")
    if not SALE_ID_RE.fullmatch(sale_id):
        raise InvalidArgument(field, "must be 1..64 characters of A-Z a-z 0-9 _ . : -")
    return sale_id


def check_sale(sale: FlashSale) -> FlashSale:
    """A PutFlashSale request checked field by field (InvalidArgument naming the field), normalised."""
    check_sale_id(sale.sale_id)
    check_id("sku", sale.sku)
    check_id("merchant_id", sale.merchant_id)
    if not 0 <= sale.price_cents <= MAX_UNIT_PRICE_CENTS:
        raise InvalidArgument("price_cents", f"must be 0..{MAX_UNIT_PRICE_CENTS}, got {sale.price_cents}")
    if not 1 <= sale.quantity <= MAX_SALE_QUANTITY:
        raise InvalidArgument("quantity", f"must be 1..{MAX_SALE_QUANTITY}, got {sale.quantity}")
    if sale.starts_at_ms <= 0:
        raise InvalidArgument("starts_at", "missing")
    if sale.ends_at_ms <= 0:
        raise InvalidArgument("ends_at", "missing")
    if sale.ends_at_ms <= sale.starts_at_ms:
        raise InvalidArgument("ends_at", "must be after starts_at")
    limit = sale.per_user_limit or 1
    if not 1 <= limit <= MAX_PER_USER_LIMIT:
        raise InvalidArgument(
            "per_user_limit", f"must be 0..{MAX_PER_USER_LIMIT} (0 = 1), got {sale.per_user_limit}"
        )
    return replace(sale, per_user_limit=limit)


@dataclass(frozen=True, slots=True)
class BuyRequest:
    """What FlashBuy was asked."""

    request_id: str
    user_id: str
    sale_id: str
    sku: str
    quantity: int


def check_buy(request: BuyRequest) -> BuyRequest:
    """A FlashBuy request checked field by field (InvalidArgument naming the field); quantity 0 -> 1."""
    check_id("request_id", request.request_id, MAX_REQUEST_ID_LEN)
    check_id("user_id", request.user_id, MAX_ID_LEN)
    check_sale_id(request.sale_id)
    check_id("sku", request.sku)
    quantity = request.quantity or 1
    if not 1 <= quantity <= MAX_PER_USER_LIMIT:
        raise InvalidArgument("quantity", f"must be 0..{MAX_PER_USER_LIMIT} (0 = 1), got {request.quantity}")
    return replace(request, quantity=quantity)


def check_buy_against(request: BuyRequest, sale: FlashSale) -> None:
    """The request must name the sale's SKU and ask for at most the per-user limit."""
    if request.sku != sale.sku:
        raise InvalidArgument("sku", f"flash sale {sale.sale_id} sells {sale.sku!r}, not {request.sku!r}")
    if request.quantity > sale.per_user_limit:
        raise InvalidArgument(
            "quantity", f"at most {sale.per_user_limit} per user in flash sale {sale.sale_id}"
        )


def ticket_of(sale_id: str, request_id: str) -> str:
    """The ticket of FlashBuy ``request_id`` in ``sale_id`` (the same on every retry)."""
    digest = hashlib.sha256(f"{sale_id}\n{request_id}".encode()).hexdigest()
    return TICKET_PREFIX + digest[:TICKET_HASH_LEN]


def check_ticket(ticket: str) -> str:
    """A ticket id as GetFlashResult takes it."""
    return check_id("ticket", ticket, MAX_TICKET_LEN)


@dataclass(frozen=True, slots=True)
class FlashTicket:
    """One successful FlashBuy and the state of its order."""

    ticket: str
    request_id: str
    sale_id: str
    user_id: str
    sku: str
    merchant_id: str
    quantity: int
    unit_price_cents: int
    state: FlashState
    order_id: str | None
    reason: str
    attempts: int
    queued: bool
    returned: bool
    created_at_ms: int
    updated_at_ms: int

    @property
    def holds_quota(self) -> bool:
        """True while the ticket counts against the sale's quantity (pending or succeeded)."""
        return self.state is not FlashState.FAILED

    @property
    def give_back_owed(self) -> bool:
        """True for a failed ticket whose units are not yet back in Redis."""
        return self.state is FlashState.FAILED and not self.returned

    def entry(self) -> TicketEntry:
        """The ticket as the Redis copy of its sale records it."""
        return TicketEntry(held=self.holds_quota, quantity=self.quantity, user_id=self.user_id)


def new_ticket(sale: FlashSale, request: BuyRequest, ticket: str, now_ms: int) -> FlashTicket:
    """The pending ticket of a FlashBuy that won its units."""
    return FlashTicket(
        ticket=ticket,
        request_id=request.request_id,
        sale_id=sale.sale_id,
        user_id=request.user_id,
        sku=sale.sku,
        merchant_id=sale.merchant_id,
        quantity=request.quantity,
        unit_price_cents=sale.price_cents,
        state=FlashState.PENDING,
        order_id=None,
        reason="",
        attempts=0,
        queued=False,
        returned=False,
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
    )


@dataclass(frozen=True, slots=True)
class TicketEntry:
    """A ticket in the Redis copy of its sale: whether it still holds its units, how many, whose."""

    held: bool
    quantity: int
    user_id: str

    def encode(self) -> str:
        """``<1|0>|<quantity>|<user_id>`` (the user id last: it may contain the separator)."""
        return ENTRY_SEPARATOR.join(("1" if self.held else "0", str(self.quantity), self.user_id))

    @classmethod
    def parse(cls, text: str) -> TicketEntry:
        """The entry encoded by :meth:`encode`; ValueError when malformed."""
        held, quantity, user_id = text.split(ENTRY_SEPARATOR, 2)
        if held not in ("0", "1"):
            raise ValueError(f"malformed ticket entry {text!r}")
        return cls(held=held == "1", quantity=int(quantity), user_id=user_id)

    def matches(self, request: BuyRequest) -> bool:
        """True when ``request`` is a retry of the FlashBuy that made this entry."""
        return self.user_id == request.user_id and self.quantity == request.quantity


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    """What the Redis copy of a sale is loaded with, computed from the database."""

    remaining: int
    users: dict[str, int]
    entries: dict[str, TicketEntry]


def snapshot(sale: FlashSale, tickets: Iterable[FlashTicket]) -> QuotaSnapshot:
    """The sale's quota left, units held per user and every ticket, from its stored tickets."""
    users: dict[str, int] = {}
    entries: dict[str, TicketEntry] = {}
    held = 0
    for ticket in tickets:
        entries[ticket.ticket] = ticket.entry()
        if ticket.holds_quota:
            held += ticket.quantity
            users[ticket.user_id] = users.get(ticket.user_id, 0) + ticket.quantity
    return QuotaSnapshot(remaining=max(0, sale.quantity - held), users=users, entries=entries)


@dataclass(frozen=True, slots=True)
class SaleView:
    """A sale with its live counters (GetFlashSale)."""

    sale: FlashSale
    remaining: int
    pending: int
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class BuyAnswer:
    """What FlashBuy answers."""

    ticket: str
    state: FlashState
