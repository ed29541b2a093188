"""Transaction builders for initiators: ``tcc``, ``saga`` and ``msg`` (DESIGN.md sections 4 and 5).

TCC - register each branch, call its try, submit when the block ends normally, abort on an exception::

    async with tcc(coordinator, timeout_ms=10_000) as t:
        await t.call_branch(try_target, confirm_target, cancel_target, payload)
        await t.call_branch(...)

    # Branches known up front are registered by the Prepare itself (no RegisterBranch calls):
    async with tcc(coordinator, branches=[TccBranch(try_target, confirm_target, cancel_target)]) as t:
        await t.call_branch(try_target, confirm_target, cancel_target)

SAGA - declare the steps, submit; the coordinator runs (and if needed compensates) them::

    status = await saga(coordinator).add(action, compensate, payload).add(...).submit(wait=True)

MSG - prepare, run the local transaction through the barrier (op ``msg``, branch ``00``), submit::

    result = await msg(coordinator, query_prepared=target).add(action, payload).do_and_submit(
        barrier, local_business)

    # or, on a store runner: the local transaction a unit of work, the barrier a RunnerBarrier
    result = await msg(...).add(action, payload).do_and_submit_unit(runner_barrier, local_unit)

``coordinator`` is a :class:`CoordinatorClient` (reuse one per process: it pools the channels), a
``Coordinator`` stub, or a ``host:port`` address (a client is then opened and closed per transaction).
Failed calls raise the domain errors of :mod:`meshkit.errors` (see :func:`meshkit.rpc.status.error_from_rpc`).

Trace: a transaction started while serving a call continues that call's ``traceparent``
(:data:`meshkit.observability.logctx.current_traceparent`) unless ``headers`` name one: it joins the
transaction's headers, so the tries made here and every call the coordinator makes share its trace id.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from meshkit.barrier.outcome import MSG_BRANCH, BarrierResult
from meshkit.errors import BranchFailure, FailedPrecondition, MeshError
from meshkit.observability.logctx import TRACEPARENT_KEY, current_traceparent
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import mesh_channel
from meshkit.rpc.status import error_from_rpc
from meshkit.runtime.clock import Clock, SystemClock, now_ms
from meshkit.settings.config import AuthSettings
from meshkit.store.conn import Unit
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

if TYPE_CHECKING:
    from meshpb.coordinator.v1.coordinator_pb2_grpc import CoordinatorAsyncStub

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Payload = bytes | Message
MAX_ABORT_REASON = 500


class CoordinatorClient:
    """A connection to the coordinator plus a channel pool for the branch calls an initiator makes.

    The Coordinator service is mesh-only: pass the process's ``auth`` settings so that every call (to the
    coordinator and to the branches) carries the mesh credentials (:mod:`meshkit.rpc.auth`), and its
    ``metrics`` to count those calls (``mesh_rpc_client_*``).
    """

    def __init__(
        self,
        address: str,
        pool: ChannelPool | None = None,
        *,
        auth: AuthSettings | None = None,
        metrics: ClientRpcMetrics | None = None,
    ) -> None:
        self.address = address
        self._channel = mesh_channel(address, auth, metrics=metrics)
        self.stub: CoordinatorAsyncStub = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self.pool = pool or ChannelPool(auth=auth, metrics=metrics)
        self._own_pool = pool is None

    @classmethod
    def of_stub(cls, stub: CoordinatorAsyncStub, pool: ChannelPool | None = None) -> CoordinatorClient:
        """A client around an existing stub (its channel stays the caller's)."""
        client = cls.__new__(cls)
        client.address = ""
        client._channel = None  # type: ignore[assignment]
        client.stub = stub
        client.pool = pool or ChannelPool()
        client._own_pool = pool is None
        return client

    async def close(self) -> None:
        """Close the coordinator channel and (if this client made it) the branch channel pool."""
        if self._channel is not None:
            await self._channel.close()
        if self._own_pool:
            await self.pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


@asynccontextmanager
async def _client(
    coordinator: CoordinatorClient | CoordinatorAsyncStub | str,
) -> AsyncIterator[CoordinatorClient]:
    if isinstance(coordinator, CoordinatorClient):
        yield coordinator
    elif isinstance(coordinator, str):
        async with CoordinatorClient(coordinator) as client:
            yield client
    else:
        client = CoordinatorClient.of_stub(coordinator)
        try:
            yield client
        finally:
            await client.close()


async def coordinator_call(call: Awaitable[T]) -> T:
    """Await a coordinator call, turning a failed status into a domain error.

    The coordinator answers ``FAILED_PRECONDITION`` for a refused state change: that is a
    :class:`FailedPrecondition` here (not the "branch not yet" meaning it has for branch calls).
    """
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
            raise FailedPrecondition(exc.details() or "failed precondition") from exc
        raise error_from_rpc(exc) from exc


async def _branch_rpc(call: Awaitable[T]) -> T:
    """Await a branch call (a try), turning a failed status into the branch's domain error."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc) from exc


def _bytes(payload: Payload) -> bytes:
    return payload if isinstance(payload, bytes) else payload.SerializeToString()


def traced(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` plus the current call's ``traceparent`` when they name none and there is one."""
    out = dict(headers or {})
    parent = current_traceparent.get()
    if parent and TRACEPARENT_KEY not in out:
        out[TRACEPARENT_KEY] = parent
    return out


def _options(
    *,
    timeout_ms: int,
    retry_interval_ms: int,
    retry_limit: int,
    request_timeout_ms: int,
    headers: Mapping[str, str] | None,
    concurrent: bool = False,
) -> pb.TxOptions:
    return pb.TxOptions(
        timeout_ms=timeout_ms,
        retry_interval_ms=retry_interval_ms,
        retry_limit=retry_limit,
        request_timeout_ms=request_timeout_ms,
        concurrent=concurrent,
        headers=traced(headers),
    )


def local_gid(clock: Clock | None = None) -> str:
    """A fresh gid made here, without a round trip: 12 hex digits of milliseconds + 80 random bits.

    Time-ordered like the coordinator's ``NewGid`` (good for the database's primary-key index) and
    unique without coordination. Use ``NewGid`` instead when ids must be the coordinator's snowflakes.
    """
    millis = now_ms(clock or SystemClock())
    return f"{millis:012x}{secrets.token_hex(10)}"


async def _new_gid(_client: CoordinatorClient, gid: str | None) -> str:
    return gid or local_gid()


# ============================================================================ TCC


@dataclass(frozen=True, slots=True)
class TccBranch:
    """A TCC branch declared up front (:func:`tcc` ``branches=``): registered by the Prepare itself.

    An empty ``branch_id`` is numbered like :meth:`Tcc.call_branch` numbers its calls ("01", "02", ...
    in declaration order), so calling the declared branches in that order with the same arguments
    matches them.
    """

    try_target: str
    confirm_target: str
    cancel_target: str
    payload: Payload = b""
    branch_id: str = ""

    def to_pb(self, position: int) -> pb.Branch:
        """The ``Branch`` message (``position`` from 1 numbers an id-less branch)."""
        return pb.Branch(
            branch_id=self.branch_id or f"{position:02d}",
            action=self.try_target,
            confirm=self.confirm_target,
            cancel=self.cancel_target,
            payload=_bytes(self.payload),
        )


class Tcc:
    """An open TCC transaction (use :func:`tcc`)."""

    def __init__(
        self,
        client: CoordinatorClient,
        gid: str,
        headers: Sequence[tuple[str, str]],
        declared: Sequence[pb.Branch] = (),
    ) -> None:
        self.client = client
        self.gid = gid
        self.status: int = pb.STATUS_PREPARED
        self._headers = list(headers)
        self._branches = 0
        self._declared = {b.branch_id: b for b in declared}  # registered by the Prepare, not tried yet
        self._mismatched: list[str] = []  # declared branches called with other arguments: never submit

    async def call_branch(
        self,
        try_target: str,
        confirm_target: str,
        cancel_target: str,
        payload: Payload = b"",
        *,
        branch_id: str | None = None,
        timeout_seconds: float | None = None,
    ) -> bytes:
        """Register a branch with the coordinator, then call its try; returns the try's response bytes.

        A branch declared up front (``tcc(branches=...)``) with this id was registered by the Prepare:
        only its try is called (its arguments must be the declared ones, else ``ValueError``). A failed
        try raises the domain error (``BranchFailure`` for ``ABORTED``): leaving the ``async with``
        block with it aborts the transaction.
        """
        self._branches += 1
        branch_id = branch_id or f"{self._branches:02d}"
        data = _bytes(payload)
        branch = pb.Branch(
            branch_id=branch_id, action=try_target, confirm=confirm_target, cancel=cancel_target, payload=data
        )
        declared = self._declared.get(branch_id)
        if declared is not None and declared != branch:
            # Stays declared (never tried) and poisons the transaction: even if the caller catches this,
            # check_all_called fails, so the block aborts instead of confirming a branch never tried.
            self._mismatched.append(branch_id)
            raise ValueError(f"branch {branch_id!r} is called with other targets or payload than declared")
        if declared is None:
            await coordinator_call(
                self.client.stub.RegisterBranch(pb.RegisterBranchRequest(gid=self.gid, branch=branch))
            )
        else:
            del self._declared[branch_id]
        ctx = TxContext(gid=self.gid, branch_id=branch_id, op=Op.TRY, mode=TxMode.TCC)
        metadata = branch_metadata(ctx, self._headers)
        return await _branch_rpc(self.client.pool.call(try_target, data, metadata, timeout_seconds))

    def check_all_called(self) -> None:
        """Raise ``ValueError`` if a declared branch was never called or was called with other arguments.

        Either way its confirm must never run: the block then aborts instead of submitting.
        """
        if self._mismatched:
            raise ValueError(f"declared TCC branches called with other arguments: {sorted(self._mismatched)}")
        if self._declared:
            raise ValueError(f"declared TCC branches never called: {sorted(self._declared)}")


@asynccontextmanager
async def tcc(
    coordinator: CoordinatorClient | CoordinatorAsyncStub | str,
    *,
    gid: str | None = None,
    timeout_ms: int = 0,
    retry_interval_ms: int = 0,
    retry_limit: int = 0,
    request_timeout_ms: int = 0,
    headers: Mapping[str, str] | None = None,
    wait_result: bool = False,
    branches: Sequence[TccBranch] = (),
) -> AsyncIterator[Tcc]:
    """Open a TCC transaction; submit when the block ends normally, abort (and re-raise) on an exception.

    ``branches`` declared up front are registered by the Prepare (one round trip instead of one per
    branch); the block must call each of them (:meth:`Tcc.call_branch`), else it ends with
    ``ValueError`` and the transaction is aborted (a declared branch whose try never ran is cancelled:
    an empty rollback). With ``wait_result`` the submit returns once every confirm is done;
    ``Tcc.status`` holds the final (or current) status after the block.
    """
    async with _client(coordinator) as client:
        gid = await _new_gid(client, gid)
        options = _options(
            timeout_ms=timeout_ms,
            retry_interval_ms=retry_interval_ms,
            retry_limit=retry_limit,
            request_timeout_ms=request_timeout_ms,
            headers=headers,
        )
        declared = [b.to_pb(i) for i, b in enumerate(branches, start=1)]
        prepare = pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=options, branches=declared)
        await coordinator_call(client.stub.Prepare(prepare))
        t = Tcc(client, gid, sorted(options.headers.items()), declared)
        try:
            yield t
            t.check_all_called()
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"[:MAX_ABORT_REASON]
            try:
                response = await coordinator_call(client.stub.Abort(pb.AbortRequest(gid=gid, reason=reason)))
                t.status = response.status
            except MeshError as abort_error:
                log.warning(
                    "abort of %s failed (%s); the coordinator's timeout will roll it back", gid, abort_error
                )
            raise
        request = pb.SubmitRequest(gid=gid, mode=pb.MODE_TCC, wait_result=wait_result)
        t.status = (await coordinator_call(client.stub.Submit(request))).status


