"""The default replica id is stable across restarts on one host and port (issue 9 item 8)."""

from __future__ import annotations

import os
import socket

from coordinator.config import CoordinatorSection
from coordinator.engine.service import default_replica_id
from coordinator.runtime import engine_settings


def test_item8_default_replica_id_is_host_and_port() -> None:
    host = socket.gethostname()[:40]
    assert default_replica_id(50050) == f"{host}:50050"  # the same after a restart: no pid in it
    assert default_replica_id(0) == f"{host}-{os.getpid()}"  # random port: nothing to keep stable
    assert engine_settings(CoordinatorSection(), 50050).replica_id == f"{host}:50050"
    assert (
        engine_settings(CoordinatorSection(replica_id="coordinator-1"), 50050).replica_id == "coordinator-1"
    )
