"""Settings of the console: the common sections plus ``console`` and ``peers``.

The admin token (``admin.token``) is both what the console sends to the coordinator's Admin API and
what a person types to log in. ``peers`` gives the coordinator (and, for the audit page, the four
services).
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from meshkit.settings.config import MeshSettings, Section
from meshkit.settings.peers import PeersSection

DEFAULT_PORT = 8080


class ConsoleSection(Section):
    """The admin web console (HTTP)."""

    host: str = Field("127.0.0.1", description="address the console listens on ('0.0.0.0' in a container)")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="HTTP port of the console")
    session_secret: SecretStr = Field(
        SecretStr(""),
        description="key signing the session cookie (required; empty only with dev.allow_insecure: "
        "a random one per process)",
    )
    session_max_age_seconds: int = Field(8 * 3600, ge=60, description="a login lasts this long")
    secure_cookie: bool = Field(False, description="send the session cookie over HTTPS only")
    login_failures: int = Field(5, ge=1, le=1000, description="failed logins from one address per window")
    login_window_seconds: float = Field(300.0, gt=0, description="the failed-login window")
    rpc_timeout_seconds: float = Field(10.0, gt=0, description="deadline of each Admin call")
    refresh_seconds: float = Field(3.0, ge=0.5, le=600, description="live pages refresh this often")
    plot_minutes: int = Field(15, ge=2, le=240, description="the overview plot covers this many minutes")
    stuck_min_attempts: int = Field(
        5, ge=0, description="the stuck page also lists ones with an op retried this often (0: flagged only)"
    )


class ConsoleSettings(MeshSettings):
    """Everything ``python -m console`` reads."""

    console: ConsoleSection = ConsoleSection()
    peers: PeersSection = PeersSection()

    def required_secrets(self) -> dict[str, SecretStr]:
        """The console will not start without these unless ``dev.allow_insecure``."""
        return {"admin.token": self.admin.token, "console.session_secret": self.console.session_secret}
