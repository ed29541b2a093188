"""Settings of ``order_svc``: the common sections plus ``order`` and ``peers``.

The flash sale's keys live in the ``order`` section with the prefix ``flash_`` (a section of its own
would have to be known to every process of the mesh, see ``meshkit.settings.config.MESH_SECTIONS``). Besides
``db``, order_svc reads ``redis`` (flash quotas, per-user flags and rate counters) and ``nats`` (pay
deadlines, the flash work queue and its broadcasts).
"""

from __future__ import annotations

from pydantic import Field

from meshkit.settings.config import MeshSettings, Section, ServerSettings
from meshkit.settings.peers import PeersSection

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
    flash_namespace: str = Field(
        "flash",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="flash names: Redis keys '{<ns>:<sale>}:*', NATS MESH_FLASH_<NS> and mesh.flash.<ns>.*",
    )
    flash_rate_limit_per_second: int = Field(
        5,
        ge=1,
        le=10_000,
        description="FlashBuy calls one user may make per second (more: RESOURCE_EXHAUSTED)",
    )
    flash_sold_out_ttl_seconds: float = Field(
        5.0, gt=0, description="how long a node trusts its local sold-out flag when no broadcast clears it"
    )
    flash_workers: int = Field(8, ge=1, le=256, description="flash jobs one replica places at once")
    flash_ack_wait_seconds: float = Field(
        30.0,
        ge=1,
        description="a flash job its worker stopped acknowledging (crash) is redelivered after this",
    )
    flash_retry_seconds: float = Field(
        1.0, gt=0, description="first redelivery delay of a flash job that failed transiently (doubles)"
    )
    flash_max_retry_seconds: float = Field(
        30.0, gt=0, description="longest redelivery delay of a flash job that keeps failing transiently"
    )
    flash_sweep_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="how often tickets whose job was never queued (or whose give-back is owed) are handled",
    )
    flash_requeue_after_seconds: float = Field(
        5.0, gt=0, description="age after which an unqueued PENDING ticket is queued by the sweeper"
    )
    flash_redis_retention_seconds: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="a sale's Redis keys expire this long after its end (reloaded on use)",
    )


class OrderSettings(MeshSettings):
    """Everything ``order_svc`` reads."""

    server: OrderServerSettings = OrderServerSettings()
    order: OrderSection = OrderSection()
    peers: PeersSection = PeersSection()
