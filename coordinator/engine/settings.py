"""Settings of the coordinator engine (the ``engine`` section of the coordinator's config)."""

from __future__ import annotations

from pydantic import Field

from meshkit.settings.config import Section


class EngineSettings(Section):
    """How the engine drives transactions: defaults of per-transaction options, retries and leases."""

    replica_id: str = Field(
        "", max_length=64, description="name of this replica in owner/actor columns (empty = host-pid)"
    )
    default_timeout_ms: int = Field(
        60_000, ge=10, description="TCC/MSG: a PREPARED transaction older than this is aborted/checked back"
    )
    default_retry_interval_ms: int = Field(1_000, ge=1, description="first backoff of a failed branch call")
    default_retry_limit: int = Field(
        10, ge=1, description="attempts of an op before saga gives up / confirm-cancel become stuck"
    )
    default_request_timeout_ms: int = Field(5_000, ge=10, description="deadline of one branch call")
    max_backoff_ms: int = Field(60_000, ge=1, description="cap of the exponential retry backoff")
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="backoff randomisation: +-this fraction")
    lease_ms: int = Field(
        10_000, ge=50, description="a driving replica owns a transaction this long (+ request timeout)"
    )
    max_concurrent_drives: int = Field(
        512, ge=1, description="transactions this replica drives at once (others wait for a slot)"
    )
    wait_poll_ms: int = Field(
        200, ge=10, description="Submit(wait_result): how often to re-read a transaction driven elsewhere"
    )
