"""The ``meshpb.coordinator.v1.Coordinator`` servicer: convert, call the engine, convert back.

Domain errors raised by the engine become status codes in the server's error-mapping interceptor
(:mod:`meshkit.rpc.status`), so this module has no error handling of its own.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from coordinator.api.convert import branch_spec, prepare_command, submit_command, view_pb
from coordinator.engine.service import TxEngine
from coordinator.engine.validate import check_gids
from coordinator.store import queries
from coordinator.store.sql import SqlTxStore
from meshkit.observability.logctx import normalized_traceparent
from meshkit.runtime.ids import Snowflake
from meshkit.tx.context import TRACEPARENT_KEY
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

# Leave this much of the caller's deadline to send the answer of a waiting Submit.
WAIT_MARGIN_SECONDS = 0.2


def traceparent(context: Context) -> str | None:
    """The caller's W3C ``traceparent`` (normalized), if it sent a well-formed one."""
    for key, value in context.invocation_metadata() or ():
        if key == TRACEPARENT_KEY:
            text = value if isinstance(value, str) else value.decode(errors="replace")
            return normalized_traceparent(text) or None
    return None


def initiator(context: Context) -> str:
    """The history's actor for a call: ``initiator <peer>``."""
    peer = context.peer()
    return f"initiator {peer}" if peer else "initiator"


class CoordinatorService(coordinator_pb2_grpc.CoordinatorServicer):
    """NewGid, Prepare, RegisterBranch, Submit, Abort, Query and FinishedGids (DESIGN.md section 4)."""

    def __init__(
        self, engine: TxEngine, store: SqlTxStore, ids: Snowflake, default_wait_seconds: float = 30.0
    ) -> None:
        self._engine = engine
        self._store = store
        self._ids = ids
        self._default_wait = default_wait_seconds

    async def NewGid(self, request: pb.NewGidRequest, context: Context) -> pb.NewGidResponse:
        """A fresh snowflake gid."""
        return pb.NewGidResponse(gid=self._ids.next_str())

    async def Prepare(self, request: pb.PrepareRequest, context: Context) -> pb.PrepareResponse:
        """Open a TCC transaction or prepare a MSG one."""
        command = prepare_command(request, traceparent(context))
        tx = await self._engine.prepare(command, actor=initiator(context))
        return pb.PrepareResponse(gid=tx.gid, status=int(tx.status))  # type: ignore[arg-type]

    async def RegisterBranch(
        self, request: pb.RegisterBranchRequest, context: Context
    ) -> pb.RegisterBranchResponse:
        """Record a TCC branch before its try."""
        await self._engine.register_branch(request.gid, branch_spec(request.branch))
        return pb.RegisterBranchResponse(gid=request.gid, branch_id=request.branch.branch_id)

    async def Submit(self, request: pb.SubmitRequest, context: Context) -> pb.SubmitResponse:
        """Commit (TCC/MSG) or create and run (SAGA); with ``wait_result`` answer once final."""
        wait = self._wait_seconds(context) if request.wait_result else None
        command = submit_command(request, traceparent(context))
        tx = await self._engine.submit(command, wait_seconds=wait, actor=initiator(context))
        return pb.SubmitResponse(gid=tx.gid, status=int(tx.status))  # type: ignore[arg-type]

    async def Abort(self, request: pb.AbortRequest, context: Context) -> pb.AbortResponse:
        """Roll back a prepared TCC transaction, or fail a prepared MSG one."""
        tx = await self._engine.abort(request.gid, request.reason, actor=initiator(context))
        return pb.AbortResponse(gid=tx.gid, status=int(tx.status))  # type: ignore[arg-type]

    async def Query(self, request: pb.QueryRequest, context: Context) -> pb.QueryResponse:
        """The transaction with its ops and history."""
        view = await self._engine.query(request.gid)
        return pb.QueryResponse(transaction=view_pb(view))

    async def FinishedGids(
        self, request: pb.FinishedGidsRequest, context: Context
    ) -> pb.FinishedGidsResponse:
        """Which of the asked gids are final (SUCCEEDED/FAILED) and which have no record."""
        answer = await queries.finished_gids(self._store, check_gids(request.gids))
        return pb.FinishedGidsResponse(finished=answer.finished, unknown=answer.unknown)

    def _wait_seconds(self, context: Context) -> float:
        """How long a waiting Submit may wait: the caller's deadline (or the default) minus a margin."""
        remaining = context.time_remaining()
        budget = self._default_wait if remaining is None else remaining
        return max(0.0, budget - WAIT_MARGIN_SECONDS)
