"""The payment state machine as pure decisions."""

from __future__ import annotations

import pytest

from pay_svc.payments.state_machine import (
    CallbackEffect,
    RefundEffect,
    callback_effect,
    nonce_expiry_ms,
    refund_effect,
    within_window,
)
from pay_svc.payments.values import PaymentStatus as S

CALLBACK_TABLE = [
    (S.PENDING, S.SUCCEEDED, CallbackEffect.SUCCEED),
    (S.PENDING, S.FAILED, CallbackEffect.FAIL),
    (S.FAILED, S.SUCCEEDED, CallbackEffect.REFUND_LATE),
    (S.FAILED, S.FAILED, CallbackEffect.NONE),
    (S.SUCCEEDED, S.SUCCEEDED, CallbackEffect.NONE),
    (S.SUCCEEDED, S.FAILED, CallbackEffect.NONE),
    (S.REFUNDED, S.SUCCEEDED, CallbackEffect.NONE),
    (S.REFUNDED, S.FAILED, CallbackEffect.NONE),
]


@pytest.mark.parametrize(("current", "reported", "effect"), CALLBACK_TABLE)
def test_callback_effect(current: S, reported: S, effect: CallbackEffect) -> None:
    assert callback_effect(current, reported) is effect


@pytest.mark.parametrize(
    ("current", "effect"),
    [
        (S.SUCCEEDED, RefundEffect.REFUND),
        (S.REFUNDED, RefundEffect.EXISTING),
        (S.PENDING, RefundEffect.CLOSE),
        (S.FAILED, RefundEffect.NOTHING_PAID),
    ],
)
def test_refund_effect(current: S, effect: RefundEffect) -> None:
    assert refund_effect(current) is effect


def test_window_is_inclusive_in_both_directions() -> None:
    assert within_window(1_000_000, 1_000_000 - 300_000, 300_000)
    assert within_window(1_000_000, 1_000_000 + 300_000, 300_000)
    assert not within_window(1_000_000, 1_000_000 - 300_001, 300_000)
    assert not within_window(1_000_000, 1_000_000 + 300_001, 300_000)


def test_nonce_outlives_the_window_of_its_callback() -> None:
    assert nonce_expiry_ms(1_000, 300_000) == 601_000


def test_wire_names() -> None:
    assert S.SUCCEEDED.wire_name == "PAYMENT_STATUS_SUCCEEDED"
