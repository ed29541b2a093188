"""The simulated external gateway: signs a callback the way a real one would and delivers it.

Delivery goes through :class:`pay_svc.adapters.ports.CallbackPort` (in production: pay_svc's own ``Callback``
RPC over a real gRPC channel), so demos and tests exercise the real, verified callback path. With
``pay.gateway_delay_seconds`` > 0 the callback is sent in the background after that delay (as an
asynchronous gateway would) and ``SimulateGatewayPay`` answers the payment as it is now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import replace

from meshkit.errors import MeshError
from meshkit.runtime.clock import Clock, now_ms
from pay_svc.adapters.ports import CallbackPort
from pay_svc.config import PaySection
from pay_svc.gateway.signing import sign
from pay_svc.payments import validation
from pay_svc.payments.domain import PayDomain, signed_fields
from pay_svc.payments.values import CallbackNotice, Payment, PaymentStatus

log = logging.getLogger(__name__)

NONCE_BYTES = 16


def trade_no_of(payment: Payment) -> str:
    """The gateway's id of a payment: stable, so a re-sent callback names the same trade."""
    return f"sim-{payment.payment_id}"


class GatewaySimulator:
    """Plays the external gateway for ``SimulateGatewayPay``."""

    def __init__(self, domain: PayDomain, sink: CallbackPort, clock: Clock, settings: PaySection) -> None:
        self._domain = domain
        self._sink = sink
        self._clock = clock
        self._settings = settings
        self._pending: set[asyncio.Task[None]] = set()

    def notice(self, payment: Payment, outcome: PaymentStatus) -> CallbackNotice:
        """A correctly signed callback reporting ``outcome`` for ``payment`` (fresh nonce, now)."""
        unsigned = CallbackNotice(
            payment_id=str(payment.payment_id),
            order_id=payment.order_id,
            amount_cents=payment.amount_cents,
            trade_no=trade_no_of(payment),
            status=outcome,
            timestamp_ms=now_ms(self._clock),
            nonce=secrets.token_hex(NONCE_BYTES),
            signature="",
        )
        secret = self._settings.callback_secret.get_secret_value()
        signature = sign(secret, signed_fields(unsigned, outcome))
        return replace(unsigned, signature=signature)

    async def pay(self, payment_id: str, outcome: PaymentStatus | None) -> Payment:
        """Have the gateway report ``outcome`` (default SUCCEEDED) for the payment; answers the payment.

        Only with ``pay.simulator_enabled``; otherwise :class:`NotImplementedError` (``UNIMPLEMENTED``).

        Any payment may be reported again (a gateway re-sends); the callback decides what changes.
        """
        if not self._settings.simulator_enabled:
            raise NotImplementedError("SimulateGatewayPay is off (pay.simulator_enabled)")
        pid = validation.check_payment_id("payment_id", payment_id)
        chosen = validation.outcome(outcome)
        payment = await self._domain.payment(pid)
        if self._settings.gateway_delay_seconds > 0:
            task = asyncio.get_running_loop().create_task(self._deliver_later(payment, chosen))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return payment
        await self._sink.deliver(self.notice(payment, chosen))
        return await self._domain.payment(pid)

    async def _deliver_later(self, payment: Payment, outcome: PaymentStatus) -> None:
        await self._clock.sleep(self._settings.gateway_delay_seconds)
        try:
            await self._sink.deliver(self.notice(payment, outcome))
        except MeshError as exc:
            log.warning(
                "simulated gateway: callback for payment %s refused: %s",
                payment.payment_id,
                exc,
                extra={"payment_id": str(payment.payment_id), "order_id": payment.order_id},
            )

    async def close(self) -> None:
        """Cancel callbacks still waiting for their delay."""
        tasks = list(self._pending)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
