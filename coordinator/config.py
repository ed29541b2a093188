"""Settings of the coordinator: the common sections plus the engine defaults (``coordinator``)."""

from __future__ import annotations

from pydantic import Field

from meshkit.settings.config import MeshSettings, Section, ServerSettings

DEFAULT_PORT = 50050


class CoordinatorServerSettings(ServerSettings):
    """The gRPC server, listening on the coordinator's own default port."""

    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0 = pick a free one)")


class CoordinatorSection(Section):
    """Engine defaults; a transaction's own ``TxOptions`` override the per-transaction ones."""

    default_timeout_seconds: float = Field(60.0, gt=0, description="TCC: PREPARED longer than this aborts")
    retry_interval_seconds: float = Field(1.0, gt=0, description="first retry backoff of a branch op")
    max_retry_interval_seconds: float = Field(60.0, gt=0, description="cap of the exponential backoff")
    retry_limit: int = Field(
        10, ge=1, description="saga/msg: attempts before giving up; confirm/cancel: stuck"
    )
    request_timeout_seconds: float = Field(3.0, gt=0, description="deadline of one branch call")
    sweep_interval_seconds: float = Field(3.0, gt=0, description="how often the store sweeper finds due work")
    lease_seconds: float = Field(
        5.0,
        gt=0,
        description="how long a replica owns the work it claimed; renewed each round, plus the call deadline",
    )
    retry_jitter: float = Field(0.2, ge=0, le=1, description="backoff randomisation: +- this fraction")
    sweep_batch: int = Field(100, ge=1, le=10_000, description="due transactions claimed per sweep")
    max_concurrent_drives: int = Field(512, ge=1, description="transactions one replica drives at once")
    finished_retention_days: float = Field(
        7.0, gt=0, description="finished transactions (ops, history) are deleted this long after they end"
    )
    retention_interval_seconds: float = Field(
        3600.0, gt=0, description="how often the retention cleanup runs"
    )
    retention_batch: int = Field(
        500, ge=1, le=10_000, description="transactions deleted per cleanup statement"
    )
    replica_id: str = Field(
        "",
        max_length=64,
        description=(
            "stable name of this replica (owner of its leases; a restart with the same id takes them over"
            " at once). Never shared by two live replicas. Empty = <hostname>:<server.port>"
        ),
    )


class CoordinatorSettings(MeshSettings):
    """Everything the coordinator reads."""

    server: CoordinatorServerSettings = CoordinatorServerSettings()
    coordinator: CoordinatorSection = CoordinatorSection()
