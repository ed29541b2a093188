"""Settings of ``order_svc``: the common sections plus ``order`` and ``peers``."""

from __future__ import annotations

from pydantic import Field

from meshkit.config import MeshSettings, Section, ServerSettings
from meshkit.grpcutil import PeersSection

DEFAULT_PORT = 50051


class OrderServerSettings(ServerSettings):
    """The gRPC server, listening on order_svc's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class OrderSection(Section):
    """Order rules: the pay deadline and request limits."""

    pay_timeout_seconds: float = Field(1800.0, gt=0, description="CREATED orders not paid by then cancel")
    max_items: int = Field(100, ge=1, le=10_000, description="items in one PlaceOrder")
    max_quantity: int = Field(10_000, ge=1, description="largest quantity of one item")
    sweep_interval_seconds: float = Field(10.0, gt=0, description="how often overdue orders are swept")
    sweep_batch: int = Field(100, ge=1, le=10_000, description="overdue orders / stale requests per sweep")
    tx_timeout_seconds: float = Field(30.0, gt=0, description="timeout of the order's TCC transactions")
    request_timeout_seconds: float = Field(
        5.0, gt=0, description="deadline of each call to a peer (catalogue, payment, branch tries)"
    )
    place_wait_seconds: float = Field(
        30.0, gt=0, description="how long a duplicate PlaceOrder waits for the first one to finish"
    )


class OrderSettings(MeshSettings):
    """Everything ``order_svc`` reads."""

    server: OrderServerSettings = OrderServerSettings()
    order: OrderSection = OrderSection()
    peers: PeersSection = PeersSection()
