"""The scripted story of ``meshctl demo``, told against a running stack through the services' gRPC APIs.

Seed two merchants' SKUs and the users' points, then six scenes: a multi-merchant order paid with
points; an order paid through the external gateway; an order cancelled after payment (refund); an order
whose stock runs out (rolled back, nothing reserved); a duplicate PlaceOrder retry (same ids); a late
gateway callback after cancel (automatic refund). Each scene ends with the coordinator's view of the
transactions it started. Asynchronous outcomes are awaited by polling with a deadline.

Every run uses fresh SKU names and idempotency keys (a run id), so the story can be told again on the
same data directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio

from meshctl.audit.checks import order_status_name
from meshctl.audit.clients import MeshClients
from meshctl.audit.gather import ADMIN_REFUSED_CODES
from meshctl.demo.narrate import Narrator
from meshctl.demo.wait import WaitTimeout, wait_for
from meshkit.rpc.pbtime import timestamp
from meshkit.runtime.clock import Clock, now_ms
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from meshpb.points.v1 import points_pb2 as ppb
from meshpb.stock.v1 import stock_pb2 as spb

MERCHANT_TEA = "m-teahouse"
MERCHANT_BOOKS = "m-bookshop"
ALICE = "alice"
BOB = "bob"
GRANT_POINTS = 20_000
RPC_SECONDS = 30.0
DEFAULT_WAIT_SECONDS = 30.0
LIST_LIMIT = 500
# Transactions created this long before a scene began are still looked at (clock skew); those already
# shown by an earlier scene are left out.
CLOCK_SLACK_MS = 1000
FINAL_TX = frozenset({cpb.STATUS_SUCCEEDED, cpb.STATUS_FAILED})
# How order_svc answers a PlaceOrder whose transaction rolled back for a business reason.
REFUSED_CODES = frozenset(
    {grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True, slots=True)
class Scene:
    """One scene of the story: what it shows and the coroutine that plays it."""

    title: str
    blurb: str
    body: Callable[[], Awaitable[None]]
    transactions: bool = True  # end with the coordinator's view of the transactions it started


class StepFailed(Exception):
    """An expectation the rest of the scene depends on did not hold."""


@dataclass(frozen=True, slots=True)
class DemoSku:
    """A SKU of the demo shop."""

    sku: str
    merchant_id: str
    price_cents: int
    quantity: int

    def item(self, quantity: int) -> opb.OrderItem:
        """An order line of ``quantity`` units at the listed price."""
        return opb.OrderItem(
            sku=self.sku, merchant_id=self.merchant_id, quantity=quantity, unit_price_cents=self.price_cents
        )


def _statuses(orders: Sequence[opb.OrderInfo]) -> str:
    return ", ".join(f"{o.order_id}={order_status_name(o.status)}" for o in orders)


def _pay_status(payment: paypb.Payment) -> str:
    return paypb.PaymentStatus.Name(payment.status).removeprefix("PAYMENT_STATUS_")


def _rpc_error(exc: grpc.aio.AioRpcError) -> str:
    code = exc.code()
    return f"{code.name if code is not None else 'UNKNOWN'}: {exc.details() or ''}"


class DemoStory:
    """Tells the story through ``clients``; every fact goes to ``narrator``."""

    def __init__(
        self,
        clients: MeshClients,
        narrator: Narrator,
        clock: Clock,
        run_id: str,
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self.c = clients
        self.n = narrator
        self.clock = clock
        self.run_id = run_id
        self.wait_seconds = wait_seconds
        self.sencha = DemoSku(f"sencha-{run_id}", MERCHANT_TEA, 1200, 50)
        self.oolong = DemoSku(f"oolong-{run_id}", MERCHANT_TEA, 1800, 50)
        self.sagas = DemoSku(f"book-sagas-{run_id}", MERCHANT_BOOKS, 2500, 20)
        self.signed = DemoSku(f"book-signed-{run_id}", MERCHANT_BOOKS, 9900, 1)
        self._gids: list[str] = []
        self._shown: set[str] = set()

    # ------------------------------------------------------------------ the story

    def scenes(self) -> list[Scene]:
        """Every scene, in order."""
        return [
            Scene(
                "Seed the shop",
                "Two merchants stock their SKUs (stock_svc.PutSku) and the demo users get points "
                "(points_svc.Grant).",
                self.seed,
                transactions=False,
            ),
            Scene(
                "A multi-merchant order paid with points",
                "alice buys tea and a book in one PlaceOrder: one TCC reserves the stock in Redis (one Lua "
                "script), freezes the points discount and creates one order per merchant. Then she pays "
                "both orders with points (a TCC over points_svc and order_svc each).",
                self.points_order,
            ),
            Scene(
                "An order paid through the external gateway",
                "bob pays by card: order_svc asks pay_svc for a payment, the order waits; the gateway "
                "(SimulateGatewayPay) sends a signed callback, pay_svc verifies it and the order turns PAID.",
                self.gateway_order,
            ),
            Scene(
                "An order cancelled after payment",
                "bob pays a book (500 points off, the rest by card) and then cancels: order_svc moves the "
                "order to REFUNDING and a two-phase message releases every asset - stock back, points "
                "discount back, card refunded - before the order ends REFUNDED.",
                self.cancel_after_payment,
            ),
            Scene(
                "An order whose stock runs out",
                "alice wants two signed books but only one exists: the stock try fails, the coordinator "
                "cancels every branch and nothing stays reserved.",
                self.sold_out,
            ),
            Scene(
                "A duplicate PlaceOrder retry",
                "alice's app times out and sends the same PlaceOrder again (same request_id): she gets the "
                "same order ids and gid, and the stock is taken once. She then cancels the unpaid order.",
                self.duplicate_retry,
            ),
            Scene(
                "A late gateway callback after cancel",
                "bob starts a card payment but the order is cancelled first (as when the pay deadline "
                "passes); the gateway's success callback arrives afterwards: pay_svc refunds automatically.",
                self.late_callback,
            ),
        ]

    async def run(self) -> bool:
        """Tell every scene; a failing scene is reported and the story goes on. True when all passed."""
        for scene in self.scenes():
            self.n.begin(scene.title, scene.blurb)
            self._gids = []
            since = now_ms(self.clock) - CLOCK_SLACK_MS
            try:
                await scene.body()
            except (StepFailed, WaitTimeout) as exc:
                self.n.fail(str(exc))
            except grpc.aio.AioRpcError as exc:
                self.n.fail(_rpc_error(exc))
            if scene.transactions:
                await self.show_transactions(since)
        return self.n.ok

    async def seed(self) -> None:
        """Put the SKUs, grant the points."""
        levels = []
        for sku in (self.sencha, self.oolong, self.sagas, self.signed):
            levels.append(
                await self.c.stock.PutSku(
                    spb.PutSkuRequest(
                        sku=sku.sku,
                        merchant_id=sku.merchant_id,
                        price_cents=sku.price_cents,
                        quantity=sku.quantity,
                        request_id=sku.sku,  # one seeding per demo SKU, even when re-run
                    ),
                    timeout=RPC_SECONDS,
                )
            )
        self.n.stock("stock_svc after PutSku", levels)
        for user in (ALICE, BOB):
            account = await self.c.points.Grant(
                ppb.GrantRequest(
                    user_id=user, amount=GRANT_POINTS, out_trade_no=f"demo-{self.run_id}-grant-{user}"
                ),
                timeout=RPC_SECONDS,
            )
            self.n.account(f"granted {GRANT_POINTS} points", account)

    async def points_order(self) -> None:
        """Two merchants, one PlaceOrder, points discount, paid with points."""
        before = await self.account(ALICE)
        self.n.account("before", before)
        placed = await self.place(ALICE, [self.sencha.item(2), self.sagas.item(1)], points=1000, key="multi")
        self.n.say(
            f"PlaceOrder: 2x {self.sencha.sku} (teahouse) + 1x {self.sagas.sku} (bookshop), 1000 points off "
            f"-> {len(placed.order_ids)} orders, gid {placed.gid}"
        )
        self.n.check("one order per merchant", len(placed.order_ids) == 2, f"{len(placed.order_ids)} orders")
        orders = await self.orders(placed.order_ids)
        self.n.orders("after PlaceOrder", orders)
        self.n.check(
            "the orders are CREATED",
            all(o.status == opb.ORDER_STATUS_CREATED for o in orders),
            _statuses(orders),
        )
        self.n.check(
            "the 1000 points discount is split across them",
            sum(o.points_used for o in orders) == 1000,
            ", ".join(f"{o.order_id}: {o.points_used}" for o in orders),
        )
        for order in orders:
            reply = await self.c.order.Pay(
                opb.PayRequest(order_id=order.order_id, channel=opb.PAY_CHANNEL_POINTS), timeout=RPC_SECONDS
            )
            due = order.total_cents - order.points_used
            self.n.say(f"Pay {order.order_id} with points ({due} points) -> payment {reply.payment_id}")
        paid = await self.wait_orders(placed.order_ids, opb.ORDER_STATUS_PAID)
        self.n.orders("after Pay", paid)
        after = await self.account(ALICE)
        self.n.account("after", after)
        total = sum(o.total_cents for o in orders)
        self.n.check(
            f"alice spent {total} points in all (discount + payments), nothing stays frozen",
            before.balance - after.balance == total and after.frozen == before.frozen,
            f"balance {before.balance} -> {after.balance}, frozen {after.frozen}",
        )

    async def gateway_order(self) -> None:
        """External channel: payment, signed callback, PAID."""
        placed = await self.place(BOB, [self.oolong.item(1)], points=0, key="gateway")
        order_id = placed.order_ids[0]
        self.n.say(f"PlaceOrder: 1x {self.oolong.sku} -> order {order_id}")
        reply = await self.c.order.Pay(
            opb.PayRequest(order_id=order_id, channel=opb.PAY_CHANNEL_EXTERNAL), timeout=RPC_SECONDS
        )
        self.n.say(
            f"Pay by card -> payment {reply.payment_id}, token {reply.token[:16]}... (handed to the gateway)"
        )
        order = (await self.orders([order_id]))[0]
        self.n.check(
            "the order waits for the gateway", order.status == opb.ORDER_STATUS_CREATED, _statuses([order])
        )
        self.n.payment("before the callback", await self.payment(reply.payment_id))
        await self.c.pay.SimulateGatewayPay(
            paypb.SimulateGatewayPayRequest(payment_id=reply.payment_id), timeout=RPC_SECONDS
        )
        self.n.say("the gateway calls back: a signed callback to pay_svc.Callback (SimulateGatewayPay)")
        paid = await self.wait_orders([order_id], opb.ORDER_STATUS_PAID)
        self.n.orders("after the callback", paid)
        payment = await self.wait_payment(reply.payment_id, paypb.PAYMENT_STATUS_SUCCEEDED)
        self.n.payment("after the callback", payment)
        self.n.check("the payment SUCCEEDED and the order is PAID", True)

    async def cancel_after_payment(self) -> None:
        """Paid by card with a points discount, then cancelled: everything comes back."""
        account_before = await self.account(BOB)
        stock_before = await self.stock_of(self.sagas)
        placed = await self.place(BOB, [self.sagas.item(1)], points=500, key="refund")
        order_id = placed.order_ids[0]
        reply = await self.c.order.Pay(
            opb.PayRequest(order_id=order_id, channel=opb.PAY_CHANNEL_EXTERNAL), timeout=RPC_SECONDS
        )
        await self.c.pay.SimulateGatewayPay(
            paypb.SimulateGatewayPayRequest(payment_id=reply.payment_id), timeout=RPC_SECONDS
        )
        paid = await self.wait_orders([order_id], opb.ORDER_STATUS_PAID)
        self.n.orders("placed (500 points off) and paid by card", paid)
        cancelled = await self.c.order.Cancel(
            opb.CancelRequest(order_id=order_id, reason="customer changed their mind"), timeout=RPC_SECONDS
        )
        self.n.say(
            f"Cancel -> {order_status_name(cancelled.status)}: the order changes first, then the message runs"
        )
        refunded = await self.wait_orders([order_id], opb.ORDER_STATUS_REFUNDED)
        self.n.orders("after the cancel chain", refunded)
        payment = await self.wait_payment(reply.payment_id, paypb.PAYMENT_STATUS_REFUNDED)
        self.n.payment("card payment", payment)
        account = await wait_for(
            lambda: self.account(BOB),
            lambda a: a.balance == account_before.balance,
            what="bob's points discount to come back",
            clock=self.clock,
            within=self.wait_seconds,
            describe=lambda a: f"balance {a.balance}",
        )
        self.n.account("points after the refund", account)
        self.n.check("the points discount came back", account.balance == account_before.balance)
        stock = await wait_for(
            lambda: self.stock_of(self.sagas),
            lambda s: s.available == stock_before.available,
            what="the book to be back in stock",
            clock=self.clock,
            within=self.wait_seconds,
            describe=lambda s: f"available {s.available}",
        )
        self.n.stock("stock after the refund", [stock])
        self.n.check("the book is back in stock", stock.available == stock_before.available)

    async def sold_out(self) -> None:
        """Not enough stock: the whole PlaceOrder rolls back."""
        before = [await self.stock_of(self.signed), await self.stock_of(self.sencha)]
        self.n.stock("before", before)
        items = [self.signed.item(2), self.sencha.item(1)]
        try:
            placed = await self.place(ALICE, items, points=0, key="soldout")
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in REFUSED_CODES:
                raise
            self.n.say(f"PlaceOrder 2x {self.signed.sku} + 1x {self.sencha.sku} refused: {_rpc_error(exc)}")
            self.n.check("PlaceOrder was refused", True)
        else:
            self.n.check("PlaceOrder was refused", False, f"it placed {list(placed.order_ids)}")
        after = await wait_for(
            self._stock_pair,
            lambda levels: (
                [(s.available, s.reserved) for s in levels] == [(s.available, s.reserved) for s in before]
            ),
            what="the stock to be exactly as before",
            clock=self.clock,
            within=self.wait_seconds,
            describe=lambda levels: ", ".join(f"{s.sku} {s.available}/{s.reserved}" for s in levels),
        )
        self.n.stock("after: GetStock shows nothing reserved, nothing sold", after)
        self.n.check("nothing reserved, nothing sold", all(s.reserved == 0 for s in after))

    async def _stock_pair(self) -> list[spb.StockLevel]:
        return [await self.stock_of(self.signed), await self.stock_of(self.sencha)]

    async def duplicate_retry(self) -> None:
        """The same request twice: one set of orders."""
        before = await self.stock_of(self.sencha)
        first = await self.place(ALICE, [self.sencha.item(1)], points=0, key="retry")
        self.n.say(
            f"PlaceOrder (request demo-{self.run_id}-retry) -> orders {list(first.order_ids)}, "
            f"gid {first.gid}"
        )
        second = await self.place(ALICE, [self.sencha.item(1)], points=0, key="retry")
        self.n.say(f"the same request again          -> orders {list(second.order_ids)}, gid {second.gid}")
        self.n.check(
            "same order ids and gid",
            list(first.order_ids) == list(second.order_ids) and first.gid == second.gid,
        )
        after = await self.stock_of(self.sencha)
        self.n.stock("stock: taken once", [after])
        self.n.check(
            "one unit taken",
            before.available - after.available == 1,
            f"{before.available} -> {after.available}",
        )
        order_id = first.order_ids[0]
        cancelled = await self.c.order.Cancel(
            opb.CancelRequest(order_id=order_id, reason="demo: tidy up the unpaid order"), timeout=RPC_SECONDS
        )
        self.n.orders("then cancelled while unpaid", [cancelled])
        back = await wait_for(
            lambda: self.stock_of(self.sencha),
            lambda s: s.available == before.available,
            what="the unit to be back in stock",
            clock=self.clock,
            within=self.wait_seconds,
            describe=lambda s: f"available {s.available}",
        )
        self.n.check("the unit is back in stock", back.available == before.available)

    async def late_callback(self) -> None:
        """Cancel first, then the gateway says the payment succeeded: automatic refund."""
        placed = await self.place(BOB, [self.oolong.item(1)], points=0, key="late")
        order_id = placed.order_ids[0]
        reply = await self.c.order.Pay(
            opb.PayRequest(order_id=order_id, channel=opb.PAY_CHANNEL_EXTERNAL), timeout=RPC_SECONDS
        )
        self.n.say(f"order {order_id}: card payment {reply.payment_id} started, the gateway is slow")
        cancelled = await self.c.order.Cancel(
            opb.CancelRequest(order_id=order_id, reason="pay deadline passed"), timeout=RPC_SECONDS
        )
        self.n.orders("cancelled before the gateway answered", [cancelled])
        self.n.check("the order is CANCELLED", cancelled.status == opb.ORDER_STATUS_CANCELLED)
        answered = await self.c.pay.SimulateGatewayPay(
            paypb.SimulateGatewayPayRequest(payment_id=reply.payment_id), timeout=RPC_SECONDS
        )
        self.n.say(f"the late success callback arrives (payment now {_pay_status(answered)})")
        payment = await self.wait_payment(reply.payment_id, paypb.PAYMENT_STATUS_REFUNDED)
        self.n.payment("pay_svc refunded it automatically", payment)
        order = (await self.orders([order_id]))[0]
        self.n.check(
            "the order stays CANCELLED, the money went back",
            order.status == opb.ORDER_STATUS_CANCELLED and payment.status == paypb.PAYMENT_STATUS_REFUNDED,
        )

    # ------------------------------------------------------------------ helpers

    async def place(
        self, user: str, items: Sequence[opb.OrderItem], *, points: int, key: str
    ) -> opb.PlaceOrderResponse:
        """PlaceOrder with this run's idempotency key ``key``."""
        reply = await self.c.order.PlaceOrder(
            opb.PlaceOrderRequest(
                request_id=f"demo-{self.run_id}-{key}", user_id=user, items=items, points_to_use=points
            ),
            timeout=RPC_SECONDS,
        )
        self._gids.append(reply.gid)
        if not reply.order_ids:
            raise StepFailed("PlaceOrder answered no order ids")
        return reply

    async def orders(self, order_ids: Sequence[str]) -> list[opb.OrderInfo]:
        """GetOrder of each id."""
        found = await asyncio.gather(
            *(self.c.order.GetOrder(opb.GetOrderRequest(order_id=i), timeout=RPC_SECONDS) for i in order_ids)
        )
        return list(found)

    async def wait_orders(
        self, order_ids: Sequence[str], status: opb.OrderStatus.ValueType
    ) -> list[opb.OrderInfo]:
        """Poll until every order has ``status``."""
        return await wait_for(
            lambda: self.orders(order_ids),
            lambda orders: all(o.status == status for o in orders),
            what=f"orders to become {order_status_name(status)}",
            clock=self.clock,
            within=self.wait_seconds,
            describe=_statuses,
        )

    async def payment(self, payment_id: str) -> paypb.Payment:
        """GetPayment."""
        return await self.c.pay.GetPayment(
            paypb.GetPaymentRequest(payment_id=payment_id), timeout=RPC_SECONDS
        )

    async def wait_payment(self, payment_id: str, status: paypb.PaymentStatus.ValueType) -> paypb.Payment:
        """Poll until the payment has ``status``."""
        return await wait_for(
            lambda: self.payment(payment_id),
            lambda p: p.status == status,
            what=f"payment {payment_id} to become {_pay_status(paypb.Payment(status=status))}",
            clock=self.clock,
            within=self.wait_seconds,
            describe=_pay_status,
        )

    async def account(self, user: str) -> ppb.Account:
        """GetAccount."""
        return await self.c.points.GetAccount(ppb.GetAccountRequest(user_id=user), timeout=RPC_SECONDS)

    async def stock_of(self, sku: DemoSku) -> spb.StockLevel:
        """GetStock."""
        return await self.c.stock.GetStock(spb.GetStockRequest(sku=sku.sku), timeout=RPC_SECONDS)

    # ------------------------------------------------------------------ the coordinator's view

    async def transactions_since(self, since_ms: int) -> list[cpb.Transaction]:
        """Transactions created since ``since_ms`` (Admin.List), oldest first.

        Without a usable Admin API: the scene's PlaceOrder transactions, asked one by one (Query).
        """
        try:
            page = await self.c.admin.List(
                cpb.ListRequest(created_after=timestamp(since_ms), limit=LIST_LIMIT),
                metadata=self.c.admin_metadata,
                timeout=RPC_SECONDS,
            )
            found = list(page.transactions)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in ADMIN_REFUSED_CODES:
                raise
            found = []
            for gid in dict.fromkeys(self._gids):
                try:
                    reply = await self.c.coordinator.Query(cpb.QueryRequest(gid=gid), timeout=RPC_SECONDS)
                except grpc.aio.AioRpcError as query_exc:
                    if query_exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    continue
                found.append(reply.transaction)
        fresh = [tx for tx in found if tx.gid not in self._shown]
        return sorted(fresh, key=lambda tx: (tx.created_at.ToMilliseconds(), tx.gid))

    async def show_transactions(self, since_ms: int) -> None:
        """Wait until the scene's transactions are final, then show them (a timeout fails the scene)."""
        try:
            txs = await wait_for(
                lambda: self.transactions_since(since_ms),
                lambda found: all(tx.status in FINAL_TX for tx in found),
                what="the scene's transactions to finish",
                clock=self.clock,
                within=self.wait_seconds,
                describe=lambda found: ", ".join(
                    f"{tx.gid}={cpb.Status.Name(tx.status)}" for tx in found if tx.status not in FINAL_TX
                ),
            )
        except WaitTimeout as exc:
            txs = await self.transactions_since(since_ms)
            self.n.transactions("the coordinator's view", txs)
            self._shown.update(tx.gid for tx in txs)
            self.n.fail(str(exc))
            return
        except grpc.aio.AioRpcError as exc:
            self.n.fail(f"coordinator: {_rpc_error(exc)}")
            return
        self.n.transactions("the coordinator's view", txs)
        self._shown.update(tx.gid for tx in txs)
