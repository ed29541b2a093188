"""A real test participant for coordinator tests: a gRPC server with typed branch RPCs.

Service ``test.bank.v1.Bank`` (generic handlers with protobuf types: request ``SkuQuantity`` with
``sku`` = account and ``quantity`` = amount, reply ``BranchReply``) on a :class:`MeshServer`, so the
real interceptors map domain errors to status codes. Every branch RPC runs through the SQL barrier and
changes a real table in the same local transaction:

====================  ============================================================
``Try``               frozen += amount
``Confirm``           frozen -= amount, balance += amount
``Cancel``            frozen -= amount
``Action``            balance += amount (saga step / MSG branch)
``Compensate``        balance -= amount
``QueryPrepared``     the MSG check-back: barrier.query_prepared(gid)
====================  ============================================================

Each applied business op also appends a ``ledger`` row (no uniqueness: a duplicate would show).
Knobs: :meth:`Bank.fail` (answer a status code N times before running), :meth:`Bank.hold` (block calls
until released), and :attr:`Bank.calls` counts every call per ``(gid, branch, op)``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from meshkit.barrier import BARRIER_VERSIONS, BarrierMetrics, SqlBarrier
from meshkit.errors import BranchFailure, BranchOngoing, MeshError, TransientError
from meshkit.infra.migrate import upgrade
from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock, SystemClock, now_ms
from meshkit.settings.config import MeshSettings, ServerSettings
from meshkit.tx.context import TxContext, require_context
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2

SERVICE = "test.bank.v1.Bank"
METHODS = ("Try", "Confirm", "Cancel", "Action", "Compensate", "QueryPrepared")

Context = grpc.aio.ServicerContext[Any, Any]

metadata = MetaData()
account = Table(
    "bank_account",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("balance", BigInteger, nullable=False, default=0),
    Column("frozen", BigInteger, nullable=False, default=0),
)
ledger = Table(
    "bank_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", String(128), nullable=False),
    Column("branch_id", String(64), nullable=False),
    Column("op", String(16), nullable=False),
    Column("account", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
)

# method -> (balance delta factor, frozen delta factor)
EFFECTS: dict[str, tuple[int, int]] = {
    "Try": (0, 1),
    "Confirm": (1, -1),
    "Cancel": (0, -1),
    "Action": (1, 0),
    "Compensate": (-1, 0),
}


@dataclass
class Fault:
    """Answer ``code`` instead of running, ``times`` more times (optionally for one gid / branch)."""

    code: grpc.StatusCode
    times: int
    gid: str | None = None
    branch: str | None = None


def _error(code: grpc.StatusCode, method: str) -> MeshError:
    message = f"injected {code.name} in {method}"
    if code is grpc.StatusCode.ABORTED:
        return BranchFailure(message)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return BranchOngoing(message)
    return TransientError(message, code=code.name)


@dataclass
class Bank:
    """The participant; start with :meth:`start`, stop with :meth:`stop`."""

    db: AsyncEngine
    clock: Clock = field(default_factory=SystemClock)
    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sequence: list[tuple[str, str, str]] = field(default_factory=list)
    metadata: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)
    port: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)  # its server's and barrier's
    _faults: dict[str, list[Fault]] = field(default_factory=dict)
    _holds: dict[str, asyncio.Event] = field(default_factory=dict)
    _server: MeshServer | None = None
    _barrier: SqlBarrier | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Bank:
        """Create the tables and serve on a free 127.0.0.1 port."""
        await upgrade(self.db, "barrier", BARRIER_VERSIONS)
        async with self.db.begin() as conn:
            await conn.run_sync(metadata.create_all)
        self._barrier = SqlBarrier(self.db, self.clock, metrics=BarrierMetrics(self.registry, "bank"))
        settings = MeshSettings(server=ServerSettings(host="127.0.0.1", port=0, grace_seconds=0.5))
        self._server = MeshServer(settings, "bank", [self._register], [SERVICE], registry=self.registry)
        self.port = await self._server.start()
        return self

    async def stop(self) -> None:
        """Stop serving (held calls are released first)."""
        for gate in self._holds.values():
            gate.set()
        if self._server is not None:
            await self._server.stop(0.5)

    @property
    def barrier(self) -> SqlBarrier:
        """The participant's SQL barrier (e.g. for a MSG initiator's local transaction)."""
        assert self._barrier is not None
        return self._barrier

    def target(self, method: str) -> str:
        """``127.0.0.1:<port>/test.bank.v1.Bank/<method>``."""
        return f"127.0.0.1:{self.port}/{SERVICE}/{method}"

    # ------------------------------------------------------------------ knobs

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        times: int = 1,
        gid: str | None = None,
        branch: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (for ``gid``/``branch``, if given) answer ``code``."""
        self._faults.setdefault(method, []).append(Fault(code, times, gid, branch))

    def hold(self, method: str) -> asyncio.Event:
        """Block calls of ``method`` until the returned event is set."""
        gate = asyncio.Event()
        self._holds[method] = gate
        return gate

    def release(self, method: str) -> None:
        """Let held calls of ``method`` go on, and stop holding new ones."""
        gate = self._holds.pop(method, None)
        if gate is not None:
            gate.set()

    def arrival(self, method: str) -> asyncio.Event:
        """An event set when a call of ``method`` arrives."""
        return self.arrived.setdefault(method, asyncio.Event())

    # ------------------------------------------------------------------ queries

    async def balance(self, name: str) -> tuple[int, int]:
        """``(balance, frozen)`` of an account (0, 0 when it never moved)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(select(account.c.balance, account.c.frozen).where(account.c.name == name))
            ).first()
        return (int(row[0]), int(row[1])) if row is not None else (0, 0)

    async def applied(self, gid: str | None = None) -> Counter[tuple[str, str, str]]:
        """How often each ``(gid, branch, op)`` changed the business table."""
        stmt = select(ledger.c.gid, ledger.c.branch_id, ledger.c.op, func.count()).group_by(
            ledger.c.gid, ledger.c.branch_id, ledger.c.op
        )
        if gid is not None:
            stmt = stmt.where(ledger.c.gid == gid)
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return Counter({(r[0], r[1], r[2]): int(r[3]) for r in rows})

    def sequence_of(self, gid: str) -> list[tuple[str, str]]:
        """The calls received for ``gid`` in arrival order, as ``(branch, op)``."""
        return [(b, o) for g, b, o in self.sequence if g == gid]

    def calls_of(self, gid: str) -> Counter[tuple[str, str]]:
        """Calls received for ``gid`` by ``(branch, op)``."""
        return Counter({(b, o): n for (g, b, o), n in self.calls.items() if g == gid})

    # ------------------------------------------------------------------ serving

    def _register(self, server: grpc.aio.Server) -> None:
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                self._handler(method),
                request_deserializer=common_pb2.SkuQuantity.FromString,
                response_serializer=common_pb2.BranchReply.SerializeToString,
            )
            for method in METHODS
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])

    def _handler(
        self, method: str
    ) -> Callable[[common_pb2.SkuQuantity, Context], Awaitable[common_pb2.BranchReply]]:
        async def handle(request: common_pb2.SkuQuantity, context: Context) -> common_pb2.BranchReply:
            ctx = require_context(context.invocation_metadata())
            self.calls[(ctx.gid, ctx.branch_id, ctx.op.value)] += 1
            self.sequence.append((ctx.gid, ctx.branch_id, ctx.op.value))
            self.metadata[(ctx.gid, ctx.branch_id, ctx.op.value)] = {
                k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)
            }
            self.arrival(method).set()
            gate = self._holds.get(method)
            if gate is not None:
                await gate.wait()
            self._maybe_fail(method, ctx)
            if method == "QueryPrepared":
                await self.barrier.query_prepared(ctx.gid)
                return common_pb2.BranchReply(note="committed")
            result = await self.barrier.call(ctx, self._business(method, ctx, request))
            return common_pb2.BranchReply(note=result.outcome.value)

        return handle

    def _maybe_fail(self, method: str, ctx: TxContext) -> None:
        for fault in self._faults.get(method, []):
            if fault.times > 0 and fault.gid in (None, ctx.gid) and fault.branch in (None, ctx.branch_id):
                fault.times -= 1
                raise _error(fault.code, method)

    def _business(
        self, method: str, ctx: TxContext, request: common_pb2.SkuQuantity
    ) -> Callable[[AsyncSession], Awaitable[None]]:
        balance_factor, frozen_factor = EFFECTS[method]
        amount = request.quantity

        async def apply(session: AsyncSession) -> None:
            await apply_to_account(session, request.sku, balance_factor * amount, frozen_factor * amount)
            await session.execute(
                ledger.insert().values(
                    gid=ctx.gid,
                    branch_id=ctx.branch_id,
                    op=ctx.op.value,
                    account=request.sku,
                    amount=amount,
                    at=now_ms(self.clock),
                )
            )

        return apply


async def apply_to_account(session: AsyncSession, name: str, balance: int, frozen: int) -> None:
    """Add to an account's balance and frozen amounts (creating it at zero first).

    The creation is an insert-if-absent, so two concurrent first ops on one account cannot collide
    on its primary key (MySQL runs them concurrently; SQLite serialises them anyway).
    """
    change = (
        update(account)
        .where(account.c.name == name)
        .values(balance=account.c.balance + balance, frozen=account.c.frozen + frozen)
    )
    changed = await session.execute(change)
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        zero = {"name": name, "balance": 0, "frozen": 0}
        create = (
            mysql_insert(account).values(zero).prefix_with("IGNORE")
            if session.get_bind().dialect.name == "mysql"
            else sqlite_insert(account).values(zero).on_conflict_do_nothing()
        )
        await session.execute(create)
        await session.execute(change)


def payload(account_name: str, amount: int) -> bytes:
    """The request bytes of a Bank branch."""
    return common_pb2.SkuQuantity(sku=account_name, quantity=amount).SerializeToString()


def tcc_branch(bank: Bank, branch_id: str, name: str, amount: int) -> coordinator_pb2.Branch:
    """A TCC branch on ``bank``'s Try/Confirm/Cancel moving ``amount`` on account ``name``."""
    return coordinator_pb2.Branch(
        branch_id=branch_id,
        action=bank.target("Try"),
        confirm=bank.target("Confirm"),
        cancel=bank.target("Cancel"),
        payload=payload(name, amount),
    )
