"""ListOrders paging and the small input checks of the order domain."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshkit.errors import InvalidArgument
from order_svc.orders.states import OrderState
from order_svc.orders.values import Channel, Order
from order_svc.service import DEFAULT_PAGE, check_reason, decode_cursor, encode_cursor, page_limit


def order(order_id: str, created: int) -> Order:
    return Order(
        order_id=order_id,
        request_id="r",
        gid="g",
        user_id="u",
        merchant_id="m",
        status=OrderState.CREATED,
        version=1,
        total_cents=1,
        points_used=0,
        amount_due_cents=1,
        channel=Channel.NONE,
        payment_id=None,
        paying_gid=None,
        created_at_ms=created,
        updated_at_ms=created,
        pay_deadline_ms=None,
        paid_at_ms=None,
        reason="",
    )


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor(order("123456", 1_700_000_000_000))) == (1_700_000_000_000, "123456")


def test_empty_cursor_is_the_first_page() -> None:
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", ["!!!", "bm90LWEtY3Vyc29y", "x" * 200, "OjEyMw=="])
def test_malformed_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_cursor(cursor)
    assert info.value.field == "page.cursor"


def test_page_limit() -> None:
    assert page_limit(0) == DEFAULT_PAGE
    assert page_limit(1) == 1
    assert page_limit(500) == 500
    for bad in (-1, 501):
        with pytest.raises(InvalidArgument) as info:
            page_limit(bad)
        assert info.value.field == "page.limit"


def test_reason_is_bounded_and_printable() -> None:
    assert check_reason("") == ""
    for bad in ("x" * 257, "line\nbreak"):
        with pytest.raises(InvalidArgument) as info:
            check_reason(bad)
        assert info.value.field == "reason"


def test_overdue_needs_created_unlocked_and_past_deadline() -> None:
    base = order("1", 0)
    assert not base.overdue(10)  # no deadline yet
    due = replace(base, pay_deadline_ms=5)
    assert due.overdue(5)
    assert not due.overdue(4)
    assert not replace(due, paying_gid="pay-1").overdue(5)
    assert not replace(due, status=OrderState.PAID).overdue(5)
