"""Settings of ``points_svc``: the common sections plus ``points`` and ``peers``."""

from __future__ import annotations

from pydantic import Field

from meshkit.settings.config import MeshSettings, Section, ServerSettings
from meshkit.settings.peers import PeersSection

DEFAULT_PORT = 50054
# The hard ceiling of one amount (grant, freeze, deduct, refund); 10^12 points = 10^10 currency units.
AMOUNT_CEILING = 10**12


class PointsServerSettings(ServerSettings):
    """The gRPC server, listening on points_svc's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class PointsSection(Section):
    """Limits of the points service."""

    max_amount: int = Field(
        AMOUNT_CEILING,
        ge=1,
        le=AMOUNT_CEILING,
        description="largest amount in one grant/freeze/deduct/refund (at most 10^12)",
    )


class PointsSettings(MeshSettings):
    """Everything ``points_svc`` reads."""

    server: PointsServerSettings = PointsServerSettings()
    points: PointsSection = PointsSection()
    peers: PeersSection = PeersSection()
