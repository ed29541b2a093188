"""Pages of the Admin ``List`` for the console: gid-prefix filtering and the overview's plot data.

The Admin API filters by status, mode and creation time; a gid prefix is applied here, scanning at
most :data:`MAX_SCAN_PAGES` pages per console page (the next cursor continues the scan).
"""

from __future__ import annotations

from dataclasses import dataclass

from console.admin_client import AdminClient
from console.filters import TxFilter
from console.plot import MINUTE_MS, Plot, buckets, plot
from console.present import UNFINISHED, ms_of
from meshpb.coordinator.v1 import coordinator_pb2 as pb

SCAN_PAGE = 500
MAX_SCAN_PAGES = 10
PLOT_PAGES = 2
OLDEST_SLACK_MS = 1000


@dataclass(frozen=True, slots=True)
class Page:
    """Transactions of one console page and the cursor of the next (empty = last)."""

    transactions: list[pb.Transaction]
    next_cursor: str
    scanned: int


async def find_page(client: AdminClient, flt: TxFilter, now_ms: int) -> Page:
    """The page ``flt`` asks for."""
    if not flt.gid_prefix:
        request = flt.request(now_ms, flt.cursor)
        request.limit = flt.limit
        reply = await client.list(request)
        return Page(list(reply.transactions), reply.next_cursor, len(reply.transactions))
    found: list[pb.Transaction] = []
    cursor, scanned = flt.cursor, 0
    for _ in range(MAX_SCAN_PAGES):
        request = flt.request(now_ms, cursor)
        request.limit = SCAN_PAGE
        reply = await client.list(request)
        scanned += len(reply.transactions)
        found.extend(tx for tx in reply.transactions if tx.gid.startswith(flt.gid_prefix))
        cursor = reply.next_cursor
        if not cursor or len(found) >= flt.limit:
            break
    return Page(found, cursor, scanned)


async def _finished_ms(client: AdminClient, status: int, since_ms: int) -> tuple[list[int], bool]:
    request = pb.ListRequest(status=status, limit=SCAN_PAGE)  # type: ignore[arg-type]
    request.created_after.FromMilliseconds(since_ms)
    stamps: list[int] = []
    for _ in range(PLOT_PAGES):
        reply = await client.list(request)
        stamps.extend(ms_of(tx.finished_at) or ms_of(tx.updated_at) for tx in reply.transactions)
        if not reply.next_cursor:
            return stamps, False
        request.cursor = reply.next_cursor
    return stamps, True


async def throughput(client: AdminClient, now_ms: int, minutes: int) -> Plot:
    """Succeeded and failed transactions per minute over the last ``minutes`` (by when they finished)."""
    since = now_ms - minutes * MINUTE_MS
    ok, ok_capped = await _finished_ms(client, pb.STATUS_SUCCEEDED, since)
    bad, bad_capped = await _finished_ms(client, pb.STATUS_FAILED, since)
    return plot(buckets(ok, now_ms, minutes), buckets(bad, now_ms, minutes), capped=ok_capped or bad_capped)


async def oldest_unfinished(client: AdminClient, now_ms: int, age_ms: int) -> pb.Transaction | None:
    """The unfinished transaction Stats' ``oldest_unfinished`` speaks of (None when gone meanwhile).

    ``List`` is newest first, so one page of each unfinished status created up to that moment (plus a
    second of slack for the clocks) holds it.
    """
    found: list[pb.Transaction] = []
    for status in UNFINISHED:
        request = pb.ListRequest(status=status, limit=1)
        request.created_before.FromMilliseconds(now_ms - age_ms + OLDEST_SLACK_MS)
        found.extend((await client.list(request)).transactions)
    return min(found, key=lambda tx: ms_of(tx.created_at), default=None)
