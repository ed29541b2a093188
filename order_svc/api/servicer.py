"""The ``meshpb.order.v1.Order`` servicer: convert the message, call the domain, convert back.

Domain errors become status codes in the server's error-mapping interceptor (:mod:`meshkit.rpc.status`).
Branch RPCs read the transaction context from the call's metadata and refuse one whose ``x-mesh-op``
is not the operation the method implements (the barrier's behaviour depends on it).
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from meshkit.barrier import Outcome
from meshkit.errors import InvalidArgument
from meshkit.observability.logctx import tag
from meshkit.tx.context import OP_KEY, Op, TxContext, require_context
from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2 as pb
from meshpb.order.v1 import order_pb2_grpc
from order_svc.api import conversions, flash_conversions
from order_svc.flash.service import FlashService
from order_svc.service import OrderService, check_order_id

Context = grpc.aio.ServicerContext[Any, Any]
MAX_TAG = 64


def branch_context(context: Context, expected: Op) -> TxContext:
    """The transaction context of a branch call whose operation must be ``expected``."""
    ctx = require_context(context.invocation_metadata())
    if ctx.op is not expected:
        raise InvalidArgument(OP_KEY, f"this method implements {expected.value}, not {ctx.op.value}")
    return ctx


def tagged(order_id: str) -> str:
    """``order_id``, also tagged on every log line of this call if it is a well-formed order id.

    Not checked here (the service refuses a bad one, naming its own field); a bad one is tagged as its
    clipped ``ascii()`` form, so no client-chosen character reaches a log line raw.
    """
    try:
        tag(order_id=check_order_id(order_id))
    except InvalidArgument:
        tag(order_id=ascii(order_id[:MAX_TAG]))
    return order_id


def reply(outcome: Outcome) -> common_pb2.BranchReply:
    """The branch reply noting what the barrier did."""
    return common_pb2.BranchReply(note=outcome.value)


class OrderServicer(order_pb2_grpc.OrderServicer):
    """Every Order RPC; the flash sale ones go to the :class:`FlashService`."""

    def __init__(self, service: OrderService, flash: FlashService) -> None:
        self._service = service
        self._flash = flash

    # ------------------------------------------------------------------ public

    async def PlaceOrder(self, request: pb.PlaceOrderRequest, context: Context) -> pb.PlaceOrderResponse:
        """Place one order per merchant in one TCC; idempotent on ``request_id``."""
        result = await self._service.place_order(conversions.place_request(request))
        tag(order_id=",".join(result.order_ids))
        return pb.PlaceOrderResponse(order_ids=list(result.order_ids), gid=result.gid)

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.OrderInfo:
        """One visible order."""
        return conversions.order_info(await self._service.get_order(tagged(request.order_id)))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: Context) -> pb.ListOrdersResponse:
        """A user's orders, newest first, cursor-paged."""
        page = await self._service.list_orders(request.user_id, request.page.cursor, request.page.limit)
        return pb.ListOrdersResponse(
            orders=[conversions.order_info(o) for o in page.orders], next_cursor=page.next_cursor
        )

    async def Pay(self, request: pb.PayRequest, context: Context) -> pb.PayResponse:
        """Pay with points (TCC) or start an external payment."""
        outcome = await self._service.pay(tagged(request.order_id), conversions.channel_of(request.channel))
        return pb.PayResponse(
            payment_id=outcome.payment_id, token=outcome.token, status=conversions.status_pb(outcome.status)
        )

    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.OrderInfo:
        """Cancel (CREATED) or refund (PAID) an order through the cancel chain."""
        return conversions.order_info(await self._service.cancel(tagged(request.order_id), request.reason))

    async def Ship(self, request: pb.OrderIdRequest, context: Context) -> pb.OrderInfo:
        """PAID -> SHIPPED."""
        return conversions.order_info(await self._service.ship(tagged(request.order_id)))

    async def Complete(self, request: pb.OrderIdRequest, context: Context) -> pb.OrderInfo:
        """SHIPPED -> COMPLETED."""
        return conversions.order_info(await self._service.complete(tagged(request.order_id)))

    async def PaymentSucceeded(
        self, request: pb.PaymentSucceededRequest, context: Context
    ) -> pb.PaymentSucceededResponse:
        """pay_svc reports a verified external payment."""
        verdict = await self._service.payment_succeeded(
            tagged(request.order_id), request.payment_id, request.amount_cents
        )
        return pb.PaymentSucceededResponse(
            accepted=verdict.accepted, status=conversions.status_pb(verdict.status)
        )

    async def FlashBuy(self, request: pb.FlashBuyRequest, context: Context) -> pb.FlashBuyResponse:
        """Take units of a flash sale: a ticket whose order is placed asynchronously."""
        answer = await self._flash.buy(flash_conversions.buy_request(request))
        return pb.FlashBuyResponse(ticket=answer.ticket, state=flash_conversions.state_pb(answer.state))

    async def GetFlashResult(self, request: pb.GetFlashResultRequest, context: Context) -> pb.FlashResult:
        """A ticket's state: pending, succeeded with the order id, failed with the reason."""
        return flash_conversions.result_pb(await self._flash.result(request.ticket))

    async def PutFlashSale(self, request: pb.PutFlashSaleRequest, context: Context) -> pb.FlashSale:
        """Admin: create a flash sale (idempotent with the same terms)."""
        return flash_conversions.sale_pb(await self._flash.put_sale(flash_conversions.sale(request)))

    async def GetFlashSale(self, request: pb.GetFlashSaleRequest, context: Context) -> pb.FlashSale:
        """A flash sale with its units left and tickets per state."""
        return flash_conversions.sale_pb(await self._flash.get_sale(request.sale_id))

    async def Audit(self, request: common_pb2.AuditRequest, context: Context) -> pb.OrderAudit:
        """Every visible order for ``meshctl audit``."""
        return pb.OrderAudit(orders=[conversions.audit_row(o) for o in await self._service.audit()])

    # ------------------------------------------------------------------ branches

    async def TryCreate(self, request: pb.CreateOrdersBranch, context: Context) -> common_pb2.BranchReply:
        """Insert the orders hidden."""
        ctx = branch_context(context, Op.TRY)
        request_id, orders = conversions.new_orders(request)
        return reply(await self._service.branches.try_create(ctx, request_id, orders))

    async def ConfirmCreate(self, request: pb.CreateOrdersBranch, context: Context) -> common_pb2.BranchReply:
        """Make the orders visible as CREATED."""
        ctx = branch_context(context, Op.CONFIRM)
        _, orders = conversions.new_orders(request)
        return reply(await self._service.branches.confirm_create(ctx, orders))

    async def CancelCreate(self, request: pb.CreateOrdersBranch, context: Context) -> common_pb2.BranchReply:
        """Void the orders."""
        ctx = branch_context(context, Op.CANCEL)
        _, orders = conversions.new_orders(request)
        return reply(await self._service.branches.cancel_create(ctx, orders))

    async def TryMarkPaid(self, request: pb.MarkPaidBranch, context: Context) -> common_pb2.BranchReply:
        """Take the pay lock."""
        ctx = branch_context(context, Op.TRY)
        tagged(request.order_id)
        return reply(await self._service.branches.try_mark_paid(ctx, conversions.mark_paid(request)))

    async def ConfirmMarkPaid(self, request: pb.MarkPaidBranch, context: Context) -> common_pb2.BranchReply:
        """CREATED -> PAID."""
        ctx = branch_context(context, Op.CONFIRM)
        tagged(request.order_id)
        return reply(await self._service.branches.confirm_mark_paid(ctx, conversions.mark_paid(request)))

    async def CancelMarkPaid(self, request: pb.MarkPaidBranch, context: Context) -> common_pb2.BranchReply:
        """Release the pay lock."""
        ctx = branch_context(context, Op.CANCEL)
        tagged(request.order_id)
        return reply(await self._service.branches.cancel_mark_paid(ctx, conversions.mark_paid(request)))

    async def QueryPrepared(self, request: pb.OrderIdRequest, context: Context) -> common_pb2.BranchReply:
        """The cancel MSG's check-back."""
        ctx = branch_context(context, Op.MSG)
        await self._service.branches.query_prepared(ctx)
        return common_pb2.BranchReply(note="committed")

    async def FinishRefund(self, request: pb.OrderIdRequest, context: Context) -> common_pb2.BranchReply:
        """REFUNDING -> REFUNDED."""
        ctx = branch_context(context, Op.ACTION)
        order_id = check_order_id(tagged(request.order_id))
        return reply(await self._service.branches.finish_refund(ctx, order_id))
