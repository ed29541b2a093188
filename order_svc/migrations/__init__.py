"""order_svc migrations (component ``order``); revisions live in ``versions``."""

from __future__ import annotations

from pathlib import Path

# Pass to meshkit.infra.migrate.upgrade(engine, COMPONENT, VERSIONS).
COMPONENT = "order"
VERSIONS = Path(__file__).resolve().parent / "versions"
