"""The ``meshpb.order.v1.Order`` servicer: convert the message, call the domain, convert back.

Domain errors become status codes in the server's error-mapping interceptor (:mod:`meshkit.status`).
Branch RPCs read the transaction context from the call's metadata and refuse one whose ``x-mesh-op``
is not the operation the method implements (the barrier's behaviour depends on it).
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from meshkit.barrier import Outcome
from meshkit.errors import InvalidArgument
from meshkit.txcontext import OP_KEY, Op, TxContext, require_context
from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2 as pb
from meshpb.order.v1 import order_pb2_grpc
from order_svc import convert
from order_svc.domain import OrderService, check_order_id

Context = grpc.aio.ServicerContext[Any, Any]

FLASH_UNIMPLEMENTED = "FlashBuy/GetFlashResult are not implemented yet (flash sale is a later task)"


def branch_context(context: Context, expected: Op) -> TxContext:
    """The transaction context of a branch call whose operation must be ``expected``."""
    ctx = require_context(context.invocation_metadata())
    if ctx.op is not expected:
        raise InvalidArgument(OP_KEY, f"this method implements {expected.value}, not {ctx.op.value}")
    return ctx


def reply(outcome: Outcome) -> common_pb2.BranchReply:
    """The branch reply noting what the barrier did."""
    return common_pb2.BranchReply(note=outcome.value)


class OrderServicer(order_pb2_grpc.OrderServicer):
    """Every Order RPC (FlashBuy and GetFlashResult answer UNIMPLEMENTED)."""

    def __init__(self, service: OrderService) -> None:
        self._service = service

    # ------------------------------------------------------------------ public

    async def PlaceOrder(self, request: pb.PlaceOrderRequest, context: Context) -> pb.PlaceOrderResponse:  # noqa: N802
        """Place one order per merchant in one TCC; idempotent on ``request_id``."""
        result = await self._service.place_order(convert.place_request(request))
        return pb.PlaceOrderResponse(order_ids=list(result.order_ids), gid=result.gid)

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.OrderInfo:  # noqa: N802
        """One visible order."""
        return convert.order_info(await self._service.get_order(request.order_id))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: Context) -> pb.ListOrdersResponse:  # noqa: N802
        """A user's orders, newest first, cursor-paged."""
        page = await self._service.list_orders(request.user_id, request.page.cursor, request.page.limit)
        return pb.ListOrdersResponse(
            orders=[convert.order_info(o) for o in page.orders], next_cursor=page.next_cursor
        )

    async def Pay(self, request: pb.PayRequest, context: Context) -> pb.PayResponse:  # noqa: N802
        """Pay with points (TCC) or start an external payment."""
        outcome = await self._service.pay(request.order_id, convert.channel_of(request.channel))
        return pb.PayResponse(
            payment_id=outcome.payment_id, token=outcome.token, status=convert.status_pb(outcome.status)
        )

    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.OrderInfo:  # noqa: N802
        """Cancel (CREATED) or refund (PAID) an order through the cancel chain."""
        return convert.order_info(await self._service.cancel(request.order_id, request.reason))

    async def Ship(self, request: pb.OrderIdRequest, context: Context) -> pb.OrderInfo:  # noqa: N802
        """PAID -> SHIPPED."""
        return convert.order_info(await self._service.ship(request.order_id))

    async def Complete(self, request: pb.OrderIdRequest, context: Context) -> pb.OrderInfo:  # noqa: N802
        """SHIPPED -> COMPLETED."""
        return convert.order_info(await self._service.complete(request.order_id))

    async def PaymentSucceeded(  # noqa: N802
        self, request: pb.PaymentSucceededRequest, context: Context
    ) -> pb.PaymentSucceededResponse:
        """pay_svc reports a verified external payment."""
        verdict = await self._service.payment_succeeded(
            request.order_id, request.payment_id, request.amount_cents
        )
        return pb.PaymentSucceededResponse(
            accepted=verdict.accepted, status=convert.status_pb(verdict.status)
        )

    async def FlashBuy(self, request: pb.FlashBuyRequest, context: Context) -> pb.FlashBuyResponse:  # noqa: N802
        """Not implemented yet."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, FLASH_UNIMPLEMENTED)

    async def GetFlashResult(self, request: pb.GetFlashResultRequest, context: Context) -> pb.FlashResult:  # noqa: N802
        """Not implemented yet."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, FLASH_UNIMPLEMENTED)

    async def Audit(self, request: common_pb2.AuditRequest, context: Context) -> pb.OrderAudit:  # noqa: N802
        """Every visible order for ``meshctl audit``."""
        return pb.OrderAudit(orders=[convert.audit_row(o) for o in await self._service.audit()])

    # ------------------------------------------------------------------ branches

    async def TryCreate(self, request: pb.CreateOrdersBranch, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """Insert the orders hidden."""
        ctx = branch_context(context, Op.TRY)
        request_id, orders = convert.new_orders(request)
        return reply(await self._service.branches.try_create(ctx, request_id, orders))

    async def ConfirmCreate(self, request: pb.CreateOrdersBranch, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """Make the orders visible as CREATED."""
        ctx = branch_context(context, Op.CONFIRM)
        _, orders = convert.new_orders(request)
        return reply(await self._service.branches.confirm_create(ctx, orders))

    async def CancelCreate(self, request: pb.CreateOrdersBranch, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """Void the orders."""
        ctx = branch_context(context, Op.CANCEL)
        _, orders = convert.new_orders(request)
        return reply(await self._service.branches.cancel_create(ctx, orders))

    async def TryMarkPaid(self, request: pb.MarkPaidBranch, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """Take the pay lock."""
        ctx = branch_context(context, Op.TRY)
        return reply(await self._service.branches.try_mark_paid(ctx, convert.mark_paid(request)))

    async def ConfirmMarkPaid(self, request: pb.MarkPaidBranch, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """CREATED -> PAID."""
        ctx = branch_context(context, Op.CONFIRM)
        return reply(await self._service.branches.confirm_mark_paid(ctx, convert.mark_paid(request)))

    async def CancelMarkPaid(self, request: pb.MarkPaidBranch, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """Release the pay lock."""
        ctx = branch_context(context, Op.CANCEL)
        return reply(await self._service.branches.cancel_mark_paid(ctx, convert.mark_paid(request)))

    async def QueryPrepared(self, request: pb.OrderIdRequest, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """The cancel MSG's check-back."""
        ctx = branch_context(context, Op.MSG)
        await self._service.branches.query_prepared(ctx)
        return common_pb2.BranchReply(note="committed")

    async def FinishRefund(self, request: pb.OrderIdRequest, context: Context) -> common_pb2.BranchReply:  # noqa: N802
        """REFUNDING -> REFUNDED."""
        ctx = branch_context(context, Op.ACTION)
        order_id = check_order_id(request.order_id)
        return reply(await self._service.branches.finish_refund(ctx, order_id))
