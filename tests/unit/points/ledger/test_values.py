"""The points vocabulary and its wire conversion (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from points_svc.api.conversions import audit_pb
from points_svc.config import AMOUNT_CEILING, PointsSection
from points_svc.ledger.values import AuditReport, EntryState, EntryType, LogEntry, Movement

ENTRY = LogEntry("order-1", EntryType.DEDUCT, "u1", 40, EntryState.CONFIRMED, gid="g1")


def test_an_idempotent_repeat_is_the_same_user_and_amount() -> None:
    assert ENTRY.same_movement(Movement("u1", 40, "order-1"))
    assert not ENTRY.same_movement(Movement("u1", 41, "order-1"))
    assert not ENTRY.same_movement(Movement("u2", 40, "order-1"))


@pytest.mark.parametrize(
    ("report", "balanced"),
    [
        (
            AuditReport(
                issued=100, spent=40, refunded=10, sum_balance=60, sum_frozen=10, negative_accounts=0
            ),
            True,
        ),
        (
            AuditReport(issued=100, spent=40, refunded=0, sum_balance=60, sum_frozen=10, negative_accounts=0),
            False,
        ),
        (AuditReport(issued=0, spent=0, refunded=0, sum_balance=0, sum_frozen=0, negative_accounts=1), False),
    ],
)
def test_the_points_invariant(report: AuditReport, balanced: bool) -> None:
    assert report.balanced is balanced


def test_the_audit_goes_on_the_wire_with_every_entry() -> None:
    report = AuditReport(
        issued=100, spent=40, refunded=0, sum_balance=60, sum_frozen=0, negative_accounts=0, entries=(ENTRY,)
    )
    wire = audit_pb(report)
    assert (wire.issued, wire.spent, wire.refunded, wire.sum_balance, wire.sum_frozen) == (100, 40, 0, 60, 0)
    assert [(e.out_trade_no, e.type, e.user_id, e.amount, e.state) for e in wire.entries] == [
        ("order-1", "deduct", "u1", 40, "confirmed")
    ]


def test_the_amount_limit_defaults_to_the_ceiling_and_cannot_exceed_it() -> None:
    assert PointsSection().max_amount == AMOUNT_CEILING == 10**12
    assert PointsSection(max_amount=1000).max_amount == 1000
    with pytest.raises(ValidationError):
        PointsSection(max_amount=AMOUNT_CEILING + 1)
