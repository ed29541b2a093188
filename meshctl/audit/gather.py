"""Gather one audit snapshot over gRPC: each service's ``Audit`` plus the coordinator's view.

The coordinator is asked before and after the services (Admin ``Stats``, ``List`` of the unfinished
statuses, ``Stuck``): a transaction unfinished in either view, or a change of the transaction count in
between, means figures may have been caught mid-change (see :mod:`meshctl.audit.checks`). Without a
usable Admin API (no token, or not served) the coordinator is asked with ``Query`` for the transaction
of every order instead, and the view says it is partial.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import grpc.aio

from meshctl.audit.checks import all_pass, run_checks
from meshctl.audit.clients import MeshClients
from meshctl.audit.model import UNFINISHED_STATUSES, CheckResult, CoordinatorView, MeshReport
from meshkit.runtime.clock import Clock, now_ms
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2

RPC_SECONDS = 15.0
PAGE_LIMIT = 500
QUERY_CONCURRENCY = 16
RETRY_INTERVAL_SECONDS = 0.5
UNREACHABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
ADMIN_REFUSED_CODES = (
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
)


class ServiceUnreachable(Exception):
    """Services did not answer their audit question (down, or not implementing ``Audit``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def describe_rpc_failure(service: str, address: str, error: grpc.aio.AioRpcError) -> str:
    """``order_svc at 127.0.0.1:50051 cannot be audited: UNAVAILABLE (...) - is it running?``."""
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    detail = (error.details() or "").strip()
    hint = {
        "UNAVAILABLE": "is it running? try meshctl status",
        "DEADLINE_EXCEEDED": "it did not answer in time",
        "UNIMPLEMENTED": "this build of the service does not answer Audit",
    }.get(name, "")
    parts = [f"{service} at {address} cannot be audited: {name}"]
    if detail:
        parts.append(f"({detail[:200]})")
    if hint:
        parts.append(f"- {hint}")
    return " ".join(parts)


def _unreachable(service: str, address: str, error: grpc.aio.AioRpcError) -> ServiceUnreachable:
    return ServiceUnreachable([describe_rpc_failure(service, address, error)])


T = TypeVar("T")


def _value(answer: T | BaseException) -> T:
    if isinstance(answer, BaseException):
        raise answer
    return answer


async def _ask(service: str, address: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise _unreachable(service, address, exc) from None


@dataclass(frozen=True, slots=True)
class _AdminSnapshot:
    total: int
    unfinished: dict[str, cpb.Transaction]
    stuck: frozenset[str]


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """The last snapshot gathered, its check results, and how many snapshots it took."""

    report: MeshReport
    results: list[CheckResult]
    attempts: int


async def _admin_snapshot(clients: MeshClients) -> _AdminSnapshot | str:
    """The Admin view, or why it is not usable; ServiceUnreachable when the coordinator is down."""
    if not clients.admin_token:
        return "no admin token (--token, MESH_ADMIN__TOKEN or <data-dir>/admin.token)"
    meta = clients.admin_metadata
    try:
        stats = await clients.admin.Stats(cpb.StatsRequest(), metadata=meta, timeout=RPC_SECONDS)
        unfinished: dict[str, cpb.Transaction] = {}
        for status in UNFINISHED_STATUSES:
            cursor = ""
            while True:
                page = await clients.admin.List(
                    cpb.ListRequest(status=status, cursor=cursor, limit=PAGE_LIMIT),
                    metadata=meta,
                    timeout=RPC_SECONDS,
                )
                unfinished.update((tx.gid, tx) for tx in page.transactions)
                cursor = page.next_cursor
                if not cursor:
                    break
        stuck = await clients.admin.Stuck(
            cpb.StuckRequest(limit=PAGE_LIMIT), metadata=meta, timeout=RPC_SECONDS
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in ADMIN_REFUSED_CODES:
            return f"Admin answered {exc.code().name}"
        raise _unreachable("coordinator", clients.addresses.coordinator, exc) from None
    total = sum(c.count for c in stats.counts)
    return _AdminSnapshot(total, unfinished, frozenset(tx.gid for tx in stuck.transactions))


async def _queried_view(clients: MeshClients, orders: order_pb2.OrderAudit) -> list[cpb.Transaction]:
    """The unfinished transactions among those that placed the orders (``Coordinator.Query`` each)."""
    gids = sorted({o.gid for o in orders.orders if o.gid})
    limit = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(gid: str) -> cpb.Transaction | None:
        async with limit:
            try:
                reply = await clients.coordinator.Query(cpb.QueryRequest(gid=gid), timeout=RPC_SECONDS)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise _unreachable("coordinator", clients.addresses.coordinator, exc) from None
        return reply.transaction

    found = await asyncio.gather(*(one(g) for g in gids))
    return [tx for tx in found if tx is not None and tx.status in UNFINISHED_STATUSES]


async def gather_report(clients: MeshClients, clock: Clock) -> MeshReport:
    """One snapshot of every service's figures and the coordinator's view."""
    before = await _admin_snapshot(clients)
    a = clients.addresses
    request = common_pb2.AuditRequest()
    # order_svc first: an order it shows REFUNDED had all its refunds committed before pay_svc and
    # points_svc are read, so a REFUNDED order without its refund is a real violation, not a race.
    (order_answer,) = await asyncio.gather(
        _ask("order_svc", a.order, clients.order.Audit(request, timeout=RPC_SECONDS)), return_exceptions=True
    )
    stock_answer, points_answer, pay_answer = await asyncio.gather(
        _ask("stock_svc", a.stock, clients.stock.Audit(request, timeout=RPC_SECONDS)),
        _ask("points_svc", a.points, clients.points.Audit(request, timeout=RPC_SECONDS)),
        _ask("pay_svc", a.pay, clients.pay.Audit(request, timeout=RPC_SECONDS)),
        return_exceptions=True,
    )
    answers = (stock_answer, points_answer, order_answer, pay_answer)
    problems = [p for x in answers if isinstance(x, ServiceUnreachable) for p in x.problems]
    if problems:
        raise ServiceUnreachable(problems)
    stock, points, orders, pay = (
        _value(answers[0]),
        _value(answers[1]),
        _value(answers[2]),
        _value(answers[3]),
    )
    if isinstance(before, str):
        unfinished = await _queried_view(clients, orders)
        view = CoordinatorView(
            now_ms=now_ms(clock),
            unfinished=tuple(unfinished),
            stuck_gids=frozenset(tx.gid for tx in unfinished if tx.stuck),
            complete=False,
            note=f"partial coordinator view ({before}): only the transactions placing orders were checked",
        )
        return MeshReport(stock, points, orders, pay, view)
    after = await _admin_snapshot(clients)
    if isinstance(after, str):  # the Admin API went away between the two questions
        after = before
    merged = {**before.unfinished, **after.unfinished}
    view = CoordinatorView(
        now_ms=now_ms(clock),
        unfinished=tuple(merged[g] for g in sorted(merged)),
        stuck_gids=before.stuck | after.stuck,
        activity=before.total != after.total,
    )
    return MeshReport(stock, points, orders, pay, view)


# Told after each attempt that will be repeated: its number, its results, the seconds left.
AttemptHook = Callable[[int, list[CheckResult], float], None]


def _no_report(attempt: int, results: list[CheckResult], left_seconds: float) -> None:
    """The default :data:`AttemptHook`: report nothing."""


async def audit_until_settled(
    clients: MeshClients,
    clock: Clock,
    *,
    wait_seconds: float,
    interval: float = RETRY_INTERVAL_SECONDS,
    on_attempt: AttemptHook = _no_report,
) -> AuditOutcome:
    """Gather and check; repeat until every check passes or ``wait_seconds`` are up (0 = once)."""
    deadline = clock.monotonic() + wait_seconds
    attempts = 0
    while True:
        attempts += 1
        report = await gather_report(clients, clock)
        results = run_checks(report)
        if all_pass(results) or clock.monotonic() + interval > deadline:
            return AuditOutcome(report, results, attempts)
        on_attempt(attempts, results, deadline - clock.monotonic())
        await clock.sleep(interval)
