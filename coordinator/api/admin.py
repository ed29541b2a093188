"""The ``meshpb.coordinator.v1.Admin`` servicer: authenticate, convert, call the engine, convert back.

Every call must carry ``authorization: Bearer <admin.token>``; otherwise it is refused with
``UNAUTHENTICATED`` before anything is read. A coordinator started without a token refuses every admin
call (an unprotected repair API is worse than none). Domain errors become status codes in the server's
error-mapping interceptor.
"""

from __future__ import annotations

from typing import Any

import grpc.aio
from google.protobuf.duration_pb2 import Duration

from coordinator.api.convert import transaction_pb
from coordinator.engine.admin import AdminOps
from coordinator.engine.model import GlobalTx, Mode, Status
from coordinator.engine.service import TxEngine
from coordinator.store import queries
from coordinator.store.sql import SqlTxStore
from meshkit.errors import InvalidArgument
from meshkit.rpc.auth import check_admin
from meshkit.rpc.pbtime import duration_ms, timestamp_ms
from meshkit.runtime.clock import now_ms
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_STUCK_LIMIT = 100


def actor_of(request: pb.AdminActionRequest, context: Context) -> str:
    """Who acts: the request's ``actor``, else ``admin <peer>``."""
    if request.actor.strip():
        return request.actor.strip()
    peer = context.peer()
    return f"admin {peer}" if peer else "admin"


def _status_filter(value: int) -> Status | None:
    if value == 0:
        return None
    try:
        return Status(value)
    except ValueError:
        raise InvalidArgument("status", f"unknown status {value}") from None


def _mode_filter(value: int) -> Mode | None:
    if value == 0:
        return None
    try:
        return Mode(value)
    except ValueError:
        raise InvalidArgument("mode", f"unknown mode {value}") from None


def _duration_ms(value: Duration, field: str) -> int:
    ms = duration_ms(value, field)
    if ms < 0:
        raise InvalidArgument(field, "must not be negative")
    return ms


class AdminService(coordinator_pb2_grpc.AdminServicer):
    """List, Stuck, Retry, PauseRetry, ResumeRetry, ForceAbort, ForceFail and Stats (DESIGN.md section 4)."""

    def __init__(self, engine: TxEngine, store: SqlTxStore, token: str) -> None:
        self._engine = engine
        self._store = store
        self._ops = AdminOps(engine)
        self._token = token

    def _authenticate(self, context: Context) -> None:
        check_admin(self._token, context.invocation_metadata())

    async def _with_ops(self, txs: list[GlobalTx]) -> list[pb.Transaction]:
        ops = await queries.ops_of(self._store, [tx.gid for tx in txs])
        return [transaction_pb(tx, ops[tx.gid]) for tx in txs]

    async def _action_reply(self, gid: str) -> pb.AdminActionResponse:
        view = await self._engine.query(gid)
        return pb.AdminActionResponse(transaction=transaction_pb(view.tx, view.ops, view.history))

    async def List(self, request: pb.ListRequest, context: Context) -> pb.ListResponse:
        """Transactions by status, mode and creation time, newest first, one page (without history)."""
        self._authenticate(context)
        page = await queries.list_transactions(
            self._store,
            status=_status_filter(request.status),
            mode=_mode_filter(request.mode),
            created_after=timestamp_ms(request.created_after, "created_after")
            if request.HasField("created_after")
            else None,
            created_before=timestamp_ms(request.created_before, "created_before")
            if request.HasField("created_before")
            else None,
            cursor=request.cursor,
            limit=request.limit or queries.DEFAULT_PAGE,
        )
        return pb.ListResponse(
            transactions=await self._with_ops(page.transactions), next_cursor=page.next_cursor
        )

    async def Stuck(self, request: pb.StuckRequest, context: Context) -> pb.StuckResponse:
        """Unfinished transactions flagged stuck, or older than ``older_than`` and retried often."""
        self._authenticate(context)
        txs = await queries.stuck_transactions(
            self._store,
            now=now_ms(self._engine.clock),
            older_than_ms=_duration_ms(request.older_than, "older_than"),
            min_attempts=request.min_attempts,
            limit=request.limit or DEFAULT_STUCK_LIMIT,
        )
        return pb.StuckResponse(transactions=await self._with_ops(txs))

    async def Retry(self, request: pb.AdminActionRequest, context: Context) -> pb.AdminActionResponse:
        """Make every pending op due now and drive the transaction."""
        self._authenticate(context)
        await self._ops.retry_now(request.gid, actor=actor_of(request, context), reason=request.reason)
        return await self._action_reply(request.gid)

    async def PauseRetry(self, request: pb.AdminActionRequest, context: Context) -> pb.AdminActionResponse:
        """Stop automatic driving of the transaction."""
        self._authenticate(context)
        await self._ops.pause(request.gid, actor=actor_of(request, context), reason=request.reason)
        return await self._action_reply(request.gid)

    async def ResumeRetry(self, request: pb.AdminActionRequest, context: Context) -> pb.AdminActionResponse:
        """Restart automatic driving of the transaction."""
        self._authenticate(context)
        await self._ops.resume(request.gid, actor=actor_of(request, context), reason=request.reason)
        return await self._action_reply(request.gid)

    async def ForceAbort(self, request: pb.AdminActionRequest, context: Context) -> pb.AdminActionResponse:
        """Roll back what ran (cancel / compensate); refused for submitted TCC and MSG transactions."""
        self._authenticate(context)
        await self._ops.force_abort(request.gid, actor=actor_of(request, context), reason=request.reason)
        return await self._action_reply(request.gid)

    async def ForceFail(self, request: pb.AdminActionRequest, context: Context) -> pb.AdminActionResponse:
        """Mark the transaction FAILED without compensation."""
        self._authenticate(context)
        await self._ops.force_fail(request.gid, actor=actor_of(request, context), reason=request.reason)
        return await self._action_reply(request.gid)

    async def Stats(self, request: pb.StatsRequest, context: Context) -> pb.StatsResponse:
        """Counts by mode and status, stuck and paused counts, age of the oldest unfinished transaction."""
        self._authenticate(context)
        result = await queries.stats(self._store)
        response = pb.StatsResponse(
            counts=[
                pb.StatusCount(mode=int(mode), status=int(status), count=n)  # type: ignore[arg-type]
                for (mode, status), n in sorted(result.counts.items())
            ],
            stuck=result.stuck,
            paused=result.paused,
        )
        if result.oldest_unfinished_ms is not None:
            age = max(0, now_ms(self._engine.clock) - result.oldest_unfinished_ms)
            response.oldest_unfinished.FromMilliseconds(age)
        return response
