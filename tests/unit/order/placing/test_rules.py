"""PlaceOrder's pure rules: validation, catalogue check, split by merchant, points split, gid."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from order_svc.orders.values import Item, PlaceRequest, SkuInfo
from order_svc.placing.rules import (
    MAX_UNIT_PRICE_CENTS,
    check_catalogue,
    fingerprint,
    place_gid,
    plan_orders,
    split_by_merchant,
    split_points,
    validate_request,
)

A1 = Item("a1", "m-a", 2, 500)  # 1000
A2 = Item("a2", "m-a", 1, 250)  # 250
B1 = Item("b1", "m-b", 3, 100)  # 300
C1 = Item("c1", "m-c", 1, 0)  # 0


def request(*items: Item, points: int = 0, request_id: str = "r-1", user_id: str = "u-1") -> PlaceRequest:
    return PlaceRequest(request_id=request_id, user_id=user_id, items=items, points_to_use=points)


def validate(req: PlaceRequest, max_items: int = 100, max_quantity: int = 10_000) -> None:
    validate_request(req, max_items=max_items, max_quantity=max_quantity)


def field_of(req: PlaceRequest, **limits: int) -> str:
    with pytest.raises(InvalidArgument) as info:
        validate(req, **limits)
    return info.value.field


# ---------------------------------------------------------------- split by merchant


def test_split_groups_items_per_merchant_in_first_seen_order() -> None:
    groups = split_by_merchant([B1, A1, C1, A2])
    assert groups == [("m-b", (B1,)), ("m-a", (A1, A2)), ("m-c", (C1,))]


def test_plan_makes_one_order_per_merchant_with_totals() -> None:
    plan = plan_orders(request(A1, B1, A2), ["o1", "o2"], "g")
    assert [(o.order_id, o.merchant_id, o.total_cents) for o in plan.orders] == [
        ("o1", "m-a", 1250),
        ("o2", "m-b", 300),
    ]
    assert plan.orders[0].items == (A1, A2)
    assert plan.order_ids == ("o1", "o2")
    assert plan.gid == "g"


def test_plan_stock_items_aggregate_every_sku() -> None:
    plan = plan_orders(request(A1, B1, A2), ["o1", "o2"], "g")
    assert plan.stock_items() == (("a1", 2), ("a2", 1), ("b1", 3))


def test_plan_needs_one_id_per_merchant() -> None:
    with pytest.raises(ValueError, match="order ids"):
        plan_orders(request(A1, B1), ["o1"], "g")


# ---------------------------------------------------------------- points split


def test_points_split_in_proportion_to_totals() -> None:
    assert split_points([1000, 500, 500], 400) == [200, 100, 100]


def test_points_remainder_goes_to_the_first_order() -> None:
    assert split_points([1000, 1000, 1000], 100) == [34, 33, 33]


def test_points_remainder_spills_when_first_order_is_full() -> None:
    # floor shares: 1*3/4 = 0, 3*3/4 = 2 -> remainder 1 goes to the first (total 1, room 1)
    assert split_points([1, 3], 3) == [1, 2]
    # first order is full already: the remainder spills to the next one
    assert split_points([1, 1, 5], 7) == [1, 1, 5]


def test_points_never_exceed_an_order_total_and_sum_up() -> None:
    for totals in ([7, 3], [1, 1, 1], [0, 10], [9, 0, 1], [1250, 300, 0]):
        for points in range(sum(totals) + 1):
            shares = split_points(totals, points)
            assert sum(shares) == points
            assert all(0 <= s <= t for s, t in zip(shares, totals, strict=True))


def test_zero_points_gives_zero_shares() -> None:
    assert split_points([10, 20], 0) == [0, 0]


def test_points_beyond_total_are_refused() -> None:
    with pytest.raises(ValueError, match="points"):
        split_points([10], 11)


def test_plan_assigns_points_and_amount_due() -> None:
    plan = plan_orders(request(A1, B1, A2, points=311), ["o1", "o2"], "g")
    # floor(311 * 1250 / 1550) = 250, floor(311 * 300 / 1550) = 60, remainder 1 to the first order
    assert [o.points_used for o in plan.orders] == [251, 60]
    assert [o.amount_due_cents for o in plan.orders] == [999, 240]
    assert plan.points_to_use == 311


# ---------------------------------------------------------------- validation


def test_valid_request_passes() -> None:
    validate(request(A1, B1, C1, points=1300))


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (request(A1, request_id=""), "request_id"),
        (request(A1, request_id="x" * 129), "request_id"),
        (request(A1, request_id="has space"), "request_id"),
        (request(A1, user_id=""), "user_id"),
        (request(A1, user_id="u" * 65), "user_id"),
        (request(), "items"),
        (request(Item("", "m", 1, 1)), "items[0].sku"),
        (request(A1, Item("s", "", 1, 1)), "items[1].merchant_id"),
        (request(Item("s", "m", 0, 1)), "items[0].quantity"),
        (request(Item("s", "m", 10_001, 1)), "items[0].quantity"),
        (request(Item("s", "m", -1, 1)), "items[0].quantity"),
        (request(Item("s", "m", 1, -1)), "items[0].unit_price_cents"),
        (request(Item("s", "m", 1, MAX_UNIT_PRICE_CENTS + 1)), "items[0].unit_price_cents"),
        (request(A1, B1, A1), "items[2].sku"),
        (request(A1, points=-1), "points_to_use"),
        (request(A1, points=1001), "points_to_use"),
    ],
)
def test_invalid_request_names_the_field(req: PlaceRequest, field: str) -> None:
    assert field_of(req) == field


def test_item_count_limit() -> None:
    items = tuple(Item(f"s{i}", "m", 1, 1) for i in range(4))
    assert field_of(request(*items), max_items=3) == "items"
    validate(request(*items), max_items=4)


def test_quantity_limit_is_configurable() -> None:
    assert field_of(request(Item("s", "m", 6, 1)), max_quantity=5) == "items[0].quantity"


# ---------------------------------------------------------------- catalogue


CATALOGUE = {
    "a1": SkuInfo("a1", "m-a", 500),
    "b1": SkuInfo("b1", "m-b", 100),
}


def catalogue_field(*items: Item) -> str:
    with pytest.raises(InvalidArgument) as info:
        check_catalogue(items, CATALOGUE)
    return info.value.field


def test_catalogue_accepts_matching_items() -> None:
    check_catalogue([A1, B1], CATALOGUE)


def test_unknown_sku_is_refused() -> None:
    assert catalogue_field(A1, Item("zz", "m-a", 1, 1)) == "items[1].sku"


def test_merchant_must_match_catalogue() -> None:
    assert catalogue_field(Item("a1", "m-b", 2, 500)) == "items[0].merchant_id"


def test_price_must_match_catalogue() -> None:
    assert catalogue_field(B1, Item("a1", "m-a", 2, 499)) == "items[1].unit_price_cents"


# ---------------------------------------------------------------- gid and fingerprint


def test_gid_is_derived_from_the_request_id() -> None:
    assert place_gid("r-1") == place_gid("r-1")
    assert place_gid("r-1") != place_gid("r-2")
    assert place_gid("x" * 128).startswith("order-")
    assert len(place_gid("x" * 128)) <= 64


def test_fingerprint_tells_a_retry_from_a_reused_key() -> None:
    base = request(A1, B1, points=5)
    assert fingerprint(base) == fingerprint(request(A1, B1, points=5, request_id="other"))
    assert fingerprint(base) != fingerprint(request(A1, B1, points=6))
    assert fingerprint(base) != fingerprint(request(A1, B1, points=5, user_id="u-2"))
    assert fingerprint(base) != fingerprint(request(B1, A1, points=5))