# ============================================================================ SAGA


class Saga:
    """A saga being declared (use :func:`saga`)."""

    def __init__(
        self,
        coordinator: CoordinatorClient | CoordinatorAsyncStub | str,
        gid: str | None,
        options: pb.TxOptions,
    ) -> None:
        self._coordinator = coordinator
        self.gid = gid or ""
        self._options = options
        self._steps: list[pb.Branch] = []

    def add(
        self,
        action: str,
        compensate: str = "",
        payload: Payload = b"",
        *,
        branch_id: str | None = None,
        depends_on: Sequence[str] = (),
    ) -> Saga:
        """Add a step (``depends_on`` needs ``concurrent=True``); returns the saga for chaining."""
        step_id = branch_id or f"{len(self._steps) + 1:02d}"
        self._steps.append(
            pb.Branch(
                branch_id=step_id,
                action=action,
                cancel=compensate,
                payload=_bytes(payload),
                depends_on=list(depends_on),
            )
        )
        return self

    async def submit(self, *, wait: bool = False, timeout_seconds: float | None = None) -> int:
        """Create and start the saga; with ``wait`` return once it is final. Returns the status."""
        async with _client(self._coordinator) as client:
            self.gid = await _new_gid(client, self.gid)
            request = pb.SubmitRequest(
                gid=self.gid, mode=pb.MODE_SAGA, options=self._options, branches=self._steps, wait_result=wait
            )
            response = await coordinator_call(client.stub.Submit(request, timeout=timeout_seconds))
            return response.status


