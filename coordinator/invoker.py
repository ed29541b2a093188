"""The branch invoker: the engine's :class:`~coordinator.engine.ports.BranchInvoker` over gRPC.

Calls ``host:port/package.Service/Method`` with the branch's payload bytes and the transaction
context (``x-mesh-gid/branch/op/mode``, ``traceparent``, the transaction's custom headers), with the
transaction's ``request_timeout_ms`` as deadline, over a channel pooled per ``host:port``. The status
is classified through :func:`meshkit.rpc.status.error_from_rpc` (DESIGN.md section 3): OK -> ``OK``,
ABORTED -> ``FAILURE``, FAILED_PRECONDITION -> ``ONGOING``, anything else -> ``TRANSIENT``.
"""

from __future__ import annotations

import logging

import grpc
import grpc.aio

from coordinator.engine.ports import BranchCall, BranchResult, Outcome
from meshkit.errors import BranchFailure, BranchOngoing
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.status import error_from_rpc
from meshkit.settings.config import AuthSettings
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import TxContext
from meshkit.tx.target import TargetError

log = logging.getLogger(__name__)


class GrpcBranchInvoker:
    """Makes branch calls; never raises for a failed call."""

    def __init__(
        self,
        pool: ChannelPool | None = None,
        *,
        auth: AuthSettings | None = None,
        metrics: ClientRpcMetrics | None = None,
    ) -> None:
        self._pool = pool or ChannelPool(auth=auth, metrics=metrics)
        self._own_pool = pool is None

    async def invoke(self, call: BranchCall) -> BranchResult:
        """Make ``call`` and classify its status."""
        ctx = TxContext(gid=call.gid, branch_id=call.branch_id, op=call.op, mode=call.mode)
        metadata = branch_metadata(ctx, call.headers)
        try:
            await self._pool.call(call.target, call.payload, metadata, call.timeout_ms / 1000)
        except grpc.aio.AioRpcError as exc:
            return classify(exc)
        except TargetError as exc:  # validated on input; only a corrupted row gets here
            return BranchResult(Outcome.TRANSIENT, f"bad target {call.target!r}: {exc}")
        except grpc.aio.UsageError as exc:  # e.g. a channel closed during shutdown
            return BranchResult(Outcome.TRANSIENT, f"UNAVAILABLE: {exc}")
        return BranchResult(Outcome.OK)

    async def close(self) -> None:
        """Close the channels (when this invoker created the pool)."""
        if self._own_pool:
            await self._pool.close()


def classify(exc: grpc.aio.AioRpcError) -> BranchResult:
    """The branch result of a failed call."""
    error = error_from_rpc(exc)
    code = exc.code()
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    detail = f"{name}: {exc.details() or ''}".rstrip(": ")
    if isinstance(error, BranchFailure):
        return BranchResult(Outcome.FAILURE, detail)
    if isinstance(error, BranchOngoing):
        return BranchResult(Outcome.ONGOING, detail)
    return BranchResult(Outcome.TRANSIENT, detail)
