"""Where a process finds the other services: the ``peers`` settings section.

Business services talk to each other and to the coordinator over gRPC only (DESIGN.md section 2);
their addresses come from settings (``MESH_PEERS__STOCK=host:port`` ...). The defaults are the
``meshctl up`` layout with the default base port 50050.
"""

from __future__ import annotations

from pydantic import Field

from meshkit.settings.config import Section


class PeersSection(Section):
    """gRPC addresses (``host:port``) of the coordinator and the business services."""

    coordinator: str = Field("127.0.0.1:50050", min_length=3, description="the coordinator")
    order: str = Field("127.0.0.1:50051", min_length=3, description="order_svc")
    stock: str = Field("127.0.0.1:50052", min_length=3, description="stock_svc")
    pay: str = Field("127.0.0.1:50053", min_length=3, description="pay_svc")
    points: str = Field("127.0.0.1:50054", min_length=3, description="points_svc")
