"""Settings of ``pay_svc``: the common sections plus ``pay`` and ``peers``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from meshkit.settings.config import MeshSettings, Section, ServerSettings
from meshkit.settings.peers import PeersSection

DEFAULT_PORT = 50053


class PayServerSettings(ServerSettings):
    """The gRPC server, listening on pay_svc's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class PaySection(Section):
    """Payments: the gateway callback signature key, the simulated gateway, the order notifier."""

    callback_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key of gateway callbacks (required to accept callbacks)"
    )
    simulator_enabled: bool = Field(
        False, description="serve SimulateGatewayPay (the local stack and tests; never production)"
    )
    gateway_delay_seconds: float = Field(0.0, ge=0, description="simulated gateway: wait before calling back")
    callback_window_seconds: float = Field(
        300.0, gt=0, description="a callback's timestamp may differ from now by at most this much"
    )
    notify_interval_seconds: float = Field(
        5.0, gt=0, description="order notifier: how often it retries payments the order was not told of"
    )
    notify_batch: int = Field(100, ge=1, le=10_000, description="order notifier: payments per round")
    order_call_seconds: float = Field(5.0, gt=0, description="deadline of one Order.PaymentSucceeded call")
    nonce_cleanup_interval_seconds: float = Field(
        60.0, gt=0, description="how often expired callback nonces are deleted"
    )
    nonce_cleanup_batch: int = Field(1000, ge=1, le=100_000, description="nonces deleted per statement")


class PaySettings(MeshSettings):
    """Everything ``pay_svc`` reads."""

    server: PayServerSettings = PayServerSettings()
    pay: PaySection = PaySection()
    peers: PeersSection = PeersSection()

    def required_secrets(self) -> dict[str, SecretStr]:
        """The common secrets plus the gateway callback key (without it no payment can succeed)."""
        return {**super().required_secrets(), "pay.callback_secret": self.pay.callback_secret}
