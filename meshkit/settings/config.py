"""Typed settings shared by every process: defaults < YAML file < ``MESH_<SECTION>__<KEY>`` environment.

Each process defines one settings class (a subclass of :class:`MeshSettings` adding its own sections),
builds it once in ``__main__`` with :func:`load_settings`, and passes it down. Nothing reads the
environment anywhere else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from meshkit.observability.redact import redact_urls
from meshkit.settings.urls import check_db_url, check_nats_urls, check_redis_url

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
    """The gRPC server of this process."""

    host: str = Field("127.0.0.1", description="address to listen on ('0.0.0.0' in a container)")
    port: int = Field(50050, ge=0, le=65535, description="gRPC port (0 = pick a free one)")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port (0 = off)")
    grace_seconds: float = Field(5.0, ge=0, description="SIGTERM: time in-flight calls get to finish")
    drain_seconds: float = Field(
        0.0,
        ge=0,
        le=300,
        description="SIGTERM: health NOT_SERVING this long (calls still served) before the server stops",
    )
    max_connection_age_seconds: float = Field(
        0.0,
        ge=0,
        description="close client connections this old (0 = never), so clients re-resolve and spread",
    )
    max_request_bytes: int = Field(MAX_REQUEST_BYTES, ge=1024, description="largest accepted request body")
    default_deadline_seconds: float = Field(30.0, gt=0, description="deadline for calls that carry none")
    worker_id: int = Field(0, ge=0, le=1023, description="snowflake worker id, unique per replica")
    store_probe_interval_seconds: float = Field(
        5.0,
        ge=0,
        description="how often the required stores are pinged; health NOT_SERVING while one fails (0 = off)",
    )
    store_probe_timeout_seconds: float = Field(2.0, gt=0, description="a store ping slower than this fails")


class DbSettings(Section):
    """The process's own database (SQLite file by default, MySQL/MariaDB in production)."""

    url: str = Field(
        "sqlite+aiosqlite:///./mesh.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or mysql+aiomysql://user:pw@host/db",
    )
    pool_size: int = Field(10, ge=1, le=200, description="connection pool size (MySQL)")
    echo: bool = Field(False, description="log every SQL statement")

    migrate_on_start: bool = Field(
        True,
        description="migrate at start (off: `python -m <process> migrate` first; an older schema stops it)",
    )

    _url_shape = field_validator("url")(check_db_url)


class RedisSettings(Section):
    """Redis for hot data (stock, flash sale flags, the Redis barrier)."""

    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// URL")
    persistence_check: Literal["warn", "refuse", "off"] = Field(
        "warn",
        description="stock_svc's start-up check of AOF on and maxmemory-policy noeviction: warn, refuse, off",
    )

    _url_shape = field_validator("url")(check_redis_url)


class NatsSettings(Section):
    """NATS JetStream for timers (scheduled messages) and broadcasts."""

    url: str = Field(
        "nats://127.0.0.1:4222", description="nats:// or tls:// URL (comma-separated for a cluster)"
    )
    enabled: bool = Field(True, description="off: rely on the store sweepers alone")
    stream_replicas: int = Field(
        1, ge=1, le=5, description="replicas of every JetStream stream the mesh creates (3 on a cluster)"
    )
    creds_file: str = Field("", description="NATS .creds file (user JWT + NKey seed); empty = none")
    user: str = Field("", description="user name (with password); empty = none")
    password: SecretStr = Field(SecretStr(""), description="password of user")
    token: SecretStr = Field(SecretStr(""), description="authentication token; empty = none")
    tls: bool = Field(False, description="TLS to the servers (implied by tls:// URLs and the tls_* files)")
    tls_ca_file: str = Field(
        "", description="CA bundle that signs the servers' certificates (empty = system)"
    )
    tls_cert_file: str = Field("", description="client certificate (mutual TLS), with tls_key_file")
    tls_key_file: str = Field("", description="private key of tls_cert_file")
    tls_hostname: str = Field("", description="server name to verify (empty = each server's host)")

    _url_shape = field_validator("url")(check_nats_urls)

    @model_validator(mode="after")
    def _one_credential(self) -> NatsSettings:
        """At most one way to authenticate; a user comes with a password, a certificate with its key."""
        kinds = [
            name
            for name, given in (
                ("creds_file", bool(self.creds_file)),
                ("user/password", bool(self.user or self.password.get_secret_value())),
                ("token", bool(self.token.get_secret_value())),
            )
            if given
        ]
        if len(kinds) > 1:
            raise ValueError(f"give one NATS credential, not {' and '.join(kinds)}")
        if bool(self.user) != bool(self.password.get_secret_value()):
            raise ValueError("user and password go together")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @property
    def servers(self) -> list[str]:
        """The server URLs of ``url``."""
        return [server.strip() for server in self.url.split(",") if server.strip()]

    @property
    def uses_tls(self) -> bool:
        """True when the connection must use TLS."""
        files = (self.tls_ca_file, self.tls_cert_file, self.tls_hostname)
        return self.tls or any(files) or any(s.lower().startswith("tls://") for s in self.servers)


