"""The console's client of the coordinator's Admin API (and ``Coordinator.Query`` for one transaction).

Every call carries ``authorization: Bearer <admin.token>``. A failed call becomes :class:`AdminError`
with the HTTP status the console answers and a sentence a person can act on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import grpc
import grpc.aio

from meshkit.rpc.auth import channel_options
from meshkit.runtime.closing import AsyncClosing
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

T = TypeVar("T")

# gRPC code -> (HTTP status, what it means for the person)
_HTTP_OF: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "bad input"),
    grpc.StatusCode.NOT_FOUND: (404, "not found"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "refused in the transaction's current state"),
    grpc.StatusCode.ABORTED: (409, "refused: the transaction changed meanwhile, look again"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already done"),
    grpc.StatusCode.UNAUTHENTICATED: (502, "the coordinator refused the console's admin token"),
    grpc.StatusCode.PERMISSION_DENIED: (502, "the coordinator refused the console's admin token"),
    grpc.StatusCode.UNAVAILABLE: (503, "the coordinator cannot be reached"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "the coordinator did not answer in time"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, "the coordinator is overloaded, try again"),
}


class AdminError(Exception):
    """An Admin call failed: the gRPC code, the coordinator's details, the HTTP status to answer."""

    def __init__(self, code: str, details: str, http_status: int, meaning: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.http_status = http_status
        self.meaning = meaning

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError) -> AdminError:
        """The console's view of a failed call."""
        code = error.code()
        http_status, meaning = _HTTP_OF.get(code, (502, "the coordinator answered an error"))
        return cls(code.name if code is not None else "UNKNOWN", error.details() or "", http_status, meaning)


class Action(StrEnum):
    """The repair actions; the value is the URL segment, :attr:`rpc` the Admin method."""

    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    FAIL = "fail"

    @property
    def rpc(self) -> str:
        """The Admin RPC this action calls."""
        return _RPC_OF[self]

    @property
    def label(self) -> str:
        """The button's text."""
        return _LABEL_OF[self]


_RPC_OF = {
    Action.RETRY: "Retry",
    Action.PAUSE: "PauseRetry",
    Action.RESUME: "ResumeRetry",
    Action.ABORT: "ForceAbort",
    Action.FAIL: "ForceFail",
}
_LABEL_OF = {
    Action.RETRY: "Retry now",
    Action.PAUSE: "Pause retries",
    Action.RESUME: "Resume retries",
    Action.ABORT: "Force abort",
    Action.FAIL: "Force fail",
}


@dataclass(frozen=True, slots=True)
class AdminTarget:
    """Where the coordinator is, the token Admin calls carry, and their deadline."""

    address: str
    token: str
    timeout_seconds: float = 10.0


class AdminClient(AsyncClosing):
    """One channel to the coordinator; use as ``async with AdminClient(target)``."""

    def __init__(self, target: AdminTarget) -> None:
        self._target = target
        # round_robin: behind a headless Service the console spreads its calls over every replica.
        self._channel = grpc.aio.insecure_channel(target.address, options=channel_options(()))
        self._admin = coordinator_pb2_grpc.AdminStub(self._channel)
        self._coordinator = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._metadata = (("authorization", f"Bearer {target.token}"),)

    @property
    def address(self) -> str:
        """The coordinator's ``host:port``."""
        return self._target.address

    @property
    def token(self) -> str:
        """The admin token (what a person logs in with)."""
        return self._target.token

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise AdminError.of(error) from None

    async def stats(self) -> pb.StatsResponse:
        """Counts by mode and status, stuck, paused, the oldest unfinished."""
        return await self._call(
            self._admin.Stats(
                pb.StatsRequest(), metadata=self._metadata, timeout=self._target.timeout_seconds
            )
        )

    async def list(self, request: pb.ListRequest) -> pb.ListResponse:
        """One page of transactions, newest first."""
        return await self._call(
            self._admin.List(request, metadata=self._metadata, timeout=self._target.timeout_seconds)
        )

    async def stuck(self, request: pb.StuckRequest) -> pb.StuckResponse:
        """What needs a person."""
        return await self._call(
            self._admin.Stuck(request, metadata=self._metadata, timeout=self._target.timeout_seconds)
        )

    async def get(self, gid: str) -> pb.Transaction:
        """One transaction with its ops and history."""
        reply: pb.QueryResponse = await self._call(
            self._coordinator.Query(
                pb.QueryRequest(gid=gid), metadata=self._metadata, timeout=self._target.timeout_seconds
            )
        )
        return reply.transaction

    async def act(self, action: Action, gid: str, *, reason: str, actor: str) -> pb.Transaction:
        """Run ``action`` on ``gid``; the transaction as it is afterwards."""
        request = pb.AdminActionRequest(gid=gid, reason=reason, actor=actor)
        method = getattr(self._admin, action.rpc)
        reply: pb.AdminActionResponse = await self._call(
            method(request, metadata=self._metadata, timeout=self._target.timeout_seconds)
        )
        return reply.transaction

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()
