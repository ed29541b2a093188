"""PlaceOrder: validation, the request record (idempotency on ``request_id``) and the placing TCC.

Idempotency, decided here:

* The first call with a ``request_id`` inserts its record (gid, order ids, state ``pending``, a lease)
  before the transaction starts; the gid is derived from the ``request_id``
  (:func:`order_svc.placing.rules.place_gid`), the order ids are fixed in the record.
* A duplicate - a retry, or a concurrent second call - finds the record: ``placed`` answers the same order
  ids and gid; ``failed`` answers the same failure (ABORTED with the stored reason) and never places a
  new order: a request id names one attempt, and a client that wants to try again uses a new one;
  ``pending`` waits (polling, up to ``order.place_wait_seconds``) for the first call to finish.
* A record reused for a different request (other user, items or points) is refused: INVALID_ARGUMENT on
  ``request_id``.
* A pending record whose lease expired lost its initiator (crash, or the outcome was unknown): the next
  duplicate - or the sweeper - asks the coordinator: committed -> placed; rolled back -> failed;
  still prepared -> abort it, failed; unknown to the coordinator -> a duplicate carrying the request
  takes the lease over and runs the transaction (same gid, same ids), the sweeper fences the gid
  (prepare + abort) so it can never commit, then marks it failed.

Outcome codes: a business refusal of any participant (stock out, points short) and a transaction rolled
back for any other reason both answer ABORTED ("retry at a higher level" = with a new request id), the
reason in the message. An unknown outcome (the coordinator unreachable at submit) answers UNAVAILABLE:
retry with the same request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from meshkit.errors import BranchFailure, FailedPrecondition, InvalidArgument, MeshError, TransientError
from meshkit.runtime.clock import Clock, now_ms
from meshkit.runtime.ids import Snowflake
from order_svc.adapters.ports import Catalogue, Mesh, RolledBack, TxState, TxView
from order_svc.config import OrderSection
from order_svc.orders.queries import OrderRepo, clip
from order_svc.orders.values import PlaceRequest, PlaceResult, RequestRecord, RequestState
from order_svc.placing.known_skus import KnownSkus
from order_svc.placing.rules import (
    check_catalogue,
    fingerprint,
    merchant_count,
    place_gid,
    plan_orders,
    validate_request,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
MS = 1000
LEASE_MARGIN_SECONDS = 30.0
COMMITTED = frozenset({TxState.SUBMITTED, TxState.SUCCEEDED})
ROLLED_BACK = frozenset({TxState.ABORTING, TxState.FAILED})


class OrderRejected(BranchFailure):
    """The placing transaction rolled back: ``ABORTED`` with the reason."""


class Placement:
    """PlaceOrder and the resolution of requests whose initiator was lost."""

    def __init__(
        self,
        *,
        repo: OrderRepo,
        mesh: Mesh,
        catalogue: Catalogue,
        ids: Snowflake,
        clock: Clock,
        settings: OrderSection,
    ) -> None:
        self._repo = repo
        self._mesh = mesh
        self._catalogue = KnownSkus(catalogue)
        self._ids = ids
        self._clock = clock
        self._settings = settings
        # Placements whose caller went away: they run to the end regardless (see :meth:`place`).
        self._running: set[asyncio.Task[PlaceResult]] = set()

    @property
    def lease_ms(self) -> int:
        """How long the initiator of a request owns it: the transaction's timeout twice, plus a margin."""
        return round((2 * self._settings.tx_timeout_seconds + LEASE_MARGIN_SECONDS) * MS)

    async def place(self, request: PlaceRequest, *, check_prices: bool = True) -> PlaceResult:
        """Place the orders of ``request`` (idempotent on its ``request_id``).

        ``check_prices=False`` (flash sale orders, whose price is the sale's) skips the catalogue price
        check; SKU and merchant are still checked (against the cache of :mod:`~order_svc.placing.known_skus`
        when it knows every SKU; with prices checked the catalogue is always read).

        The placement is shielded from the caller's cancellation: a client that gives up (deadline,
        disconnect) does not cut a transaction in half; it runs to the end and records its outcome,
        so the client's retry with the same ``request_id`` finds it settled instead of waiting for the
        lease to lapse.
        """
        task = asyncio.get_running_loop().create_task(self._place(request, check_prices))
        self._running.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Task[PlaceResult]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a placement whose caller left does not log "never retrieved".
            log.debug("placement ended with %r", task.exception())

    async def _place(self, request: PlaceRequest, check_prices: bool) -> PlaceResult:
        validate_request(
            request, max_items=self._settings.max_items, max_quantity=self._settings.max_quantity
        )
        digest = fingerprint(request)
        record = await self._repo.get_request(request.request_id)
        if record is not None:
            return await self._follow(record, request, digest)
        known = await self._catalogue.get_skus({item.sku for item in request.items}, need_prices=check_prices)
        check_catalogue(request.items, known, check_prices=check_prices)
        order_ids = tuple(self._ids.next_str() for _ in range(merchant_count(request)))
        plan = plan_orders(request, order_ids, place_gid(request.request_id))
        now = now_ms(self._clock)
        record = RequestRecord(
            request_id=request.request_id,
            user_id=request.user_id,
            fingerprint=digest,
            gid=plan.gid,
            order_ids=order_ids,
            state=RequestState.PENDING,
            reason="",
            lease_until_ms=now + self.lease_ms,
            created_at_ms=now,
        )
        if not await self._repo.insert_request(record):
            existing = await self._repo.get_request(request.request_id)
            if existing is None:
                raise TransientError(f"request {request.request_id}: record vanished; retry")
            return await self._follow(existing, request, digest)
        return await self._run(request, record)

    async def _run(self, request: PlaceRequest, record: RequestRecord) -> PlaceResult:
        """Run the transaction of ``record`` (whose lease we hold) and record its outcome."""
        plan = plan_orders(request, record.order_ids, record.gid)
        try:
            await self._mesh.place(plan)
        except RolledBack as exc:
            log.info("placing %s rolled back: %s", record.gid, exc.reason, extra={"gid": record.gid})
            final = await self._finish(record, RequestState.FAILED, exc.reason)
        except MeshError as exc:
            await self._repo.set_lease(record.request_id, record.lease_until_ms, 0, now_ms(self._clock))
            raise TransientError(
                f"placing {record.gid}: outcome unknown ({exc}); retry with the same request_id"
            ) from exc
        else:
            final = await self._finish(record, RequestState.PLACED, "")
        return self._answer(final)

    async def _finish(self, record: RequestRecord, state: RequestState, reason: str) -> RequestRecord:
        """Record the outcome (unless someone else already did); answers the record as it is now."""
        if await self._repo.finish_request(record.request_id, state, reason, now_ms(self._clock)):
            return replace(record, state=state, reason=clip(reason))
        current = await self._repo.get_request(record.request_id)
        return current if current is not None else replace(record, state=state, reason=reason)

    @staticmethod
    def _answer(record: RequestRecord) -> PlaceResult:
        """The answer of a finished record."""
        if record.state is RequestState.PLACED:
            return PlaceResult(order_ids=record.order_ids, gid=record.gid)
        if record.state is RequestState.FAILED:
            raise OrderRejected(f"order not placed (request {record.request_id}): {record.reason}")
        raise TransientError(f"request {record.request_id} is still being placed; retry later")

    async def _follow(self, record: RequestRecord, request: PlaceRequest, digest: str) -> PlaceResult:
        """Answer a duplicate of ``record``: its outcome, after waiting for (or resolving) a pending one."""
        if record.user_id != request.user_id or record.fingerprint != digest:
            raise InvalidArgument("request_id", "already used for a different request")
        give_up = self._clock.monotonic() + self._settings.place_wait_seconds
        current: RequestRecord | None = record
        while current is not None and current.state is RequestState.PENDING:
            if current.lease_until_ms <= now_ms(self._clock):
                resolved = await self._resolve(current, request)
                if resolved is not None and resolved.state is not RequestState.PENDING:
                    return self._answer(resolved)
            if self._clock.monotonic() >= give_up:
                break
            await self._clock.sleep(POLL_SECONDS)
            current = await self._repo.get_request(record.request_id)
        if current is None:
            raise TransientError(f"request {record.request_id}: record vanished; retry")
        return self._answer(current)

    async def _resolve(self, record: RequestRecord, request: PlaceRequest | None) -> RequestRecord | None:
        """Settle a pending record whose lease expired; None when it must stay pending for now.

        With ``request`` (a duplicate call) an unknown transaction is run again under a new lease;
        without it (the sweeper) the gid is fenced and the record fails.
        """
        view = await self._mesh.query(record.gid)
        if view is None:
            if request is not None:
                return await self._take_over(record, request)
            view = await self._mesh.fence(record.gid, "placing initiator lost before the transaction began")
        if view.state is TxState.PREPARED:
            view = await self._abort(view)
        if view.state in COMMITTED:
            return await self._finish(record, RequestState.PLACED, "")
        if view.state in ROLLED_BACK:
            return await self._finish(record, RequestState.FAILED, f"rolled back: {view.reason}")
        return None

    async def _take_over(self, record: RequestRecord, request: PlaceRequest) -> RequestRecord | None:
        now = now_ms(self._clock)
        lease = now + self.lease_ms
        if not await self._repo.set_lease(record.request_id, record.lease_until_ms, lease, now):
            return None
        log.warning(
            "request %s: initiator lost before %s began; running it again", record.request_id, record.gid
        )
        with contextlib.suppress(OrderRejected):
            await self._run(request, replace(record, lease_until_ms=lease))
        return await self._repo.get_request(record.request_id)

    async def _abort(self, view: TxView) -> TxView:
        try:
            return await self._mesh.abort(view.gid, "placing initiator lost")
        except FailedPrecondition:
            return await self._mesh.query(view.gid) or view

    async def sweep(self, limit: int) -> int:
        """Settle up to ``limit`` pending requests whose initiator was lost; how many were settled."""
        settled = 0
        for record in await self._repo.stale_requests(now_ms(self._clock), limit):
            try:
                resolved = await self._resolve(record, None)
            except MeshError as exc:
                log.warning("request %s: cannot settle yet (%s)", record.request_id, exc)
                continue
            settled += int(resolved is not None and resolved.state is not RequestState.PENDING)
        return settled
