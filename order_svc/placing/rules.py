"""PlaceOrder's pure rules: input validation, catalogue check, split by merchant, points split, the gid.

No I/O here: :mod:`order_svc.service` fetches the catalogue and runs the transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from meshkit.errors import InvalidArgument
from order_svc.orders.values import Item, NewOrder, PlacePlan, PlaceRequest, SkuInfo

MAX_REQUEST_ID_LEN = 128
MAX_ID_LEN = 64
# Keeps every total far inside int64 even with the largest configurable item count and quantity.
MAX_UNIT_PRICE_CENTS = 10_000_000_000
GID_PREFIX = "order-"


def check_id(field: str, value: str, limit: int = MAX_ID_LEN) -> str:
    """``value`` when it is 1..limit printable characters without whitespace, else InvalidArgument."""
    if not value:
        raise InvalidArgument(field, "missing")
    if len(value) > limit:
        raise InvalidArgument(field, f"longer than {limit} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidArgument(field, "must be printable characters without whitespace")
    return value


def validate_request(request: PlaceRequest, *, max_items: int, max_quantity: int) -> None:
    """Check the shape of a PlaceOrder request (limits, ids, numbers); raise InvalidArgument naming the field.

    Duplicate SKUs are refused: each SKU appears on one line of one request.
    """
    check_id("request_id", request.request_id, MAX_REQUEST_ID_LEN)
    check_id("user_id", request.user_id)
    if not request.items:
        raise InvalidArgument("items", "at least one item is required")
    if len(request.items) > max_items:
        raise InvalidArgument("items", f"at most {max_items} items per order, got {len(request.items)}")
    first_line: dict[str, int] = {}
    for index, item in enumerate(request.items):
        _validate_item(index, item, max_quantity)
        if item.sku in first_line:
            raise InvalidArgument(
                f"items[{index}].sku", f"SKU {item.sku!r} already on items[{first_line[item.sku]}]"
            )
        first_line[item.sku] = index
    if request.points_to_use < 0:
        raise InvalidArgument("points_to_use", "must be >= 0")
    total = sum(item.line_cents for item in request.items)
    if request.points_to_use > total:
        raise InvalidArgument(
            "points_to_use", f"{request.points_to_use} exceeds the order total of {total} cents"
        )


def _validate_item(index: int, item: Item, max_quantity: int) -> None:
    prefix = f"items[{index}]"
    check_id(f"{prefix}.sku", item.sku)
    check_id(f"{prefix}.merchant_id", item.merchant_id)
    if not 1 <= item.quantity <= max_quantity:
        raise InvalidArgument(f"{prefix}.quantity", f"must be 1..{max_quantity}, got {item.quantity}")
    if not 0 <= item.unit_price_cents <= MAX_UNIT_PRICE_CENTS:
        raise InvalidArgument(
            f"{prefix}.unit_price_cents", f"must be 0..{MAX_UNIT_PRICE_CENTS}, got {item.unit_price_cents}"
        )


def check_catalogue(
    items: Sequence[Item], known: Mapping[str, SkuInfo], *, check_prices: bool = True
) -> None:
    """Every item must name a known SKU with its catalogue merchant and price; else InvalidArgument.

    ``check_prices=False`` accepts any unit price (a flash sale's order carries the sale's price).
    """
    for index, item in enumerate(items):
        info = known.get(item.sku)
        if info is None:
            raise InvalidArgument(f"items[{index}].sku", f"unknown SKU {item.sku!r}")
        if info.merchant_id != item.merchant_id:
            raise InvalidArgument(
                f"items[{index}].merchant_id",
                f"SKU {item.sku!r} belongs to merchant {info.merchant_id!r}, not {item.merchant_id!r}",
            )
        if check_prices and info.price_cents != item.unit_price_cents:
            raise InvalidArgument(
                f"items[{index}].unit_price_cents",
                f"SKU {item.sku!r} costs {info.price_cents} cents, not {item.unit_price_cents}",
            )


def split_by_merchant(items: Sequence[Item]) -> list[tuple[str, tuple[Item, ...]]]:
    """The items grouped per merchant: merchants in first-seen order, items in request order."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.merchant_id, []).append(item)
    return [(merchant, tuple(lines)) for merchant, lines in groups.items()]


def split_points(totals: Sequence[int], points: int) -> list[int]:
    """Share ``points`` across orders in proportion to their ``totals``.

    Each order gets ``floor(points * total / sum)``; the remainder goes to the first order, spilling to the
    next ones only where an order would get more than its total. Requires ``0 <= points <= sum(totals)``.
    """
    grand = sum(totals)
    if not 0 <= points <= grand:
        raise ValueError(f"points {points} must be within 0..{grand}")
    if points == 0:
        return [0] * len(totals)
    shares = [points * total // grand for total in totals]
    remainder = points - sum(shares)
    for index, total in enumerate(totals):
        if remainder == 0:
            break
        extra = min(remainder, total - shares[index])
        shares[index] += extra
        remainder -= extra
    return shares


def place_gid(request_id: str) -> str:
    """The gid of the PlaceOrder transaction of ``request_id``: derived from it, so a retry finds it."""
    return GID_PREFIX + hashlib.sha256(request_id.encode()).hexdigest()[:40]


def fingerprint(request: PlaceRequest) -> str:
    """A digest of what a request asks for (user, items, points), to tell a retry from a reused key."""
    canonical = json.dumps(
        [
            request.user_id,
            [[i.sku, i.merchant_id, i.quantity, i.unit_price_cents] for i in request.items],
            request.points_to_use,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def merchant_count(request: PlaceRequest) -> int:
    """How many orders the request makes (one per merchant)."""
    return len({item.merchant_id for item in request.items})


def plan_orders(request: PlaceRequest, order_ids: Sequence[str], gid: str) -> PlacePlan:
    """The transaction placing ``request``: one order per merchant (ids in merchant first-seen order)."""
    groups = split_by_merchant(request.items)
    if len(order_ids) != len(groups):
        raise ValueError(f"{len(groups)} merchants need {len(groups)} order ids, got {len(order_ids)}")
    totals = [sum(item.line_cents for item in lines) for _, lines in groups]
    points = split_points(totals, request.points_to_use)
    orders = tuple(
        NewOrder(
            order_id=order_id,
            user_id=request.user_id,
            merchant_id=merchant,
            items=lines,
            total_cents=total,
            points_used=share,
        )
        for order_id, (merchant, lines), total, share in zip(order_ids, groups, totals, points, strict=True)
    )
    return PlacePlan(
        request_id=request.request_id,
        user_id=request.user_id,
        gid=gid,
        orders=orders,
        points_to_use=request.points_to_use,
    )
