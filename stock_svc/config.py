"""Settings of ``stock_svc``: the common sections plus ``stock`` and ``peers``.

The common sections it reads: ``db`` (durable stock, stock log, barrier table), ``redis`` (hot stock and
the Redis barrier), ``barrier`` (barrier retention and cleanup), ``server``, ``log``.
"""

from __future__ import annotations

from pydantic import Field

from meshkit.settings.config import MeshSettings, Section, ServerSettings
from meshkit.settings.peers import PeersSection

DEFAULT_PORT = 50052
# DESIGN.md section 3: quantities are 1..10 000. Configured limits can only be stricter.
HARD_MAX_QUANTITY = 10_000
HARD_MAX_ITEMS = 10_000


class StockServerSettings(ServerSettings):
    """The gRPC server, listening on stock_svc's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class StockSection(Section):
    """Limits of the stock service and the layout of its Redis keys."""

    max_items_per_request: int = Field(
        100, ge=1, le=HARD_MAX_ITEMS, description="SKUs in one reserve call (and in one GetSkus call)"
    )
    max_quantity: int = Field(
        HARD_MAX_QUANTITY,
        ge=1,
        le=HARD_MAX_QUANTITY,
        description="largest quantity of one SKU in one reserve call or one PutSku",
    )
    redis_namespace: str = Field(
        "stock",
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Redis keys are '{<namespace>}:sku:<sku>' (the namespace is the hash tag)",
    )
    load_attempts: int = Field(
        3, ge=1, le=20, description="tries of a Redis stock script whose SKU hash vanished meanwhile"
    )
    reconcile_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="how often the reconciler repairs drift between the database and Redis (also at start)",
    )
    reconcile_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="an owed PutSku Redis half younger than this is left to the call that is finishing it",
    )
    reconcile_batch: int = Field(
        1000, ge=1, le=100_000, description="owed PutSku Redis halves the reconciler finishes per round"
    )
    reconcile_max_changes: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="log rows one SKU check may read; a SKU with more is left for a later round",
    )
    restock_marker_ttl_seconds: float = Field(
        7 * 86_400.0,
        ge=3600.0,
        description="life of the Redis marker that makes a PutSku's Redis half apply once per request_id",
    )


class StockSettings(MeshSettings):
    """Everything ``stock_svc`` reads."""

    server: StockServerSettings = StockServerSettings()
    stock: StockSection = StockSection()
    peers: PeersSection = PeersSection()
