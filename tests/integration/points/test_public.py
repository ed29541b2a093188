"""Public points RPCs (Grant, GetAccount, Refund, Audit) and the MSG RefundBranch, on SQLite and MariaDB.

Every scenario ends with the points invariant checked through Audit.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from meshkit.tx.branchcall import branch_metadata
from meshkit.tx.context import Op, TxContext
from meshpb.common.v1 import common_pb2
from meshpb.points.v1 import points_pb2
from tests.integration.points.harness import RunningPoints, expect_error, msg_action, tcc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MAX = 10**12


async def spend(points: RunningPoints, user: str, amount: int) -> str:
    """Freeze and confirm ``amount`` of ``user`` in a fresh gid (an order's points); returns the gid."""
    gid = uuid.uuid4().hex
    await points.branch("TryFreeze", tcc(gid, Op.TRY), user, amount, gid)
    await points.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, amount, gid)
    return gid


async def test_grant_creates_the_account_and_is_idempotent(
    points: RunningPoints, user: str, gid: str
) -> None:
    first = await points.grant(user, 100, f"grant-{gid}")
    assert (first.user_id, first.balance, first.frozen) == (user, 100, 0)
    again = await points.grant(user, 100, f"grant-{gid}")
    assert again == first
    await points.grant(user, 5, f"grant-{gid}-2")
    assert await points.account(user) == (105, 0)
    report = await points.balanced()
    assert report.issued == 105
    assert list(report.entries) == []  # grants are not listed


async def test_concurrent_duplicate_grants_credit_once(points: RunningPoints, user: str, gid: str) -> None:
    accounts = await asyncio.gather(*(points.grant(user, 70, f"grant-{gid}") for _ in range(8)))
    assert {a.balance for a in accounts} == {70}
    assert await points.account(user) == (70, 0)
    assert (await points.balanced()).issued == 70


async def test_grant_reusing_an_out_trade_no_for_another_amount_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    details = await expect_error(points.grant(user, 99, f"grant-{gid}"), grpc.StatusCode.ALREADY_EXISTS)
    assert f"grant-{gid}" in details
    await expect_error(points.grant(f"{user}-x", 100, f"grant-{gid}"), grpc.StatusCode.ALREADY_EXISTS)
    assert await points.account(user) == (100, 0)
    await expect_error(points.account(f"{user}-x"), grpc.StatusCode.NOT_FOUND)
    assert (await points.balanced()).issued == 100


async def test_get_account_of_an_unknown_user_is_not_found(points: RunningPoints, user: str) -> None:
    details = await expect_error(points.account(user), grpc.StatusCode.NOT_FOUND)
    assert user in details
    await points.balanced()


async def test_account_spent_down_to_zero_still_exists(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 10, f"grant-{gid}")
    await spend(points, user, 10)
    assert await points.account(user) == (0, 0)
    await points.balanced()


