"""The order state machine table (DESIGN.md section 6)."""

from __future__ import annotations

import itertools

import pytest

from meshkit.errors import FailedPrecondition
from order_svc.orders.states import (
    FINAL,
    HIDDEN,
    TRANSITIONS,
    OrderState,
    check_transition,
    is_allowed,
    is_visible,
)

S = OrderState

EXPECTED = {
    (S.PENDING, S.CREATED),
    (S.PENDING, S.VOIDED),
    (S.CREATED, S.PAID),
    (S.CREATED, S.CANCELLED),
    (S.PAID, S.SHIPPED),
    (S.PAID, S.REFUNDING),
    (S.SHIPPED, S.COMPLETED),
    (S.REFUNDING, S.REFUNDED),
}


def test_table_holds_exactly_the_designed_transitions() -> None:
    table = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}
    assert table == EXPECTED


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(OrderState)


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED))
def test_allowed_transition_passes(src: OrderState, dst: OrderState) -> None:
    assert is_allowed(src, dst)
    check_transition("o1", src, dst)


@pytest.mark.parametrize(
    ("src", "dst"), [p for p in itertools.product(OrderState, OrderState) if p not in EXPECTED]
)
def test_refused_transition_names_both_states(src: OrderState, dst: OrderState) -> None:
    assert not is_allowed(src, dst)
    with pytest.raises(FailedPrecondition) as info:
        check_transition("o1", src, dst)
    assert src.value in str(info.value)
    assert dst.value in str(info.value)
    assert "o1" in str(info.value)


def test_final_states_have_no_way_out() -> None:
    assert {S.COMPLETED, S.CANCELLED, S.REFUNDED, S.VOIDED} == FINAL


def test_paid_and_cancelled_never_reach_each_other() -> None:
    def reachable(start: OrderState) -> set[OrderState]:
        seen, todo = set(), [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert S.CANCELLED not in reachable(S.PAID)
    assert S.PAID not in reachable(S.CANCELLED)


def test_internal_states_are_hidden() -> None:
    assert {S.PENDING, S.VOIDED} == HIDDEN
    assert not is_visible(S.PENDING)
    assert not is_visible(S.VOIDED)
    assert all(is_visible(s) for s in OrderState if s not in HIDDEN)
