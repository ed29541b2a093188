"""A second process started with a live replica's id and port does not take its leases (issue 9 item 8).

A restarted replica takes over the leases its previous process held at once; that is safe only when
the previous process is gone. A second ``python -m coordinator`` with the same configuration while
the first still runs used to bind the same port (gRPC sets ``SO_REUSEPORT``), release every lease of
the live replica and drive its transactions a second time. Now the bind is exclusive and comes before
the take-over: the second process exits, and the first one's calls are made once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshctl.stack.embedded import log_tail
from meshkit.tx.initiator import CoordinatorClient, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import wait_for
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.coordinator.process import CoordinatorProcess
from tests.integration.creds import AUTH

pytestmark = pytest.mark.timeout(180)

# Long leases: within the test, only a take-over can move the transaction to another process.
SECTION = {"lease_seconds": 30.0, "request_timeout_seconds": 20.0, "sweep_interval_seconds": 0.2}


async def test_item8_second_process_with_a_live_replica_id_does_not_take_over(
    db_url: str, bank: Bank, gid: str, tmp_path: Path
) -> None:
    replica = "duplicate-replica-0"
    first = CoordinatorProcess(db_url, tmp_path / "first.log", replica=replica, **SECTION)
    second = CoordinatorProcess(db_url, tmp_path / "second.log", replica=replica, port=first.port, **SECTION)
    try:
        await first.start()
        bank.hold("Confirm")
        async with CoordinatorClient(first.address, auth=AUTH) as client, tcc(client, gid=gid) as t:
            await t.call_branch(
                bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload("a", 1)
            )
        confirming = lambda: bank.calls[(gid, "01", "confirm")] >= 1  # noqa: E731
        await wait_for(confirming, within=30, what="the confirm in flight")
        second.spawn()
        code = await second.exit_code(within=30)
        assert code is not None and code != 0, f"second process still runs: {log_tail(second.log_path)}"
        # Give a wrongly started second driver every chance to call the confirm again.
        await asyncio.sleep(1.0)
        assert bank.calls[(gid, "01", "confirm")] == 1
        bank.release("Confirm")
        async with CoordinatorClient(first.address, auth=AUTH) as client:
            await wait_for(lambda: _succeeded(client, gid), within=30, what="the transaction final")
    finally:
        second.stop()
        first.stop()
    assert bank.calls[(gid, "01", "confirm")] == 1
    assert (await bank.applied(gid))[(gid, "01", "confirm")] == 1


async def _succeeded(client: CoordinatorClient, gid: str) -> bool:
    reply = await client.stub.FinishedGids(pb.FinishedGidsRequest(gids=[gid]))
    return list(reply.finished) == [gid]