def saga(
    coordinator: CoordinatorClient | CoordinatorAsyncStub | str,
    *,
    gid: str | None = None,
    concurrent: bool = False,
    retry_interval_ms: int = 0,
    retry_limit: int = 0,
    request_timeout_ms: int = 0,
    headers: Mapping[str, str] | None = None,
) -> Saga:
    """Start declaring a saga (steps run in order, or along ``depends_on`` when ``concurrent``)."""
    options = _options(
        timeout_ms=0,
        retry_interval_ms=retry_interval_ms,
        retry_limit=retry_limit,
        request_timeout_ms=request_timeout_ms,
        headers=headers,
        concurrent=concurrent,
    )
    return Saga(coordinator, gid, options)


# ============================================================================ MSG


class MsgBarrier(Protocol):
    """What :meth:`Msg.do_and_submit` needs from a barrier (:class:`meshkit.barrier.SqlBarrier` fits)."""

    async def call(
        self, ctx: TxContext, business: Callable[[AsyncSession], Awaitable[T]]
    ) -> BarrierResult[T]:
        """Run ``business`` inside the barrier's local transaction."""
        ...

    async def query_prepared(self, gid: str) -> None:
        """Return if the local transaction of ``gid`` committed, else raise ``BranchFailure``."""
        ...


