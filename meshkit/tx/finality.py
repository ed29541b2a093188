"""The gRPC adapter of :class:`meshkit.barrier.finality.FinalityOracle`: ``Coordinator.FinishedGids``.

Business services build one with :meth:`CoordinatorFinality.of` (their ``peers.coordinator`` address
and ``auth`` settings: FinishedGids is a mesh-only RPC) and hand it to their barrier cleaner;
:meth:`CoordinatorFinality.close` closes its channel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from meshkit.barrier.finality import FinalityUnavailable
from meshkit.rpc.auth import mesh_channel
from meshkit.settings.config import AuthSettings
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

if TYPE_CHECKING:
    from meshpb.coordinator.v1.coordinator_pb2_grpc import CoordinatorAsyncStub

# The coordinator answers at most this many gids per FinishedGids call.
MAX_GIDS_PER_CALL = 1000
# ... and takes requests of at most 64 KiB: keep each one under this, with room for the framing.
MAX_REQUEST_BYTES_PER_CALL = 60 * 1024
CALL_TIMEOUT_SECONDS = 10.0


class CoordinatorFinality:
    """Asks the coordinator which gids are finished (or unknown to it) with ``FinishedGids``."""

    def __init__(
        self,
        address: str,
        timeout_seconds: float = CALL_TIMEOUT_SECONDS,
        auth: AuthSettings | None = None,
    ) -> None:
        self._channel = mesh_channel(address, auth)
        self._stub: CoordinatorAsyncStub = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._timeout = timeout_seconds
        self.address = address

    @classmethod
    def of(cls, address: str, auth: AuthSettings | None) -> CoordinatorFinality:
        """An oracle on the coordinator at ``address`` whose calls carry the mesh credentials ``auth``."""
        return cls(address, auth=auth)

    async def final(self, gids: Sequence[str]) -> set[str]:
        """The gids the coordinator reports as finished or unknown; unfinished ones are left out.

        Raises :class:`FinalityUnavailable` when any call fails (unreachable, timeout, an old
        coordinator without the RPC): the caller then deletes nothing.
        """
        final: set[str] = set()
        for batch in batches(gids):
            request = pb.FinishedGidsRequest(gids=batch)
            try:
                reply: pb.FinishedGidsResponse = await self._stub.FinishedGids(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                raise FinalityUnavailable(
                    f"coordinator {self.address}: FinishedGids failed: {exc.code().name} {exc.details()}"
                ) from exc
            final.update(reply.finished)
            final.update(reply.unknown)
        return final

    async def close(self) -> None:
        """Close the channel to the coordinator."""
        await self._channel.close()


def batches(gids: Sequence[str]) -> Iterator[list[str]]:
    """``gids`` in FinishedGids-sized requests: at most 1000 gids and about 60 KiB each."""
    batch: list[str] = []
    size = 0
    for gid in gids:
        # A repeated string field costs its bytes, a tag byte and a length varint (<= 3 bytes here).
        cost = len(gid.encode()) + 4
        if batch and (len(batch) == MAX_GIDS_PER_CALL or size + cost > MAX_REQUEST_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(gid)
        size += cost
    if batch:
        yield batch
