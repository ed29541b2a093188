"""Input validation of the Stock RPCs (pure functions)."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from stock_svc.stock.validation import (
    HARD_LIMITS,
    MAX_PRICE_CENTS,
    Item,
    Limits,
    PutSkuInput,
    check_items,
    check_order_ids,
    check_put_sku,
    check_sku_list,
)

LIMITS = Limits(max_items=3, max_quantity=50)


def field_of(exc: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return exc.value.field


def test_valid_items_come_back_in_order() -> None:
    assert check_items([("b", 1), ("a", 50)], LIMITS) == [Item("b", 1), Item("a", 50)]


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([("a", 1), ("b", 1), ("c", 1), ("d", 1)], "items"),
        ([("", 1)], "items[0].sku"),
        ([("a", 1), ("x" * 65, 1)], "items[1].sku"),
        ([("a b", 1)], "items[0].sku"),
        ([("a\tb", 1)], "items[0].sku"),
        ([("a", 0)], "items[0].quantity"),
        ([("a", -1)], "items[0].quantity"),
        ([("a", 51)], "items[0].quantity"),
        ([("a", 1), ("b", 1), ("a", 1)], "items[2].sku"),
    ],
)
def test_bad_items_name_the_field(items: list[tuple[str, int]], field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_items(items, LIMITS)
    assert field_of(exc) == field


def test_duplicate_sku_names_the_first_occurrence() -> None:
    with pytest.raises(InvalidArgument, match=r"duplicate of items\[0\]"):
        check_items([("a", 1), ("a", 2)], LIMITS)


def test_sku_of_64_characters_is_accepted() -> None:
    assert check_items([("x" * 64, 1)], LIMITS)[0].sku == "x" * 64


def test_hard_limits_accept_what_any_configured_limit_accepts() -> None:
    assert check_items([(f"s{i}", 10_000) for i in range(100)], HARD_LIMITS)[99] == Item("s99", 10_000)
    with pytest.raises(InvalidArgument):
        check_items([("a", 10_001)], HARD_LIMITS)


def test_order_ids_may_be_empty_but_not_blank() -> None:
    assert check_order_ids([], 3) == []
    assert check_order_ids(["o-1", "o-2"], 3) == ["o-1", "o-2"]
    with pytest.raises(InvalidArgument) as exc:
        check_order_ids(["o-1", ""], 3)
    assert field_of(exc) == "order_ids[1]"
    with pytest.raises(InvalidArgument) as exc:
        check_order_ids(["a", "b", "c", "d"], 3)
    assert field_of(exc) == "order_ids"


def test_put_sku_accepts_zero_quantity_and_price() -> None:
    assert check_put_sku("a", "m", 0, 0, "r", limits=LIMITS) == PutSkuInput("a", "m", 0, 0, "r")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "m", 1, 1, "r"), "sku"),
        (("a", "", 1, 1, "r"), "merchant_id"),
        (("a", "m" * 65, 1, 1, "r"), "merchant_id"),
        (("a", "m", -1, 1, "r"), "price_cents"),
        (("a", "m", MAX_PRICE_CENTS + 1, 1, "r"), "price_cents"),
        (("a", "m", 1, -1, "r"), "quantity"),
        (("a", "m", 1, 51, "r"), "quantity"),
        (("a", "m", 1, 1, ""), "request_id"),
        (("a", "m", 1, 1, "r" * 65), "request_id"),
        (("a", "m", 1, 1, "r 1"), "request_id"),
    ],
)
def test_bad_put_sku_names_the_field(args: tuple[str, str, int, int, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_put_sku(*args, limits=LIMITS)
    assert field_of(exc) == field


def test_sku_list_is_deduplicated_in_order() -> None:
    assert check_sku_list(["b", "a", "b"], LIMITS) == ["b", "a"]
    assert check_sku_list([], LIMITS) == []


@pytest.mark.parametrize(
    ("skus", "field"), [(["a", ""], "skus[1]"), (["a", "b", "c", "d"], "skus"), (["x" * 65], "skus[0]")]
)
def test_bad_sku_list_names_the_field(skus: list[str], field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_sku_list(skus, LIMITS)
    assert field_of(exc) == field
