"""What the domain needs from outside, as protocols (gRPC implementations: :mod:`~.grpc_clients`)."""

from __future__ import annotations

from typing import Protocol

from pay_svc.payments.values import CallbackNotice


class OrderPort(Protocol):
    """order_svc as pay_svc sees it."""

    async def payment_succeeded(self, order_id: str, payment_id: str, amount_cents: int) -> bool:
        """Tell order_svc a payment succeeded; True = the order took it (PAID).

        False = the order refused it (no longer payable, e.g. CANCELLED): the money must go back.

        Raises a :class:`meshkit.errors.MeshError` when order_svc could not answer (retry later).
        """
        ...

    async def order_status(self, order_id: str) -> str | None:
        """The order's status name (``"PAID"``, ``"CANCELLED"``, ...); None when order_svc has no such order.

        Raises a :class:`meshkit.errors.MeshError` when order_svc could not answer.
        """
        ...


class CallbackPort(Protocol):
    """Where the simulated gateway delivers its callbacks (pay_svc's own Callback RPC)."""

    async def deliver(self, notice: CallbackNotice) -> None:
        """Deliver one signed callback; raises a :class:`meshkit.errors.MeshError` when it is refused."""
        ...
