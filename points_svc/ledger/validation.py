"""Input rules of every points RPC, checked before anything changes (``InvalidArgument`` names the field)."""

from __future__ import annotations

from meshkit.errors import InvalidArgument
from points_svc.ledger.values import HOLD_TYPES, EntryType, Movement, RefundMove, SpendingRef

MAX_USER_ID_LEN = 64
MAX_OUT_TRADE_NO_LEN = 128


def check_text(field: str, value: str, limit: int) -> str:
    """``value`` when it is 1..``limit`` printable characters; else :class:`InvalidArgument` on ``field``."""
    if not value:
        raise InvalidArgument(field, "missing")
    if len(value) > limit:
        raise InvalidArgument(field, f"at most {limit} characters (got {len(value)})")
    if not value.isprintable():
        raise InvalidArgument(field, "must not contain control characters")
    return value


def check_user_id(user_id: str) -> str:
    """A valid ``user_id`` (1..64 printable characters)."""
    return check_text("user_id", user_id, MAX_USER_ID_LEN)


def check_amount(amount: int, max_amount: int) -> int:
    """A valid ``amount`` (1..``max_amount``)."""
    if not 1 <= amount <= max_amount:
        raise InvalidArgument("amount", f"must be 1..{max_amount} (got {amount})")
    return amount


def check_movement(user_id: str, amount: int, out_trade_no: str, max_amount: int) -> Movement:
    """The validated movement; the first bad field (user_id, amount, out_trade_no) is named."""
    return Movement(
        user_id=check_user_id(user_id),
        amount=check_amount(amount, max_amount),
        out_trade_no=check_text("out_trade_no", out_trade_no, MAX_OUT_TRADE_NO_LEN),
    )


def check_refund(
    user_id: str, amount: int, out_trade_no: str, spending: tuple[str, str], max_amount: int
) -> RefundMove:
    """The validated refund; ``spending`` is ``(spending_out_trade_no, spending_type)`` of the request."""
    move = check_movement(user_id, amount, out_trade_no, max_amount)
    spent_key, spent_type = spending
    key = check_text("spending_out_trade_no", spent_key, MAX_OUT_TRADE_NO_LEN)
    kinds = {k.value: k for k in HOLD_TYPES}
    kind: EntryType | None = kinds.get(spent_type)
    if kind is None:
        raise InvalidArgument("spending_type", f"must be one of {', '.join(kinds)} (got {spent_type!r})")
    return RefundMove(move=move, spending=SpendingRef(kind, key))


LEGACY_PAYMENT_SUFFIX = ":payment"
LEGACY_DISCOUNT_SUFFIX = ":discount"


def legacy_spending(out_trade_no: str) -> tuple[str, str] | None:
    """The spending an old cancel-chain refund key names, when the request carried none.

    Cancel chains submitted before migration points_0002 send no spending: ``<order>:payment`` gives
    back ``deduct <order>``. ``None`` for every other key (a ``<order>:discount`` freeze is keyed by
    the placing gid, which the order id does not tell).
    """
    order_id = out_trade_no.removesuffix(LEGACY_PAYMENT_SUFFIX)
    if out_trade_no.endswith(LEGACY_PAYMENT_SUFFIX) and order_id:
        return order_id, EntryType.DEDUCT.value
    return None


def is_legacy_discount(out_trade_no: str) -> bool:
    """An old cancel-chain key for the points used as a discount (``<order>:discount``)."""
    return out_trade_no.endswith(LEGACY_DISCOUNT_SUFFIX) and len(out_trade_no) > len(LEGACY_DISCOUNT_SUFFIX)