class AdminSettings(Section):
    """The operators' admin token (the coordinator's Admin service and each service's admin RPCs)."""

    token: SecretStr = Field(
        SecretStr(""), description="bearer token of the admin RPCs (empty = they are all refused)"
    )


class AuthSettings(Section):
    """Mesh credentials: the shared secret that signs service-to-service and coordinator->branch calls."""

    mesh_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC key of the x-mesh-auth header (empty = send none, refuse every mesh-only RPC)",
    )
    max_skew_seconds: float = Field(
        300.0, gt=0, le=3600, description="a signature older or newer than this is refused"
    )


class DevSettings(Section):
    """Development switches; never on in production."""

    allow_insecure: bool = Field(
        False,
        description="start with an empty admin.token / auth.mesh_secret / pay.callback_secret, or SQLite "
        "inside Kubernetes (the local stack and tests)",
    )


class LogSettings(Section):
    """Logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="root log level")
    json_format: bool | None = Field(None, alias="json", description="JSON lines (default: when not a TTY)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TracingSettings(Section):
    """OpenTelemetry tracing (off by default): a span for every served call, exported over OTLP.

    Off or on, the caller's ``traceparent`` is carried into the transactions a service starts and its
    trace id is on every log line; on, the spans are exported too.
    """

    enabled: bool = Field(False, description="export spans over OTLP/gRPC")
    otlp_endpoint: str = Field(
        "http://127.0.0.1:4317", description="the OTLP/gRPC collector (an OpenTelemetry Collector, Jaeger)"
    )
    insecure: bool = Field(True, description="plaintext to the collector (in-cluster); False = TLS")
    service_name: str = Field("", description="the spans' service.name (empty: the process name)")
    sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="fraction of new traces sampled (a caller's decision is kept)"
    )


class BarrierSettings(Section):
    """The background cleanup of the subtransaction barrier (SQL table and Redis entries)."""

    retention_days: float = Field(
        7.0, gt=0, description="rows older than this go once the coordinator says their transaction is final"
    )
    cleanup_interval_seconds: float = Field(3600.0, gt=0, description="how often the cleanup runs")
    cleanup_batch: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="old rows (Redis: gids) per batch: one coordinator call, one delete",
    )


class StoreSettings(Section):
    """The store runner (meshkit.store): the hot path that runs units of work on the own database."""

    max_group: int = Field(
        256, ge=1, le=10_000, description="SQLite: most units committed together in one transaction"
    )
    readers: int = Field(
        2, ge=1, le=64, description="SQLite: reader connections (threads) for read-only units"
    )
    pool_size: int = Field(10, ge=1, le=200, description="MySQL/MariaDB: connections (threads) running units")


class MeshSettings(BaseSettings):
    """Settings every saga-mesh process has; processes subclass it to add their own sections."""

    model_config = SettingsConfigDict(
        env_prefix="MESH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    server: ServerSettings = ServerSettings()
    db: DbSettings = DbSettings()
    redis: RedisSettings = RedisSettings()
    nats: NatsSettings = NatsSettings()
    admin: AdminSettings = AdminSettings()
    auth: AuthSettings = AuthSettings()
    log: LogSettings = LogSettings()
    tracing: TracingSettings = TracingSettings()
    barrier: BarrierSettings = BarrierSettings()
    store: StoreSettings = StoreSettings()
    dev: DevSettings = DevSettings()

    def required_secrets(self) -> dict[str, SecretStr]:
        """Secrets this process will not start without (by setting name), unless ``dev.allow_insecure``."""
        return {"admin.token": self.admin.token, "auth.mesh_secret": self.auth.mesh_secret}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment wins over the YAML file, which is passed in as init values."""
        return (env_settings, init_settings)


