"""The Points gRPC servicer: message -> :class:`points_svc.domain.Points` -> message, nothing else."""

from __future__ import annotations

from typing import Any

import grpc.aio

from meshkit.tx.context import TxContext, require_context
from meshpb.common.v1 import common_pb2
from meshpb.points.v1 import points_pb2, points_pb2_grpc
from points_svc.domain import Points
from points_svc.ledger import Account, AuditReport, EntryType, LogEntry

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


class PointsServicer(points_pb2_grpc.PointsServicer):
    """``meshpb.points.v1.Points`` over the points domain."""

    def __init__(self, points: Points) -> None:
        self._points = points

    async def Grant(self, request: points_pb2.GrantRequest, context: Context) -> points_pb2.Account:
        """Credit points once per out_trade_no."""
        return account_pb(await self._points.grant(request.user_id, request.amount, request.out_trade_no))

    async def GetAccount(self, request: points_pb2.GetAccountRequest, context: Context) -> points_pb2.Account:
        """The user's balance and frozen points."""
        return account_pb(await self._points.account(request.user_id))

    async def Refund(self, request: points_pb2.RefundRequest, context: Context) -> points_pb2.Account:
        """Give back points of a non-order spending once per out_trade_no (admin)."""
        refund = await self._points.refund(
            request.user_id, request.amount, request.out_trade_no, _spending(request)
        )
        return account_pb(refund)

    async def Audit(self, request: common_pb2.AuditRequest, context: Context) -> points_pb2.PointsAudit:
        """The points invariant's totals and the spending/refund entries."""
        return audit_pb(await self._points.audit())

    async def TryFreeze(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC try of an order's points: hold them."""
        return reply(await self._points.try_hold(EntryType.FREEZE, tx_context(context), *_move(request)))

    async def ConfirmFreeze(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC confirm of an order's points: spend the hold."""
        return reply(await self._points.confirm_hold(EntryType.FREEZE, tx_context(context), *_move(request)))

    async def CancelFreeze(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC cancel of an order's points: give the hold back."""
        return reply(await self._points.cancel_hold(EntryType.FREEZE, tx_context(context), *_move(request)))

    async def TryDeduct(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC try of a points payment: hold the amount due."""
        return reply(await self._points.try_hold(EntryType.DEDUCT, tx_context(context), *_move(request)))

    async def ConfirmDeduct(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC confirm of a points payment: spend the hold."""
        return reply(await self._points.confirm_hold(EntryType.DEDUCT, tx_context(context), *_move(request)))

    async def CancelDeduct(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC cancel of a points payment: give the hold back."""
        return reply(await self._points.cancel_hold(EntryType.DEDUCT, tx_context(context), *_move(request)))

    async def RefundBranch(
        self, request: points_pb2.RefundRequest, context: Context
    ) -> common_pb2.BranchReply:
        """MSG branch (op ``action``) of the cancel chain: refund once per out_trade_no."""
        return reply(
            await self._points.refund_branch(
                tx_context(context), request.user_id, request.amount, request.out_trade_no, _spending(request)
            )
        )


def _move(request: points_pb2.PointsBranchRequest) -> tuple[str, int, str]:
    return request.user_id, request.amount, request.out_trade_no


def _spending(request: points_pb2.RefundRequest) -> tuple[str, str]:
    return request.spending_out_trade_no, request.spending_type
