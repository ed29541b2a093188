"""Points messages <-> domain values: accounts, log entries, the audit, branch replies and inputs."""

from __future__ import annotations

from typing import Any

import grpc.aio

from meshkit.tx.context import TxContext, require_context
from meshpb.common.v1 import common_pb2
from meshpb.points.v1 import points_pb2
from points_svc.ledger.values import Account, AuditReport, LogEntry

Context = grpc.aio.ServicerContext[Any, Any]


def tx_context(context: Context) -> TxContext:
    """The ``x-mesh-*`` transaction context of a branch call (``INVALID_ARGUMENT`` when missing)."""
    return require_context(context.invocation_metadata())


def account_pb(account: Account) -> points_pb2.Account:
    """The wire form of an account."""
    return points_pb2.Account(user_id=account.user_id, balance=account.balance, frozen=account.frozen)


def entry_pb(entry: LogEntry) -> points_pb2.PointsLogEntry:
    """The wire form of a log entry."""
    return points_pb2.PointsLogEntry(
        out_trade_no=entry.out_trade_no,
        type=entry.type.value,
        user_id=entry.user_id,
        amount=entry.amount,
        state=entry.state.value,
        spending_out_trade_no=entry.spending.out_trade_no if entry.spending else "",
        spending_type=entry.spending.type.value if entry.spending else "",
    )


def audit_pb(report: AuditReport) -> points_pb2.PointsAudit:
    """The wire form of the audit figures."""
    return points_pb2.PointsAudit(
        issued=report.issued,
        spent=report.spent,
        refunded=report.refunded,
        sum_balance=report.sum_balance,
        sum_frozen=report.sum_frozen,
        negative_accounts=report.negative_accounts,
        entries=[entry_pb(e) for e in report.entries],
    )


def reply(note: str) -> common_pb2.BranchReply:
    """A branch reply carrying ``note`` (applied / duplicate / empty_rollback / already done)."""
    return common_pb2.BranchReply(note=note)


def move_fields(request: points_pb2.PointsBranchRequest) -> tuple[str, int, str]:
    """``(user_id, amount, out_trade_no)`` of a hold branch request, unchecked (the domain validates)."""
    return request.user_id, request.amount, request.out_trade_no


def spending_fields(request: points_pb2.RefundRequest) -> tuple[str, str]:
    """``(spending_out_trade_no, spending_type)`` of a refund request, unchecked."""
    return request.spending_out_trade_no, request.spending_type