class ConfigError(ValueError):
    """Settings could not be loaded; the message names the file and the offending keys."""


S = TypeVar("S", bound=MeshSettings)

# Sections some process of the mesh reads. One YAML file may configure the whole mesh (a Kubernetes
# ConfigMap, say): each process skips the sections of the others, while a misspelt section still fails.
MESH_SECTIONS = frozenset(
    {"server", "db", "redis", "nats", "admin", "auth", "log", "tracing", "barrier", "peers"}
    | {"coordinator", "order", "stock", "pay", "points", "console"}
)


ENV_PREFIX = "MESH_"
ENV_DELIMITER = "__"


def unknown_env_sections(cls: type[MeshSettings], environ: Mapping[str, str]) -> list[str]:
    """``MESH_<SECTION>__<KEY>`` variables whose section no process of the mesh has (a typo, say)."""
    unknown = []
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX) or ENV_DELIMITER not in name:
            continue
        section = name[len(ENV_PREFIX) :].split(ENV_DELIMITER, 1)[0].lower()
        if section not in cls.model_fields and section not in MESH_SECTIONS:
            unknown.append(name)
    return sorted(unknown)


def load_settings(cls: type[S], yaml_path: Path | None = None) -> S:
    """Build ``cls`` from defaults, then ``yaml_path`` (if any), then ``MESH_*`` environment variables.

    As in the file, a variable for another process's section is skipped, one for a section no process
    has is refused (a misspelt ``MESH_ORDR__...`` would otherwise be silently ignored).
    """
    typos = unknown_env_sections(cls, os.environ)
    if typos:
        raise ConfigError(f"unknown settings section in environment variable(s): {', '.join(typos)}")
    data: dict[str, Any] = {}
    if yaml_path is not None:
        try:
            loaded = yaml.safe_load(yaml_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {yaml_path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {yaml_path} must hold a mapping of sections")
        data = {
            key: value
            for key, value in (loaded or {}).items()
            if key in cls.model_fields or key not in MESH_SECTIONS
        }
    try:
        return cls(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        source = f" (file {yaml_path} and MESH_* environment)" if yaml_path else " (MESH_* environment)"
        raise ConfigError(f"invalid settings{source}: {problems}") from exc


def redact_url(url: str) -> str:
    """Hide the password of a URL (``scheme://user:***@host/...``), of each URL of a list too."""
    return redact_urls(url)


def redacted(settings: BaseModel) -> dict[str, Any]:
    """The settings as a dict with secrets and URL passwords hidden, fit for a log line."""
    dumped: dict[str, Any] = settings.model_dump(mode="json")

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: scrub(value) for key, value in node.items()}
        if isinstance(node, str) and "://" in node:
            return redact_url(node)
        return node

    result: dict[str, Any] = scrub(dumped)
    return result


def log_settings(settings: BaseModel, logger: logging.Logger | None = None) -> None:
    """Log the effective settings once at start-up, secrets hidden."""
    (logger or log).info("effective settings", extra={"settings": redacted(settings)})
