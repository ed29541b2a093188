"""Settings of ``pay_svc``: the common sections plus ``pay`` and ``peers``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from meshkit.config import MeshSettings, Section, ServerSettings
from meshkit.grpcutil import PeersSection

DEFAULT_PORT = 50053


class PayServerSettings(ServerSettings):
    """The gRPC server, listening on pay_svc's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class PaySection(Section):
    """Payments: the gateway callback signature key and the simulated gateway."""

    callback_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key of gateway callbacks (required to accept callbacks)"
    )
    payment_timeout_seconds: float = Field(1800.0, gt=0, description="how long a payment token is valid")
    gateway_delay_seconds: float = Field(0.0, ge=0, description="simulated gateway: wait before calling back")


class PaySettings(MeshSettings):
    """Everything ``pay_svc`` reads."""

    server: PayServerSettings = PayServerSettings()
    pay: PaySection = PaySection()
    peers: PeersSection = PeersSection()
