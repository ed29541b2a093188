"""Input rules of the points RPCs (pure)."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from points_svc.config import AMOUNT_CEILING
from points_svc.ledger.validation import check_movement, check_user_id
from points_svc.ledger.values import Movement

MAX = AMOUNT_CEILING


def test_a_valid_movement_passes_unchanged() -> None:
    assert check_movement("u" * 64, MAX, "t" * 128, MAX) == Movement("u" * 64, MAX, "t" * 128)
    assert check_movement("u1", 1, "order-1:discount", MAX) == Movement("u1", 1, "order-1:discount")


@pytest.mark.parametrize(
    ("user_id", "amount", "out_trade_no", "field"),
    [
        ("", 1, "t", "user_id"),
        ("u" * 65, 1, "t", "user_id"),
        ("a\tb", 1, "t", "user_id"),
        ("u", 0, "t", "amount"),
        ("u", -1, "t", "amount"),
        ("u", MAX + 1, "t", "amount"),
        ("u", 1, "", "out_trade_no"),
        ("u", 1, "t" * 129, "out_trade_no"),
        ("u", 1, "a\x00b", "out_trade_no"),
        ("", 0, "", "user_id"),  # the first bad field is named
    ],
)
def test_a_bad_field_is_named(user_id: str, amount: int, out_trade_no: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_movement(user_id, amount, out_trade_no, MAX)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_the_configured_maximum_is_the_limit() -> None:
    assert check_movement("u", 500, "t", 500).amount == 500
    with pytest.raises(InvalidArgument, match=r"amount: must be 1\.\.500"):
        check_movement("u", 501, "t", 500)


def test_user_id_alone_is_checked_for_get_account() -> None:
    assert check_user_id("user-7") == "user-7"
    with pytest.raises(InvalidArgument, match="user_id: missing"):
        check_user_id("")