async def test_refund_is_idempotent_per_out_trade_no(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    spent = await spend(points, user, 60)
    first = await points.refund(user, 20, f"order-{gid}:discount", spent)
    assert (first.balance, first.frozen) == (60, 0)
    assert await points.refund(user, 20, f"order-{gid}:discount", spent) == first
    await points.refund(user, 15, f"order-{gid}:payment", spent)
    assert await points.account(user) == (75, 0)
    details = await expect_error(
        points.refund(user, 21, f"order-{gid}:discount", spent), grpc.StatusCode.ALREADY_EXISTS
    )
    assert f"order-{gid}:discount" in details
    report = await points.balanced()
    assert (report.issued, report.spent, report.refunded) == (100, 60, 35)
    refunds = [(e.out_trade_no, e.amount, e.state) for e in report.entries if e.type == "refund"]
    assert refunds == [(f"order-{gid}:discount", 20, "done"), (f"order-{gid}:payment", 15, "done")]


async def test_concurrent_duplicate_refunds_apply_once(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    spent = await spend(points, user, 100)
    key = f"order-{gid}:payment"
    public = [points.refund(user, 40, key, spent) for _ in range(5)]
    branches = [
        points.branch("RefundBranch", msg_action(uuid.uuid4().hex), user, 40, key, spending=(spent, "freeze"))
        for _ in range(5)
    ]
    results = await asyncio.gather(*public, *branches)
    assert {r.balance for r in results[:5] if isinstance(r, points_pb2.Account)} == {40}
    assert set(results[5:]) <= {"applied", "already done", "duplicate"}
    assert await points.account(user) == (40, 0)
    report = await points.balanced()
    assert report.refunded == 40
    assert [e.out_trade_no for e in report.entries if e.type == "refund"] == [key]


async def test_refund_beyond_what_the_user_spent_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    spent = await spend(points, user, 30)
    await points.refund(user, 20, f"r-{gid}-1", spent)
    details = await expect_error(
        points.refund(user, 11, f"r-{gid}-2", spent), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert f"freeze {spent} took 30" in details
    await points.refund(user, 10, f"r-{gid}-2", spent)
    assert await points.account(user) == (100, 0)
    report = await points.balanced()
    assert (report.spent, report.refunded) == (30, 30)


async def test_concurrent_refunds_of_one_user_never_exceed_the_spending(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await spend(points, user, 50)
    spent = await spend(points, user, 30)
    results = await asyncio.gather(
        *(points.refund(user, 10, f"r-{gid}-{i}", spent) for i in range(8)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 5  # only 3 x 10 of the 30 that spending took
    assert all(r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert await points.account(user) == (50, 0)
    assert (await points.balanced()).refunded == 30


async def test_refund_branch_runs_once_through_the_barrier(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    spent = await spend(points, user, 80)
    key = f"order-{gid}:discount"
    spending = (spent, "freeze")
    notes = await asyncio.gather(
        *(points.branch("RefundBranch", msg_action(gid), user, 30, key, spending=spending) for _ in range(3))
    )
    assert sorted(notes) == ["applied", "duplicate", "duplicate"]
    # Another transaction refunding the same out_trade_no: the log's unique key answers it.
    again = msg_action(uuid.uuid4().hex)
    assert await points.branch("RefundBranch", again, user, 30, key, spending=spending) == "already done"
    assert (await points.refund(user, 30, key, spent)).balance == 50
    assert await points.account(user) == (50, 0)
    report = await points.balanced()
    assert report.refunded == 30


async def test_refund_branch_before_the_spend_is_confirmed_asks_to_retry(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 40, gid)
    refund = msg_action(f"cancel-{gid}")
    key = f"order-{gid}:discount"
    await expect_error(
        points.branch("RefundBranch", refund, user, 40, key, spending=(gid, "freeze")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert await points.account(user) == (60, 40)
    await points.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, 40, gid)
    assert await points.branch("RefundBranch", refund, user, 40, key, spending=(gid, "freeze")) == "applied"
    assert await points.account(user) == (100, 0)
    await points.balanced()


async def test_refund_branch_reusing_a_key_for_another_amount_is_aborted(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    spent = await spend(points, user, 50)
    await points.refund(user, 10, f"r-{gid}", spent)
    await expect_error(
        points.branch("RefundBranch", msg_action(gid), user, 11, f"r-{gid}", spending=(spent, "freeze")),
        grpc.StatusCode.ABORTED,
    )
    assert await points.account(user) == (60, 0)
    await points.balanced()


@dataclass(frozen=True)
class BadCall:
    """One RPC with one bad field; ``ctx`` is the transaction context of a branch RPC."""

    method: str
    field: str
    request: Any
    ctx: TxContext | None = None

    async def run(self, points: RunningPoints) -> str:
        metadata = list(branch_metadata(self.ctx)) if self.ctx is not None else None
        return await expect_error(getattr(points.stub, self.method)(self.request, metadata=metadata), INVALID)


BAD_VALUES: list[tuple[str, Any]] = [
    ("user_id", ""),
    ("user_id", "u" * 65),
    ("user_id", "bad\nuser"),
    ("amount", 0),
    ("amount", -5),
    ("amount", MAX + 1),
    ("out_trade_no", ""),
    ("out_trade_no", "t" * 129),
]


def bad_calls(user: str, gid: str) -> list[BadCall]:
    """Every public and branch RPC with every bad field (cancels excepted: with no try they are empty)."""
    ok = {"user_id": user, "amount": 10, "out_trade_no": f"bad-{gid}"}
    spending = {"spending_out_trade_no": gid, "spending_type": "freeze"}
    calls: list[BadCall] = []
    for field, value in BAD_VALUES:
        fields = {**ok, field: value}
        branch = points_pb2.PointsBranchRequest(**fields)
        refund = points_pb2.RefundRequest(**fields, **spending)
        calls += [
            BadCall("Grant", field, points_pb2.GrantRequest(**fields)),
            BadCall("Refund", field, refund),
            BadCall("RefundBranch", field, refund, msg_action(gid)),
            BadCall("TryFreeze", field, branch, tcc(gid, Op.TRY)),
            BadCall("ConfirmFreeze", field, branch, tcc(gid, Op.CONFIRM)),
            BadCall("TryDeduct", field, branch, tcc(gid, Op.TRY)),
            BadCall("ConfirmDeduct", field, branch, tcc(gid, Op.CONFIRM)),
        ]
    calls += [
        BadCall("GetAccount", "user_id", points_pb2.GetAccountRequest(user_id=value))
        for value in ("", "u" * 65)
    ]
    for field, value in (
        ("spending_out_trade_no", ""),
        ("spending_out_trade_no", "t" * 129),
        ("spending_type", ""),
        ("spending_type", "grant"),
        ("spending_type", "refund"),
    ):
        refund = points_pb2.RefundRequest(**ok, **{**spending, field: value})
        calls += [BadCall("Refund", field, refund), BadCall("RefundBranch", field, refund, msg_action(gid))]
    return calls


async def test_invalid_input_is_refused_naming_the_field_and_changes_nothing(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await spend(points, user, 50)
    before = await points.audit()
    for call in bad_calls(user, gid):
        details = await call.run(points)
        assert details.startswith(f"{call.field}:"), f"{call}: {details}"
    assert await points.audit() == before
    assert await points.account(user) == (50, 0)
    await points.balanced()


async def test_audit_lists_spending_and_refund_entries(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    spent_gid = await spend(points, user, 30)
    held = uuid.uuid4().hex
    await points.branch("TryDeduct", tcc(held, Op.TRY), user, 20, f"order-{held}")
    await points.refund(user, 5, f"r-{gid}", spent_gid)
    report = await points.stub.Audit(common_pb2.AuditRequest())
    listed = [
        (e.out_trade_no, e.type, e.user_id, e.amount, e.state, e.spending_type, e.spending_out_trade_no)
        for e in report.entries
    ]
    assert listed == [
        (spent_gid, "freeze", user, 30, "confirmed", "", ""),
        (f"order-{held}", "deduct", user, 20, "trying", "", ""),
        (f"r-{gid}", "refund", user, 5, "done", "freeze", spent_gid),
    ]
    assert (report.sum_balance, report.sum_frozen, report.spent, report.refunded) == (55, 20, 30, 5)
    await points.balanced()


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        ("UPDATE points_account SET balance = -1 WHERE user_id = :u", "balance"),
        ("UPDATE points_account SET frozen = -1 WHERE user_id = :u", "frozen"),
    ],
)
async def test_the_database_refuses_negative_balance_or_frozen(
    points: RunningPoints, user: str, gid: str, statement: str, constraint: str
) -> None:
    await points.grant(user, 10, f"grant-{gid}")
    with pytest.raises(DBAPIError, match=constraint):
        async with points.runtime.db.begin() as conn:
            await conn.execute(text(statement), {"u": user})
    assert await points.account(user) == (10, 0)
    await points.balanced()
