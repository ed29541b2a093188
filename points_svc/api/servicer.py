"""The Points gRPC servicer: message -> :class:`points_svc.ledger.domain.Points` -> message, nothing else."""

from __future__ import annotations

from meshpb.common.v1 import common_pb2
from meshpb.points.v1 import points_pb2, points_pb2_grpc
from points_svc.api import conversions
from points_svc.ledger.domain import Points
from points_svc.ledger.values import EntryType

Context = conversions.Context


class PointsServicer(points_pb2_grpc.PointsServicer):
    """``meshpb.points.v1.Points`` over the points domain."""

    def __init__(self, points: Points) -> None:
        self._points = points

    async def Grant(self, request: points_pb2.GrantRequest, context: Context) -> points_pb2.Account:
        """Credit points once per out_trade_no."""
        return conversions.account_pb(
            await self._points.grant(request.user_id, request.amount, request.out_trade_no)
        )

    async def GetAccount(self, request: points_pb2.GetAccountRequest, context: Context) -> points_pb2.Account:
        """The user's balance and frozen points."""
        return conversions.account_pb(await self._points.account(request.user_id))

    async def Refund(self, request: points_pb2.RefundRequest, context: Context) -> points_pb2.Account:
        """Give back points of a non-order spending once per out_trade_no (admin)."""
        refund = await self._points.refund(
            request.user_id, request.amount, request.out_trade_no, conversions.spending_fields(request)
        )
        return conversions.account_pb(refund)

    async def Audit(self, request: common_pb2.AuditRequest, context: Context) -> points_pb2.PointsAudit:
        """The points invariant's totals and the spending/refund entries."""
        return conversions.audit_pb(await self._points.audit())

    async def TryFreeze(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC try of an order's points: hold them."""
        return conversions.reply(
            await self._points.try_hold(
                EntryType.FREEZE, conversions.tx_context(context), *conversions.move_fields(request)
            )
        )

    async def ConfirmFreeze(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC confirm of an order's points: spend the hold."""
        return conversions.reply(
            await self._points.confirm_hold(
                EntryType.FREEZE, conversions.tx_context(context), *conversions.move_fields(request)
            )
        )

    async def CancelFreeze(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC cancel of an order's points: give the hold back."""
        return conversions.reply(
            await self._points.cancel_hold(
                EntryType.FREEZE, conversions.tx_context(context), *conversions.move_fields(request)
            )
        )

    async def TryDeduct(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC try of a points payment: hold the amount due."""
        return conversions.reply(
            await self._points.try_hold(
                EntryType.DEDUCT, conversions.tx_context(context), *conversions.move_fields(request)
            )
        )

    async def ConfirmDeduct(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC confirm of a points payment: spend the hold."""
        return conversions.reply(
            await self._points.confirm_hold(
                EntryType.DEDUCT, conversions.tx_context(context), *conversions.move_fields(request)
            )
        )

    async def CancelDeduct(
        self, request: points_pb2.PointsBranchRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC cancel of a points payment: give the hold back."""
        return conversions.reply(
            await self._points.cancel_hold(
                EntryType.DEDUCT, conversions.tx_context(context), *conversions.move_fields(request)
            )
        )

    async def RefundBranch(
        self, request: points_pb2.RefundRequest, context: Context
    ) -> common_pb2.BranchReply:
        """MSG branch (op ``action``) of the cancel chain: refund once per out_trade_no."""
        return conversions.reply(
            await self._points.refund_branch(
                conversions.tx_context(context),
                request.user_id,
                request.amount,
                request.out_trade_no,
                conversions.spending_fields(request),
            )
        )
