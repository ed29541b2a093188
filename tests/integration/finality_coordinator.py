"""A real coordinator that knows final and unfinished gids, for the barrier cleanup tests (issue 9 item 1).

The cleaners learn finality from it through :class:`meshkit.tx.finality.CoordinatorFinality`; the tests
make transactions final (a TCC without branches, submitted: SUCCEEDED) or leave them open (a TCC
prepared with a long timeout: PREPARED); any other gid is unknown to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from meshctl.stack.embedded import free_port
from meshkit.tx.finality import CoordinatorFinality
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings
from tests.integration.creds import AUTH

HOUR_MS = 3_600_000


@dataclass
class Ledger:
    """The coordinator of a cleanup test and an oracle on it."""

    coordinator: RunningCoordinator
    oracle: CoordinatorFinality

    @property
    def address(self) -> str:
        """The coordinator's ``host:port`` (a service's ``peers.coordinator``)."""
        return self.coordinator.address

    async def open(self, gid: str) -> None:
        """Record ``gid`` as a prepared TCC that stays unfinished for an hour."""
        options = pb.TxOptions(timeout_ms=HOUR_MS)
        reply = await self.coordinator.stub.Prepare(
            pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=options)
        )
        assert reply.status == pb.STATUS_PREPARED

    async def finish(self, gid: str) -> None:
        """Record ``gid`` as a final (SUCCEEDED) transaction."""
        await self.open(gid)
        reply = await self.coordinator.stub.Submit(
            pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC, wait_result=True)
        )
        assert reply.status == pb.STATUS_SUCCEEDED


@asynccontextmanager
async def running_ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """A coordinator on its own SQLite file, and an oracle on it (carrying the test mesh credentials)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}"
    coordinator = await RunningCoordinator.start(coordinator_settings(url))
    oracle = CoordinatorFinality.of(coordinator.address, AUTH)
    try:
        yield Ledger(coordinator, oracle)
    finally:
        await oracle.close()
        await coordinator.stop()


def unreachable_oracle() -> CoordinatorFinality:
    """An oracle whose coordinator address has nothing listening."""
    return CoordinatorFinality(f"127.0.0.1:{free_port()}", timeout_seconds=2.0)
