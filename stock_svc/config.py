"""Settings of ``stock_svc``: the common sections plus ``stock`` and ``peers``."""

from __future__ import annotations

from pydantic import Field

from meshkit.config import MeshSettings, Section, ServerSettings
from meshkit.grpcutil import PeersSection

DEFAULT_PORT = 50052


class StockServerSettings(ServerSettings):
    """The gRPC server, listening on stock_svc's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class StockSection(Section):
    """Limits of the stock service."""

    max_items_per_request: int = Field(100, ge=1, le=10_000, description="SKUs in one reserve call")
    max_quantity: int = Field(10_000, ge=1, description="largest quantity of one SKU in one call")


class StockSettings(MeshSettings):
    """Everything ``stock_svc`` reads."""

    server: StockServerSettings = StockServerSettings()
    stock: StockSection = StockSection()
    peers: PeersSection = PeersSection()
