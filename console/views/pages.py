"""The pages: overview, transactions, transaction detail, stuck and audit (GET only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from google.protobuf.duration_pb2 import Duration
from starlette.requests import Request
from starlette.responses import Response

from console.admin_client import Action
from console.filters import StuckFilter, TxFilter
from console.listing import find_page, oldest_unfinished, throughput
from console.present import MODES, STATUSES, UNFINISHED
from console.views.common import error_page, render, state_of
from meshctl.audit.checks import all_pass
from meshctl.audit.gather import ServiceUnreachable, audit_until_settled
from meshpb.coordinator.v1 import coordinator_pb2 as pb

STUCK_LIMIT = 200


async def overview_context(request: Request) -> dict[str, Any]:
    """What the overview (and its live fragment) shows."""
    console = state_of(request)
    now = console.now_ms()
    stats = await console.admin.stats()
    table: dict[int, dict[int, int]] = {m: dict.fromkeys(STATUSES, 0) for m in MODES}
    for row in stats.counts:
        table.setdefault(row.mode, dict.fromkeys(STATUSES, 0))[row.status] = row.count
    totals = {s: sum(table[m].get(s, 0) for m in table) for s in STATUSES}
    unfinished = sum(totals[s] for s in UNFINISHED)
    age_ms = int(stats.oldest_unfinished.ToMilliseconds())
    oldest = await oldest_unfinished(console.admin, now, age_ms) if unfinished else None
    return {
        "oldest": oldest,
        "stats": stats,
        "table": table,
        "totals": totals,
        "unfinished": unfinished,
        "plot": await throughput(console.admin, now, console.section.plot_minutes),
    }


async def overview(request: Request) -> Response:
    """Counts by mode and status, stuck, paused, the oldest unfinished and the throughput plot."""
    return render(request, "overview.html", **await overview_context(request))


async def transactions(request: Request) -> Response:
    """Transactions, newest first, filtered; cursor paging."""
    console = state_of(request)
    flt = TxFilter.parse(request.query_params)
    page = await find_page(console.admin, flt, console.now_ms())
    params = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
    next_url = (
        f"/transactions?{urlencode({**params, 'cursor': page.next_cursor})}" if page.next_cursor else ""
    )
    return render(
        request,
        "transactions.html",
        page=page,
        flt=flt,
        params=params,
        next_url=next_url,
        statuses=STATUSES,
        modes=MODES,
    )


async def detail_context(request: Request) -> dict[str, Any]:
    """What the detail page (and its live fragment) shows."""
    tx = await state_of(request).admin.get(request.path_params["gid"])
    branches: dict[str, list[pb.BranchOp]] = {}
    for op in tx.ops:
        branches.setdefault(op.branch_id, []).append(op)
    return {"tx": tx, "branches": branches, "history": sorted(tx.history, key=lambda e: e.at.ToNanoseconds())}


async def detail(request: Request) -> Response:
    """One transaction: options, branches and ops, history timeline, the actions."""
    return render(request, "detail.html", actions=list(Action), **await detail_context(request))


async def stuck(request: Request) -> Response:
    """Unfinished transactions flagged stuck, or old and retried often: what needs a person, and why."""
    console = state_of(request)
    flt = StuckFilter.parse(request.query_params, console.section.stuck_min_attempts)
    older = Duration()
    older.FromMilliseconds(flt.older_ms)
    reply = await console.admin.stuck(
        pb.StuckRequest(older_than=older, min_attempts=flt.min_attempts, limit=STUCK_LIMIT)
    )
    return render(request, "stuck.html", transactions=list(reply.transactions), flt=flt)


async def audit(request: Request) -> Response:
    """The ``meshctl audit`` invariants with their numbers (one snapshot)."""
    console = state_of(request)
    if console.mesh is None:
        return error_page(request, 503, "audit unavailable", "the console was started without the peers")
    try:
        outcome = await audit_until_settled(console.mesh, console.clock, wait_seconds=0)
    except ServiceUnreachable as exc:
        return error_page(request, 503, "the mesh cannot be audited", "; ".join(exc.problems))
    return render(
        request,
        "audit.html",
        results=outcome.results,
        view=outcome.report.coordinator,
        passed=all_pass(outcome.results),
    )
