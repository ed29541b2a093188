"""The ``meshpb.pay.v1.Pay`` servicer: convert the message, call the domain, convert back.

Domain errors become status codes in the server's error-mapping interceptor (:mod:`meshkit.rpc.status`).
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from meshkit.tx.context import require_context
from meshpb.common.v1 import common_pb2
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from pay_svc.api import conversions
from pay_svc.gateway.simulator import GatewaySimulator
from pay_svc.payments.domain import PayDomain

Context = grpc.aio.ServicerContext[Any, Any]


class PayServicer(pay_pb2_grpc.PayServicer):
    """CreatePayment, Callback, GetPayment, Refund, RefundBranch, SimulateGatewayPay and Audit."""

    def __init__(self, domain: PayDomain, gateway: GatewaySimulator) -> None:
        self._domain = domain
        self._gateway = gateway

    async def CreatePayment(self, request: pay_pb2.CreatePaymentRequest, context: Context) -> pay_pb2.Payment:
        """A PENDING payment for the order (the existing one on a repeat)."""
        return conversions.payment_pb(await self._domain.create_payment(conversions.create_command(request)))

    async def Callback(self, request: pay_pb2.CallbackRequest, context: Context) -> pay_pb2.CallbackResponse:
        """The gateway's signed notification."""
        return conversions.callback_response(
            await self._domain.handle_callback(conversions.callback_notice(request))
        )

    async def GetPayment(self, request: pay_pb2.GetPaymentRequest, context: Context) -> pay_pb2.Payment:
        """A payment by payment id or order id."""
        return conversions.payment_pb(await self._domain.get_payment(conversions.lookup(request)))

    async def Refund(self, request: pay_pb2.RefundRequest, context: Context) -> pay_pb2.RefundRecord:
        """Refund a payment in full (idempotent per out_refund_no, at most once per payment)."""
        return conversions.refund_record(await self._domain.refund(conversions.refund_command(request)))

    async def RefundBranch(self, request: pay_pb2.RefundRequest, context: Context) -> common_pb2.BranchReply:
        """Refund as a MSG branch of the cancel chain, through the SQL barrier."""
        ctx = require_context(context.invocation_metadata())
        note = await self._domain.refund_branch(ctx, conversions.refund_command(request))
        return conversions.branch_reply(note)

    async def SimulateGatewayPay(
        self, request: pay_pb2.SimulateGatewayPayRequest, context: Context
    ) -> pay_pb2.Payment:
        """Play the gateway: deliver a signed callback to our own Callback; answer the payment."""
        outcome = conversions.status_from_pb(request.outcome, "outcome")
        return conversions.payment_pb(await self._gateway.pay(request.payment_id, outcome))

    async def Audit(self, request: common_pb2.AuditRequest, context: Context) -> pay_pb2.PayAudit:
        """Every payment with its refunds."""
        return conversions.audit(await self._domain.audit())