class MsgUnitBarrier(Protocol):
    """What :meth:`Msg.do_and_submit_unit` needs (:class:`meshkit.barrier.RunnerBarrier` fits)."""

    async def run(self, ctx: TxContext, business: Unit[T]) -> BarrierResult[T]:
        """Run the unit ``business`` with the barrier row in one unit of work (one commit)."""
        ...

    async def query_prepared(self, gid: str) -> None:
        """Return if the local transaction of ``gid`` committed, else raise ``BranchFailure``."""
        ...


class Msg:
    """A two-phase message being declared (use :func:`msg`)."""

    def __init__(
        self,
        coordinator: CoordinatorClient | CoordinatorAsyncStub | str,
        query_prepared: str,
        gid: str | None,
        options: pb.TxOptions,
    ) -> None:
        self._coordinator = coordinator
        self.query_prepared = query_prepared
        self.gid = gid or ""
        self._options = options
        self._branches: list[pb.Branch] = []

    def add(
        self,
        action: str,
        payload: Payload = b"",
        *,
        branch_id: str | None = None,
        depends_on: Sequence[str] = (),
    ) -> Msg:
        """Add a branch the message delivers; returns the message for chaining.

        Branch ids default to ``01``, ``02``, ... in the order added. A branch with ``depends_on``
        (ids of branches of this message) is called only after all of them succeeded.
        """
        self._branches.append(
            pb.Branch(
                branch_id=branch_id or f"{len(self._branches) + 1:02d}",
                action=action,
                payload=_bytes(payload),
                depends_on=list(depends_on),
            )
        )
        return self

    async def prepare(self) -> int:
        """Record the message (before the local transaction). Returns the status."""
        async with _client(self._coordinator) as client:
            self.gid = await _new_gid(client, self.gid)
            request = pb.PrepareRequest(
                gid=self.gid,
                mode=pb.MODE_MSG,
                options=self._options,
                branches=self._branches,
                query_prepared=self.query_prepared,
            )
            return (await coordinator_call(client.stub.Prepare(request))).status

    async def submit(self, *, wait: bool = False) -> int:
        """Send the message (after the local transaction committed). Returns the status."""
        async with _client(self._coordinator) as client:
            request = pb.SubmitRequest(gid=self.gid, mode=pb.MODE_MSG, wait_result=wait)
            return (await coordinator_call(client.stub.Submit(request))).status

    async def abort(self, reason: str) -> int:
        """Drop the prepared message (its local transaction did not commit). Returns the status."""
        async with _client(self._coordinator) as client:
            request = pb.AbortRequest(gid=self.gid, reason=reason[:MAX_ABORT_REASON])
            return (await coordinator_call(client.stub.Abort(request))).status

    async def do_and_submit(
        self, barrier: MsgBarrier, business: Callable[[AsyncSession], Awaitable[R]], *, wait: bool = False
    ) -> R | None:
        """Prepare, run ``business`` as the local transaction through the barrier, then submit.

        * business failure (``BranchFailure``, including the barrier refusing a local transaction the
          coordinator's check-back already rolled back): abort the message and re-raise;
        * any other error: the outcome is unknown, so ask the barrier like the check-back would -
          committed: submit, then re-raise; not committed: abort, then re-raise;
        * success: submit and return what ``business`` returned.
        """
        return await self._local_then_submit(
            lambda ctx: barrier.call(ctx, business), barrier.query_prepared, wait=wait
        )

    async def do_and_submit_unit(
        self, barrier: MsgUnitBarrier, unit: Unit[R], *, wait: bool = False
    ) -> R | None:
        """:meth:`do_and_submit` with the local transaction as a unit of work on a store runner.

        ``unit`` and the barrier row of branch ``00`` commit together in ONE unit (one hop to the
        runner's thread); the check-back (``query_prepared`` on the same runner) sees that row.
        """
        return await self._local_then_submit(
            lambda ctx: barrier.run(ctx, unit), barrier.query_prepared, wait=wait
        )

    async def _local_then_submit(
        self,
        local: Callable[[TxContext], Awaitable[BarrierResult[R]]],
        query_prepared: Callable[[str], Awaitable[None]],
        *,
        wait: bool,
    ) -> R | None:
        await self.prepare()
        ctx = TxContext(gid=self.gid, branch_id=MSG_BRANCH, op=Op.MSG, mode=TxMode.MSG)
        try:
            result = await local(ctx)
        except BranchFailure as exc:
            await self._abort_quietly(f"local transaction failed: {exc}")
            raise
        except Exception as exc:
            try:
                await query_prepared(self.gid)
            except BranchFailure:
                await self._abort_quietly(f"local transaction failed: {exc}")
                raise exc from None
            except Exception:
                log.warning("msg %s: outcome unknown; the coordinator's check-back will decide", self.gid)
                raise exc from None
            await self.submit(wait=wait)
            raise
        await self.submit(wait=wait)
        return result.value

    async def _abort_quietly(self, reason: str) -> None:
        try:
            await self.abort(reason)
        except MeshError as exc:
            log.warning("abort of msg %s failed (%s); the check-back will decide", self.gid, exc)


def msg(
    coordinator: CoordinatorClient | CoordinatorAsyncStub | str,
    *,
    query_prepared: str,
    gid: str | None = None,
    timeout_ms: int = 0,
    retry_interval_ms: int = 0,
    retry_limit: int = 0,
    request_timeout_ms: int = 0,
    headers: Mapping[str, str] | None = None,
) -> Msg:
    """Start declaring a two-phase message whose check-back target is ``query_prepared``."""
    options = _options(
        timeout_ms=timeout_ms,
        retry_interval_ms=retry_interval_ms,
        retry_limit=retry_limit,
        request_timeout_ms=request_timeout_ms,
        headers=headers,
    )
    return Msg(coordinator, query_prepared, gid, options)


__all__ = [
    "CoordinatorClient",
    "Msg",
    "MsgBarrier",
    "MsgUnitBarrier",
    "Saga",
    "Tcc",
    "coordinator_call",
    "local_gid",
    "msg",
    "saga",
    "tcc",
]
