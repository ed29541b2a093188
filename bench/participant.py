"""A benchmark participant process: ``python -m bench.participant --port P --db-url URL``.

Service ``bench.v1.Account`` with typed branch RPCs (request ``common.v1.SkuQuantity``: ``sku`` = account,
``quantity`` = amount; reply ``common.v1.BranchReply``). Every op runs through the SQL barrier and does
two SQL statements in the barrier's local transaction, as a real participant would: one account update
and one journal insert. ``--barrier runner`` (the default) runs each op as one unit of work on the store
runner (:class:`RunnerBarrier`); ``--barrier session`` keeps the AsyncSession path (:class:`SqlBarrier`).

=============  =============================
``Try``        frozen += amount
``Confirm``    frozen -= amount, balance += amount
``Cancel``     frozen -= amount
``Action``     balance += amount
``Compensate`` balance -= amount
=============  =============================
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from meshkit.barrier import BARRIER_VERSIONS, RunnerBarrier, SqlBarrier
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import upgrade
from meshkit.observability.logging import setup_logging
from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock, SystemClock, now_ms
from meshkit.settings.config import DbSettings, LogSettings, MeshSettings, ServerSettings
from meshkit.store import Conn, StoreRunner
from meshkit.tx.context import require_context
from meshpb.common.v1 import common_pb2

SERVICE = "bench.v1.Account"
# method -> (balance factor, frozen factor)
EFFECTS: dict[str, tuple[int, int]] = {
    "Try": (0, 1),
    "Confirm": (1, -1),
    "Cancel": (0, -1),
    "Action": (1, 0),
    "Compensate": (-1, 0),
}
ACCOUNTS = 64  # rows the load spreads over (fewer rows = more lock contention)

Context = grpc.aio.ServicerContext[Any, Any]

metadata = MetaData()
account = Table(
    "bench_account",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("frozen", BigInteger, nullable=False),
)
journal = Table(
    "bench_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", String(128), nullable=False),
    Column("op", String(16), nullable=False),
    Column("account", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
)


def account_name(index: int) -> str:
    """The name of the ``index``-th benchmark account."""
    return f"acct-{index % ACCOUNTS:03d}"


class AccountService:
    """The branch handlers over one database, on the AsyncSession barrier."""

    def __init__(self, barrier: SqlBarrier, clock: Clock) -> None:
        self._barrier = barrier
        self._clock = clock
        self._writes = asyncio.Lock()

    def register(self, server: grpc.aio.Server) -> None:
        """Add the generic handlers of ``bench.v1.Account`` to ``server``."""
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                self._handler(method),
                request_deserializer=common_pb2.SkuQuantity.FromString,
                response_serializer=common_pb2.BranchReply.SerializeToString,
            )
            for method in EFFECTS
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])

    def _handler(
        self, method: str
    ) -> Callable[[common_pb2.SkuQuantity, Context], Awaitable[common_pb2.BranchReply]]:
        balance_factor, frozen_factor = EFFECTS[method]

        async def handle(request: common_pb2.SkuQuantity, context: Context) -> common_pb2.BranchReply:
            ctx = require_context(context.invocation_metadata())
            amount = request.quantity

            async def business(session: AsyncSession) -> None:
                await session.execute(
                    update(account)
                    .where(account.c.name == request.sku)
                    .values(
                        balance=account.c.balance + balance_factor * amount,
                        frozen=account.c.frozen + frozen_factor * amount,
                    )
                )
                await session.execute(
                    journal.insert().values(
                        gid=ctx.gid,
                        op=ctx.op.value,
                        account=request.sku,
                        amount=amount,
                        at=now_ms(self._clock),
                    )
                )

            # One writer at a time in this process: SQLite has one write lock anyway, and queueing here
            # is cheaper than its busy handler (so the direct baseline is as fast as it can be).
            async with self._writes:
                result = await self._barrier.call(ctx, business)
            return common_pb2.BranchReply(note=result.outcome.value)

        return handle


class RunnerAccountService:
    """The same branch handlers as units of work on the store runner (one hop per op, group commit)."""

    def __init__(self, barrier: RunnerBarrier, clock: Clock) -> None:
        self._barrier = barrier
        self._clock = clock

    def register(self, server: grpc.aio.Server) -> None:
        """Add the generic handlers of ``bench.v1.Account`` to ``server``."""
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                self._handler(*factors),
                request_deserializer=common_pb2.SkuQuantity.FromString,
                response_serializer=common_pb2.BranchReply.SerializeToString,
            )
            for method, factors in EFFECTS.items()
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])

    def _handler(
        self, balance_factor: int, frozen_factor: int
    ) -> Callable[[common_pb2.SkuQuantity, Context], Awaitable[common_pb2.BranchReply]]:
        async def handle(request: common_pb2.SkuQuantity, context: Context) -> common_pb2.BranchReply:
            ctx = require_context(context.invocation_metadata())
            name, amount = request.sku, request.quantity
            at = now_ms(self._clock)

            def business(conn: Conn) -> None:
                conn.execute(UPDATE_SQL, (balance_factor * amount, frozen_factor * amount, name))
                conn.execute(JOURNAL_SQL, (ctx.gid, ctx.op.value, name, amount, at))

            result = await self._barrier.run(ctx, business)
            return common_pb2.BranchReply(note=result.outcome.value)

        return handle


UPDATE_SQL = "UPDATE bench_account SET balance = balance + ?, frozen = frozen + ? WHERE name = ?"
JOURNAL_SQL = "INSERT INTO bench_journal (gid, op, account, amount, at) VALUES (?, ?, ?, ?, ?)"


async def prepare_database(db_url: str) -> AsyncEngine:
    """Migrate the barrier, create the tables and the accounts (once); the engine stays open."""
    db = create_engine(DbSettings(url=db_url))
    await upgrade(db, "barrier", BARRIER_VERSIONS)
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
        existing = (await conn.execute(account.select().limit(1))).first()
        if existing is None:
            await conn.execute(
                account.insert(),
                [{"name": account_name(i), "balance": 0, "frozen": 0} for i in range(ACCOUNTS)],
            )
    return db


async def serve(port: int, db_url: str, barrier: str = "runner") -> None:
    """Create the tables and accounts, then serve until SIGTERM."""
    clock = SystemClock()
    db = await prepare_database(db_url)
    settings = MeshSettings(
        server=ServerSettings(host="127.0.0.1", port=port), log=LogSettings(level="WARNING")
    )
    register: Callable[[grpc.aio.Server], None]
    if barrier == "runner":
        runner = StoreRunner.for_engine(db, settings.store)
        register = RunnerAccountService(RunnerBarrier(runner, clock), clock).register
    else:
        register = AccountService(SqlBarrier(db, clock), clock).register
    server = MeshServer(settings, "bench-participant", [register], [SERVICE])
    if barrier == "runner":
        server.add_stop_hook(runner.close)
    server.add_stop_hook(db.dispose)
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m bench.participant``."""
    parser = argparse.ArgumentParser(prog="bench.participant")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--barrier", choices=("runner", "session"), default="runner")
    args = parser.parse_args(argv)
    setup_logging(LogSettings(level="WARNING"))
    asyncio.run(serve(args.port, args.db_url, args.barrier))


if __name__ == "__main__":
    main()
