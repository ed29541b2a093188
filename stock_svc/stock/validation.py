"""Input validation of every Stock RPC: plain values in, validated values out, no I/O.

Every check raises :class:`~meshkit.errors.InvalidArgument` naming the offending field (``sku``,
``items[2].quantity``, ``order_ids[0]`` ...) before anything is changed.

Decisions:

* A SKU, merchant id or order id is 1..64 printable characters without whitespace.
* A SKU appearing twice in one request is refused (``items[i].sku: duplicate of items[j]``) rather than
  merged: order_svc sends items already aggregated per SKU, so a duplicate is a caller bug, and merging
  could push a quantity past the limit unnoticed. ``GetSkus`` (a read) just answers each SKU once.
* The configured limits (``stock.max_items_per_request``, ``stock.max_quantity``) apply where stock is
  taken or put (TryReserve, PutSku, GetSkus). The second-phase and release ops (ConfirmReserve,
  CancelReserve, ReleaseStock) check the same shape against the hard limits of DESIGN.md section 3
  instead: a payload that TryReserve accepted must stay acceptable to its confirm and cancel even when
  an operator lowers a limit meanwhile, or the transaction would be stranded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshkit.errors import InvalidArgument
from stock_svc.config import HARD_MAX_ITEMS, HARD_MAX_QUANTITY

MAX_ID_LEN = 64
# Keeps quantity * price * items far inside int64 (10^4 * 10^12 * 10^4 < 9.2 * 10^18).
MAX_PRICE_CENTS = 10**12


@dataclass(frozen=True, slots=True)
class Limits:
    """How many items and how many units one request may carry."""

    max_items: int
    max_quantity: int


HARD_LIMITS = Limits(max_items=HARD_MAX_ITEMS, max_quantity=HARD_MAX_QUANTITY)


@dataclass(frozen=True, slots=True)
class Item:
    """A quantity of one SKU (validated: known shape, not necessarily a known SKU)."""

    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PutSkuInput:
    """A validated PutSku request."""

    sku: str
    merchant_id: str
    price_cents: int
    quantity: int
    request_id: str


def check_id(field: str, value: str, limit: int = MAX_ID_LEN) -> str:
    """``value`` when it is 1..``limit`` printable characters without whitespace."""
    if not value:
        raise InvalidArgument(field, "missing")
    if len(value) > limit:
        raise InvalidArgument(field, f"longer than {limit} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidArgument(field, "must be printable characters without whitespace")
    return value


def check_sku(field: str, value: str) -> str:
    """A SKU: 1..64 printable characters without whitespace."""
    return check_id(field, value)


def check_quantity(field: str, value: int, limit: int, minimum: int = 1) -> int:
    """``value`` when it lies in ``minimum..limit``."""
    if not minimum <= value <= limit:
        raise InvalidArgument(field, f"must be {minimum}..{limit}, got {value}")
    return value


def check_items(items: Sequence[tuple[str, int]], limits: Limits, field: str = "items") -> list[Item]:
    """1..``limits.max_items`` items of distinct SKUs with quantities 1..``limits.max_quantity``."""
    if not items:
        raise InvalidArgument(field, "at least one item is required")
    if len(items) > limits.max_items:
        raise InvalidArgument(field, f"at most {limits.max_items} items, got {len(items)}")
    seen: dict[str, int] = {}
    out: list[Item] = []
    for i, (sku, quantity) in enumerate(items):
        check_sku(f"{field}[{i}].sku", sku)
        if sku in seen:
            raise InvalidArgument(f"{field}[{i}].sku", f"duplicate of {field}[{seen[sku]}] ({sku})")
        seen[sku] = i
        check_quantity(f"{field}[{i}].quantity", quantity, limits.max_quantity)
        out.append(Item(sku, quantity))
    return out


def check_order_ids(order_ids: Sequence[str], limit: int, field: str = "order_ids") -> list[str]:
    """At most ``limit`` order ids (may be none), each a valid id."""
    if len(order_ids) > limit:
        raise InvalidArgument(field, f"at most {limit} order ids, got {len(order_ids)}")
    return [check_id(f"{field}[{i}]", oid) for i, oid in enumerate(order_ids)]


def check_put_sku(
    sku: str, merchant_id: str, price_cents: int, quantity: int, request_id: str, *, limits: Limits
) -> PutSkuInput:
    """A PutSku request: quantity 0..max (0 = create empty, or change the price only), a request id."""
    check_sku("sku", sku)
    check_id("merchant_id", merchant_id)
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise InvalidArgument("price_cents", f"must be 0..{MAX_PRICE_CENTS}, got {price_cents}")
    check_quantity("quantity", quantity, limits.max_quantity, minimum=0)
    check_id("request_id", request_id)
    return PutSkuInput(sku, merchant_id, price_cents, quantity, request_id)


def check_sku_list(skus: Sequence[str], limits: Limits, field: str = "skus") -> list[str]:
    """At most ``limits.max_items`` valid SKUs; duplicates are answered once (order kept)."""
    if len(skus) > limits.max_items:
        raise InvalidArgument(field, f"at most {limits.max_items} skus, got {len(skus)}")
    for i, sku in enumerate(skus):
        check_sku(f"{field}[{i}]", sku)
    return list(dict.fromkeys(skus))
