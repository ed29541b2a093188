"""The order's global transactions on the coordinator (implements :class:`order_svc.adapters.ports.Mesh`).

Branch ids and calls follow the business contract:

* placing TCC ``order-<hash of request_id>``: ``stock`` (Stock.TryReserve/ConfirmReserve/CancelReserve),
  ``points`` when points are used (Points.TryFreeze/ConfirmFreeze/CancelFreeze), ``order``
  (Order.TryCreate/ConfirmCreate/CancelCreate). The stock try runs first and alone (a sold-out refusal
  then touches nothing else); the points and order tries then run concurrently (independent resources;
  the abort waits until both answered; a points refusal is reported first); submitted with
  ``wait_result`` so the orders are visible when PlaceOrder answers.
* points payment TCC ``pay-<order>-<random>``: ``order`` (Order.TryMarkPaid/...) first, so a cancelled or
  locked order is refused before any points move, then ``points`` (Points.TryDeduct/...) when something
  is due.
* cancel MSG ``cancel-<order>-<random>`` (check-back Order.QueryPrepared): ``stock`` (Stock.ReleaseStock),
  ``points`` (Points.RefundBranch, ``<order>:discount`` of the spending ``freeze <placing gid>``) when
  points were used, ``refund`` (points: Points.RefundBranch ``<order>:payment`` of the spending
  ``deduct <order>``; external: Pay.RefundBranch, out_refund_no = order id) when a
  payment is refunded, and ``finish`` (Order.FinishRefund) for a paid order. ``finish`` depends on
  ``points`` and ``refund`` (those present): the coordinator calls it only after every refund branch
  succeeded, so an order never reaches REFUNDED (final) while a refund is pending or never done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf.message import Message

from meshkit.barrier import RunnerBarrier
from meshkit.errors import BranchFailure, FailedPrecondition, MeshError, NotFound
from meshkit.settings.peers import PeersSection
from meshkit.tx.initiator import CoordinatorClient, Tcc, coordinator_call, msg, tcc
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from meshpb.points.v1 import points_pb2
from meshpb.stock.v1 import stock_pb2
from order_svc.adapters.ports import LocalTx, PointsPayment, Release, RolledBack, TxState, TxView
from order_svc.api import conversions
from order_svc.config import OrderSection
from order_svc.orders.values import Channel, PlacePlan, aggregate_items

log = logging.getLogger(__name__)

MS = 1000

STOCK = stock_pb2.DESCRIPTOR.services_by_name["Stock"].full_name
POINTS = points_pb2.DESCRIPTOR.services_by_name["Points"].full_name
PAY = pay_pb2.DESCRIPTOR.services_by_name["Pay"].full_name
ORDER = order_pb2.DESCRIPTOR.services_by_name["Order"].full_name

_STATES: dict[int, TxState] = {
    cpb.STATUS_PREPARED: TxState.PREPARED,
    cpb.STATUS_SUBMITTED: TxState.SUBMITTED,
    cpb.STATUS_SUCCEEDED: TxState.SUCCEEDED,
    cpb.STATUS_ABORTING: TxState.ABORTING,
    cpb.STATUS_FAILED: TxState.FAILED,
}


def target(address: str, service: str, method: str) -> str:
    """A branch target ``host:port/package.Service/Method``."""
    return f"{address}/{service}/{method}"


def _view(gid: str, status: int, reason: str) -> TxView:
    return TxView(gid=gid, state=_STATES.get(status, TxState.PREPARED), reason=reason)


class GrpcMesh:
    """Runs the order's transactions through one :class:`CoordinatorClient`."""

    def __init__(
        self, client: CoordinatorClient, peers: PeersSection, settings: OrderSection, barrier: RunnerBarrier
    ) -> None:
        self._client = client
        self._peers = peers
        self._settings = settings
        self._barrier = barrier
        self._timeout_ms = round(settings.tx_timeout_seconds * MS)
        self._request_seconds = settings.request_timeout_seconds

    @staticmethod
    def _tcc_branch(address: str, service: str, verb: str) -> tuple[str, str, str]:
        """The try, confirm and cancel targets of ``<Try|Confirm|Cancel><verb>``."""
        return (
            target(address, service, f"Try{verb}"),
            target(address, service, f"Confirm{verb}"),
            target(address, service, f"Cancel{verb}"),
        )

    async def place(self, plan: PlacePlan) -> None:
        """The placing TCC (see the module docstring)."""
        stock = stock_pb2.ReserveRequest(
            items=[common_pb2.SkuQuantity(sku=sku, quantity=q) for sku, q in plan.stock_items()],
            order_ids=list(plan.order_ids),
        )
        points = points_pb2.PointsBranchRequest(
            user_id=plan.user_id, amount=plan.points_to_use, out_trade_no=plan.gid
        )

        async def tries(t: _Tries) -> None:
            # Stock first, alone: sold out is the common refusal, and it then leaves points untouched.
            await t.call("stock", self._tcc_branch(self._peers.stock, STOCK, "Reserve"), stock)
            orders = conversions.create_orders_branch(plan)
            # Then the independent rest concurrently (each branch registered before its own try).
            calls = [t.call("order", self._tcc_branch(self._peers.order, ORDER, "Create"), orders)]
            if plan.points_to_use > 0:
                calls.insert(
                    0, t.call("points", self._tcc_branch(self._peers.points, POINTS, "Freeze"), points)
                )
            await all_settled(calls)

        await self._run_tcc(plan.gid, tries)

    async def pay_with_points(self, payment: PointsPayment) -> None:
        """The points-payment TCC (see the module docstring)."""
        mark = conversions.mark_paid_pb(payment)
        deduct = points_pb2.PointsBranchRequest(
            user_id=payment.user_id, amount=payment.amount_cents, out_trade_no=payment.order_id
        )

        async def tries(t: _Tries) -> None:
            await t.call("order", self._tcc_branch(self._peers.order, ORDER, "MarkPaid"), mark)
            if payment.amount_cents > 0:
                await t.call("points", self._tcc_branch(self._peers.points, POINTS, "Deduct"), deduct)

        await self._run_tcc(payment.gid, tries)

    async def _run_tcc(self, gid: str, tries: Callable[[_Tries], Awaitable[None]]) -> None:
        """Prepare, run ``tries``, submit (waiting for the confirms). A failed try -> :class:`RolledBack`."""
        stage = "prepare"
        try:
            async with tcc(
                self._client,
                gid=gid,
                timeout_ms=self._timeout_ms,
                request_timeout_ms=round(self._request_seconds * MS),
                wait_result=True,
            ) as t:
                stage = "try"
                await tries(_Tries(t, self._request_seconds))
                stage = "submit"
        except MeshError as exc:
            if stage == "try":
                raise RolledBack(str(exc), business=isinstance(exc, BranchFailure)) from exc
            raise

    async def cancel(self, release: Release, local: LocalTx) -> None:
        """The cancel MSG (see the module docstring)."""
        message = msg(
            self._client,
            query_prepared=target(self._peers.order, ORDER, "QueryPrepared"),
            gid=release.gid,
            timeout_ms=self._timeout_ms,
            request_timeout_ms=round(self._request_seconds * MS),
        )
        stock = stock_pb2.ReleaseStockRequest(
            items=[common_pb2.SkuQuantity(sku=sku, quantity=q) for sku, q in aggregate_items(release.items)],
            order_id=release.order_id,
        )
        message.add(target(self._peers.stock, STOCK, "ReleaseStock"), stock, branch_id="stock")
        refunds: list[str] = []
        if release.points_used > 0:
            discount = points_pb2.RefundRequest(
                user_id=release.user_id,
                amount=release.points_used,
                out_trade_no=f"{release.order_id}:discount",
                spending_out_trade_no=release.placing_gid,
                spending_type="freeze",
            )
            message.add(target(self._peers.points, POINTS, "RefundBranch"), discount, branch_id="points")
            refunds.append("points")
        if release.payment_refund is Channel.POINTS:
            refund = points_pb2.RefundRequest(
                user_id=release.user_id,
                amount=release.amount_due_cents,
                out_trade_no=f"{release.order_id}:payment",
                spending_out_trade_no=release.order_id,
                spending_type="deduct",
            )
            message.add(target(self._peers.points, POINTS, "RefundBranch"), refund, branch_id="refund")
            refunds.append("refund")
        elif release.payment_refund is Channel.EXTERNAL:
            external = pay_pb2.RefundRequest(
                payment_id=release.payment_id or "",
                order_id=release.order_id,
                amount_cents=release.amount_due_cents,
                reason=release.reason,
                out_refund_no=release.order_id,
            )
            message.add(target(self._peers.pay, PAY, "RefundBranch"), external, branch_id="refund")
            refunds.append("refund")
        if release.finish:
            finish = order_pb2.OrderIdRequest(order_id=release.order_id)
            message.add(
                target(self._peers.order, ORDER, "FinishRefund"),
                finish,
                branch_id="finish",
                depends_on=refunds,
            )
        try:
            await message.do_and_submit_unit(self._barrier, local)
        except MeshError:
            # Committed locally but not submitted (coordinator unreachable)? Then the coordinator's
            # check-back sends the message later, and the cancel stands.
            if not await self._committed(release.gid):
                raise
            log.warning("cancel %s committed; submit failed, the check-back will send it", release.gid)

    async def _committed(self, gid: str) -> bool:
        """Whether the local transaction of MSG ``gid`` committed (after this, it never will if not)."""
        try:
            await self._barrier.query_prepared(gid)
        except MeshError:
            return False
        return True

    async def query(self, gid: str) -> TxView | None:
        """The coordinator's view of ``gid`` (None when unknown)."""
        try:
            response = await coordinator_call(self._client.stub.Query(cpb.QueryRequest(gid=gid)))
        except NotFound:
            return None
        tx = response.transaction
        return _view(tx.gid, tx.status, tx.reason)

    async def abort(self, gid: str, reason: str) -> TxView:
        """Abort a PREPARED transaction."""
        response = await coordinator_call(self._client.stub.Abort(cpb.AbortRequest(gid=gid, reason=reason)))
        return _view(gid, response.status, reason)

    async def fence(self, gid: str, reason: str) -> TxView:
        """Prepare ``gid`` (a no-op if it exists) and abort it, so that it can never commit."""
        options = cpb.TxOptions(timeout_ms=self._timeout_ms)
        await coordinator_call(
            self._client.stub.Prepare(cpb.PrepareRequest(gid=gid, mode=cpb.MODE_TCC, options=options))
        )
        try:
            return await self.abort(gid, reason)
        except FailedPrecondition:
            view = await self.query(gid)
            if view is None:
                raise
            return view


async def all_settled(calls: Sequence[Awaitable[None]]) -> None:
    """Run ``calls`` concurrently until every one has ended; then raise the first failure, in list order.

    Waiting for all (instead of failing fast) means the abort that follows a failure never races a try
    still in flight, and the reported failure does not depend on timing.
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class _Tries:
    """Calls the tries of one TCC with the per-call deadline."""

    def __init__(self, t: Tcc, seconds: float) -> None:
        self._t = t
        self._seconds = seconds

    async def call(self, branch_id: str, targets: tuple[str, str, str], payload: Message) -> None:
        """Register branch ``branch_id`` and call its try."""
        try_target, confirm, cancel = targets
        await self._t.call_branch(
            try_target, confirm, cancel, payload, branch_id=branch_id, timeout_seconds=self._seconds
        )
