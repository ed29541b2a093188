"""The invariants of DESIGN.md section 8, as pure functions over one :class:`MeshReport`.

Each check sorts what it finds into two kinds:

* *hard* violations can never be a moment of an honest transaction (a double refund, a negative
  account, a transaction overdue and not flagged stuck): they always fail the check;
* *eventual* violations are figures that legitimately disagree while a transaction is between two of
  its steps (stock persisted but the Redis reservation not yet cleared, an order PAID a moment before
  its points deduction is confirmed): they fail the check only when the coordinator saw no transaction
  in flight while the reports were gathered, otherwise the check answers SKIP.

``meshctl audit --wait`` gathers again until every check passes or the time is up, which also covers
the few steps that run outside any transaction (pay_svc telling order_svc about a callback).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from meshctl.audit.model import CheckResult, CoordinatorView, MeshReport, Verdict
from meshpb.coordinator.v1 import coordinator_pb2
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from meshpb.points.v1 import points_pb2

# Coordinator defaults (coordinator/config.py), used where a transaction's options say 0 = "default".
DEFAULT_TIMEOUT_MS = 60_000
DEFAULT_RETRY_INTERVAL_MS = 1_000
DEFAULT_RETRY_LIMIT = 10
DEFAULT_REQUEST_TIMEOUT_MS = 3_000
MAX_BACKOFF_MS = 60_000
BACKOFF_JITTER = 0.2
# Sweeper period plus a replica's lease: how late a due transaction may be picked up.
PICKUP_SLACK_MS = 60_000

PAID_STATUSES = frozenset(
    {order_pb2.ORDER_STATUS_PAID, order_pb2.ORDER_STATUS_SHIPPED, order_pb2.ORDER_STATUS_COMPLETED}
)
CANCELLED = order_pb2.ORDER_STATUS_CANCELLED
REFUNDED = order_pb2.ORDER_STATUS_REFUNDED

ENTRY_FREEZE = "freeze"
ENTRY_DEDUCT = "deduct"
ENTRY_REFUND = "refund"
STATE_CONFIRMED = "confirmed"
PAYMENT_SUFFIX = ":payment"
DISCOUNT_SUFFIX = ":discount"
POINTS_PAYMENT_PREFIX = "points:"


def order_status_name(status: int) -> str:
    """``PAID`` for ORDER_STATUS_PAID (the number itself when unknown)."""
    try:
        return order_pb2.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]
    except ValueError:
        return str(status)


def tx_label(tx: coordinator_pb2.Transaction) -> str:
    """``<gid> (TCC SUBMITTED)``."""
    mode = coordinator_pb2.Mode.Name(tx.mode).removeprefix("MODE_")
    status = coordinator_pb2.Status.Name(tx.status).removeprefix("STATUS_")
    return f"{tx.gid} ({mode} {status})"


@dataclass
class _Findings:
    hard: list[str] = field(default_factory=list)
    eventual: list[str] = field(default_factory=list)


def _result(
    key: str,
    title: str,
    found: _Findings,
    numbers: dict[str, int],
    *,
    view: CoordinatorView,
    note: str = "",
) -> CheckResult:
    if found.hard or (found.eventual and view.at_rest):
        shown = (*found.hard, *found.eventual) if view.at_rest else tuple(found.hard)
        return CheckResult(key, title, Verdict.FAIL, numbers, shown, note)
    if found.eventual:
        in_flight = len(view.unfinished)
        pending = f"{len(found.eventual)} figure(s) mid-change while {in_flight} transaction(s) in flight"
        return CheckResult(
            key,
            title,
            Verdict.SKIP,
            numbers,
            tuple(found.eventual),
            "; ".join(x for x in (pending, note) if x),
        )
    return CheckResult(key, title, Verdict.PASS, numbers, (), note)


# --------------------------------------------------------------------------- stock


def check_stock_conservation(report: MeshReport) -> CheckResult:
    """Per SKU: initial = redis_available + redis_reserved + db_sold (and the DB alone adds up)."""
    found = _Findings()
    totals = dict.fromkeys(("skus", "initial", "available", "reserved", "sold"), 0)
    for sku in report.stock.skus:
        negative = {
            name: value
            for name, value in (
                ("redis_available", sku.redis_available),
                ("redis_reserved", sku.redis_reserved),
                ("db_available", sku.db_available),
                ("db_sold", sku.db_sold),
            )
            if value < 0
        }
        if negative:
            found.hard.append(f"sku {sku.sku}: negative {_kv(negative)}")
        if sku.db_available + sku.db_sold != sku.initial:
            found.hard.append(
                f"sku {sku.sku}: DB available {sku.db_available} + sold {sku.db_sold} "
                f"!= initial {sku.initial}"
            )
        available, reserved = (
            (sku.redis_available, sku.redis_reserved) if sku.redis_loaded else (sku.db_available, 0)
        )
        counted = available + reserved + sku.db_sold
        if counted != sku.initial:
            found.eventual.append(
                f"sku {sku.sku}: initial {sku.initial} != available {available} + reserved {reserved} "
                f"+ sold {sku.db_sold} (= {counted})"
            )
        totals["skus"] += 1
        totals["initial"] += sku.initial
        totals["available"] += available
        totals["reserved"] += reserved
        totals["sold"] += sku.db_sold
    return _result(
        "stock.conservation",
        "stock: initial = available + reserved + sold, per SKU",
        found,
        totals,
        view=report.coordinator,
    )


def check_stock_db_matches_redis(report: MeshReport) -> CheckResult:
    """Per SKU loaded into Redis: db_available = redis_available + redis_reserved."""
    found = _Findings()
    numbers = dict.fromkeys(("skus", "not_in_redis", "db_available", "redis_available", "redis_reserved"), 0)
    for sku in report.stock.skus:
        numbers["skus"] += 1
        if not sku.redis_loaded:
            numbers["not_in_redis"] += 1
            continue
        numbers["db_available"] += sku.db_available
        numbers["redis_available"] += sku.redis_available
        numbers["redis_reserved"] += sku.redis_reserved
        if sku.db_available != sku.redis_available + sku.redis_reserved:
            found.eventual.append(
                f"sku {sku.sku}: DB available {sku.db_available} != Redis available "
                f"{sku.redis_available} + reserved {sku.redis_reserved}"
            )
    return _result(
        "stock.db_matches_redis",
        "stock: DB available = Redis available + reserved",
        found,
        numbers,
        view=report.coordinator,
    )


# Orders that hold stock: their units were sold (persisted) and not released.
HOLDING_STOCK = frozenset(
    {
        order_pb2.ORDER_STATUS_CREATED,
        order_pb2.ORDER_STATUS_PAID,
        order_pb2.ORDER_STATUS_SHIPPED,
        order_pb2.ORDER_STATUS_COMPLETED,
    }
)


def _held_by_orders(report: MeshReport) -> tuple[dict[str, int], set[str]]:
    held: dict[str, int] = defaultdict(int)
    releasing: set[str] = set()
    for order in report.orders.orders:
        for item in order.items:
            if order.status in HOLDING_STOCK:
                held[item.sku] += item.quantity
            elif order.status == order_pb2.ORDER_STATUS_REFUNDING:
                releasing.add(item.sku)
    return held, releasing


def _sold_to_orders(report: MeshReport) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Per SKU: net units sold under known orders' ids, under anything else, and log-vs-DB problems.

    A stock-log entry is attributed to orders when it names order ids and order_svc knows every one;
    another initiator's sales (no order ids, or ids order_svc never issued) are counted apart. The log
    and ``db_sold`` are written in one database transaction, so their totals must always agree.
    """
    known = {o.order_id for o in report.orders.orders}
    to_orders: dict[str, int] = defaultdict(int)
    outside: dict[str, int] = defaultdict(int)
    for ref in report.stock.sold_by_ref:
        if ref.order_ids and all(i in known for i in ref.order_ids):
            to_orders[ref.sku] += ref.sold
        else:
            outside[ref.sku] += ref.sold
    problems = [
        f"sku {sku.sku}: stock_svc sold {sku.db_sold} != its stock log "
        f"{to_orders.get(sku.sku, 0) + outside.get(sku.sku, 0)}"
        for sku in report.stock.skus
        if sku.db_sold != to_orders.get(sku.sku, 0) + outside.get(sku.sku, 0)
    ]
    return to_orders, outside, problems


def check_stock_sold_matches_orders(report: MeshReport) -> CheckResult:
    """Per SKU: units sold to orders (stock_svc's log, by order id) = units held by live orders.

    Live orders are CREATED, PAID, SHIPPED and COMPLETED; CANCELLED and REFUNDED ones gave their units
    back; a REFUNDING order is releasing them (its SKUs may differ until the cancel chain ends). Sales
    stock_svc logged for other initiators are not compared (see :func:`_sold_to_orders`); a stock_svc
    that reports no log (an older build) is compared on its whole ``db_sold`` as before.
    """
    found = _Findings()
    held, releasing = _held_by_orders(report)
    sold = {sku.sku: sku.db_sold for sku in report.stock.skus}
    note = ""
    if report.stock.sold_by_ref or not any(sold.values()):
        to_orders, outside, found.hard = _sold_to_orders(report)
    else:
        to_orders, outside = dict(sold), {}
        note = "stock_svc reports no stock log: every sale is taken to be an order's"
    numbers = {
        "skus": len(sold),
        "sold": sum(sold.values()),
        "sold_to_orders": sum(to_orders.values()),
        "sold_outside_orders": sum(outside.values()),
        "held_by_orders": sum(held.values()),
    }
    for sku in sorted(set(sold) | set(held)):
        if sku not in sold:
            found.hard.append(f"sku {sku}: held by orders ({held[sku]} units) but unknown to stock_svc")
            continue
        if to_orders.get(sku, 0) != held.get(sku, 0):
            message = (
                f"sku {sku}: stock_svc sold {to_orders.get(sku, 0)} to orders "
                f"!= live orders hold {held.get(sku, 0)}"
            )
            if sku in releasing:
                message += " (a REFUNDING order is giving units back)"
            found.eventual.append(message)
    return _result(
        "stock.sold_matches_orders",
        "stock: units sold to orders = units held by live orders, per SKU",
        found,
        numbers,
        view=report.coordinator,
        note=note,
    )


# --------------------------------------------------------------------------- points


def check_points_conservation(report: MeshReport) -> CheckResult:
    """sum_balance + sum_frozen + spent - refunded = issued."""
    p = report.points
    found = _Findings()
    counted = p.sum_balance + p.sum_frozen + p.spent - p.refunded
    if counted != p.issued:
        found.eventual.append(
            f"balances {p.sum_balance} + frozen {p.sum_frozen} + spent {p.spent} - refunded {p.refunded} "
            f"= {counted} != issued {p.issued}"
        )
    numbers = {
        "issued": p.issued,
        "balances": p.sum_balance,
        "frozen": p.sum_frozen,
        "spent": p.spent,
        "refunded": p.refunded,
    }
    return _result(
        "points.conservation",
        "points: balances + frozen + spent - refunded = issued",
        found,
        numbers,
        view=report.coordinator,
    )


def check_points_non_negative(report: MeshReport) -> CheckResult:
    """No account (and no total) is negative."""
    p = report.points
    found = _Findings()
    if p.negative_accounts:
        found.hard.append(f"{p.negative_accounts} account(s) with a negative balance or frozen amount")
    for name, value in (("sum_balance", p.sum_balance), ("sum_frozen", p.sum_frozen)):
        if value < 0:
            found.hard.append(f"{name} is negative: {value}")
    return _result(
        "points.non_negative",
        "points: no negative account",
        found,
        {"negative_accounts": p.negative_accounts},
        view=report.coordinator,
    )


def check_points_refunds(report: MeshReport) -> CheckResult:
    """Every points refund gives back a confirmed spending of its user, of its own order, at most once over.

    A refund names its spending (``spending_type``/``spending_out_trade_no``, issue 15 item 3). An order's
    spending (``deduct <order>``, ``freeze <order's gid>``) is refunded only by that order's cancel chain
    (``<order>:payment`` / ``<order>:discount``), and such a key names exactly that spending. Every
    finding is hard: points_svc writes a refund in the same local transaction that checks its spending,
    and one snapshot shows both.
    """
    entries = report.points.entries
    spendings = {(e.type.lower(), e.out_trade_no): e for e in entries if e.type.lower() in _HOLD_ENTRIES}
    owners = _spending_owners(report.orders.orders)
    by_id = {o.order_id: o for o in report.orders.orders}
    found = _Findings()
    refunded: dict[tuple[str, str], int] = defaultdict(int)
    refunds = [e for e in entries if e.type.lower() == ENTRY_REFUND]
    legacy: list[str] = []
    for refund in refunds:
        key = (refund.spending_type.lower(), refund.spending_out_trade_no)
        name = f"points refund {refund.out_trade_no} ({refund.amount})"
        if not refund.spending_out_trade_no:  # written before migration points_0002: nothing to tie
            legacy.append(refund.out_trade_no)
            continue
        spending = spendings.get(key)
        label = f"{key[0]} {key[1]}"
        if spending is None or spending.state.lower() != STATE_CONFIRMED:
            state = "not found" if spending is None else spending.state.lower()
            found.hard.append(f"{name}: spending {label} {state}")
            continue
        refunded[key] += refund.amount
        if spending.user_id != refund.user_id:
            found.hard.append(f"{name}: to {refund.user_id}, spending {label} was {spending.user_id}'s")
        found.hard.extend(_order_tie_problems(name, refund, key, owners, by_id))
    for key, total in refunded.items():
        took = spendings[key].amount
        if total > took:
            found.hard.append(f"spending {key[0]} {key[1]}: took {took}, refunds give back {total}")
    return _result(
        "points.refunds_tied",
        "every points refund gives back its own order's spending, at most what it took",
        found,
        {"refunds": len(refunds), "spendings_refunded": len(refunded)},
        view=report.coordinator,
        note=_legacy_note(legacy),
    )


def _legacy_note(legacy: list[str]) -> str:
    """The note naming refunds that name no spending (written before migration points_0002)."""
    if not legacy:
        return ""
    return f"{len(legacy)} refund(s) from before migration points_0002 name no spending: {', '.join(legacy)}"


_HOLD_ENTRIES = frozenset({ENTRY_FREEZE, ENTRY_DEDUCT})


def _spending_owners(orders: Iterable[order_pb2.OrderAuditRow]) -> dict[tuple[str, str], set[str]]:
    """The orders whose spending each hold is: ``deduct <order>`` and ``freeze <placing gid>``."""
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for order in orders:
        owners[(ENTRY_DEDUCT, order.order_id)].add(order.order_id)
        if order.gid:
            owners[(ENTRY_FREEZE, order.gid)].add(order.order_id)
    return owners


def _order_tie_problems(
    name: str,
    refund: points_pb2.PointsLogEntry,
    spending: tuple[str, str],
    owners: Mapping[tuple[str, str], set[str]],
    by_id: Mapping[str, order_pb2.OrderAuditRow],
) -> list[str]:
    """A refund of an order's spending outside its cancel chain, or an order key naming another spending."""
    expected = {
        f"{order_id}{DISCOUNT_SUFFIX if spending[0] == ENTRY_FREEZE else PAYMENT_SUFFIX}"
        for order_id in owners.get(spending, set())
    }
    if expected and refund.out_trade_no not in expected:
        orders = ", ".join(sorted(owners[spending]))
        return [f"{name}: refunds order {orders}'s {spending[0]} {spending[1]} outside its cancel chain"]
    for suffix, kind in ((PAYMENT_SUFFIX, ENTRY_DEDUCT), (DISCOUNT_SUFFIX, ENTRY_FREEZE)):
        order_id = refund.out_trade_no.removesuffix(suffix)
        order = by_id.get(order_id) if refund.out_trade_no.endswith(suffix) else None
        if order is None:
            continue
        own = (kind, order.order_id if kind == ENTRY_DEDUCT else order.gid)
        if spending != own:
            return [
                f"{name}: order {order_id}'s refund names {spending[0]} {spending[1]}, not {own[0]} {own[1]}"
            ]
    return []


# --------------------------------------------------------------------------- orders and payments


class _Ledger:
    """Payments and points entries indexed by order, shared by the order checks."""

    def __init__(self, report: MeshReport) -> None:
        self.orders = {o.order_id: o for o in report.orders.orders}
        self.payments: dict[str, list[pay_pb2.PaymentAuditRow]] = defaultdict(list)
        for payment in report.pay.payments:
            self.payments[payment.order_id].append(payment)
        self.entries: dict[tuple[str, str], list[points_pb2.PointsLogEntry]] = defaultdict(list)
        for entry in report.points.entries:
            self.entries[(entry.type.lower(), entry.out_trade_no)].append(entry)

    def entry(self, kind: str, out_trade_no: str, *, confirmed: bool = False) -> bool:
        """True when the points log holds such an entry (``confirmed``: in state confirmed)."""
        rows = self.entries.get((kind, out_trade_no), [])
        return any(e.state.lower() == STATE_CONFIRMED for e in rows) if confirmed else bool(rows)

    def kept_payments(self, order_id: str) -> list[pay_pb2.PaymentAuditRow]:
        """pay_svc payments of the order that succeeded and were not refunded."""
        return [p for p in self.payments.get(order_id, []) if p.succeeded and p.refund_count == 0]

    def succeeded_payments(self, order_id: str) -> list[pay_pb2.PaymentAuditRow]:
        """pay_svc payments of the order that succeeded at some point."""
        return [p for p in self.payments.get(order_id, []) if p.succeeded]

    def points_paid(self, order_id: str) -> bool:
        """A confirmed ``deduct`` for the order (a points-channel payment)."""
        return self.entry(ENTRY_DEDUCT, order_id, confirmed=True)

    def points_refunded(self, order_id: str) -> bool:
        """The points-channel payment of the order was refunded."""
        return self.entry(ENTRY_REFUND, order_id + PAYMENT_SUFFIX)

    def kept_points_payment(self, order_id: str) -> bool:
        """A points-channel payment that was not refunded."""
        return self.points_paid(order_id) and not self.points_refunded(order_id)

    def voided_by_pay(self, payment: pay_pb2.PaymentAuditRow) -> bool:
        """A refunded gateway payment the order never took (not its recorded ``payment_id``).

        pay_svc refunds such a payment on its own (issue 15 review item 1): a late success after a
        failed, voided attempt, or an orphan pending attempt paid after another payment won the order.
        Its money came back and the order never counted it, so it is neither a second payment nor a
        second refund of the order.
        """
        order = self.orders.get(payment.order_id)
        return bool(payment.refund_count) and order is not None and payment.payment_id != order.payment_id

    def payment_labels(self, order_id: str) -> list[str]:
        """Every payment of the order that ever succeeded: ``<payment id>``, `` (refunded)`` appended."""
        labels = [
            p.payment_id + (" (refunded)" if p.refund_count else "")
            for p in self.succeeded_payments(order_id)
            if not self.voided_by_pay(p)
        ]
        if self.points_paid(order_id):
            labels.append(
                POINTS_PAYMENT_PREFIX + order_id + (" (refunded)" if self.points_refunded(order_id) else "")
            )
        return labels

    def refund_labels(self, order_id: str) -> list[str]:
        """The order's refunded payments: each gateway payment refunded, and the points payment's refund.

        A gateway payment refunded twice counts once here (it is reported per payment).
        """
        labels = [
            p.payment_id
            for p in self.payments.get(order_id, [])
            if p.refund_count and not self.voided_by_pay(p)
        ]
        refunds = self.entries.get((ENTRY_REFUND, order_id + PAYMENT_SUFFIX), [])
        labels += [POINTS_PAYMENT_PREFIX + order_id] * len(refunds)
        return labels


def _orders_with(report: MeshReport, statuses: Iterable[int]) -> list[order_pb2.OrderAuditRow]:
    wanted = set(statuses)
    return [o for o in report.orders.orders if o.status in wanted]


def check_paid_orders(report: MeshReport) -> CheckResult:
    """Every PAID/SHIPPED/COMPLETED order has exactly one successful payment of its own, of the amount due.

    Two payments that ever succeeded (refunded or not) are a hard finding: one live payment attempt per
    order (DESIGN.md section 6), so no honest moment has them. A paid order whose payment was refunded
    (issue 15 item 1: ``Pay.Refund`` around the order) fails at rest; while transactions run it may be a
    cancel that moved the order on after the orders were read.
    """
    ledger = _Ledger(report)
    found = _Findings()
    numbers = dict.fromkeys(("paid_orders", "external", "points", "nothing_due"), 0)
    for order in _orders_with(report, PAID_STATUSES):
        numbers["paid_orders"] += 1
        name = f"order {order.order_id} ({order_status_name(order.status)})"
        succeeded = ledger.payment_labels(order.order_id)
        if len(succeeded) > 1:
            found.hard.append(f"{name}: {len(succeeded)} successful payments ({', '.join(succeeded)})")
            continue
        external = ledger.kept_payments(order.order_id)
        by_points = ledger.kept_points_payment(order.order_id)
        if not external and not by_points:
            if succeeded:
                found.eventual.append(f"{name}: payment {succeeded[0]} while the order is paid")
            elif order.amount_due_cents == 0:
                numbers["nothing_due"] += 1
            else:
                found.eventual.append(f"{name}: no successful payment ({order.amount_due_cents} cents due)")
            continue
        if external:
            numbers["external"] += 1
            found.hard.extend(_external_payment_problems(name, order, external[0]))
        else:
            numbers["points"] += 1
            found.hard.extend(_points_payment_problems(name, order, ledger))
    return _result(
        "orders.paid_once",
        "every paid order has exactly one successful payment",
        found,
        numbers,
        view=report.coordinator,
    )


def _external_payment_problems(
    name: str, order: order_pb2.OrderAuditRow, payment: pay_pb2.PaymentAuditRow
) -> list[str]:
    problems = []
    if payment.amount_cents != order.amount_due_cents:
        problems.append(
            f"{name}: payment {payment.payment_id} took {payment.amount_cents} cents, "
            f"due {order.amount_due_cents}"
        )
    if order.payment_id and order.payment_id != payment.payment_id:
        problems.append(f"{name}: records payment {order.payment_id} but {payment.payment_id} succeeded")
    if order.channel == order_pb2.PAY_CHANNEL_POINTS:
        problems.append(f"{name}: channel POINTS but paid through the gateway ({payment.payment_id})")
    return problems


def _points_payment_problems(name: str, order: order_pb2.OrderAuditRow, ledger: _Ledger) -> list[str]:
    problems = []
    entries = ledger.entries.get((ENTRY_DEDUCT, order.order_id), [])
    amounts = {e.amount for e in entries if e.state.lower() == STATE_CONFIRMED}
    if amounts != {order.amount_due_cents}:
        problems.append(f"{name}: points deduction {sorted(amounts)} != {order.amount_due_cents} due")
    if order.channel == order_pb2.PAY_CHANNEL_EXTERNAL:
        problems.append(f"{name}: channel EXTERNAL but paid with points")
    return problems


def check_refunds(report: MeshReport) -> CheckResult:
    """Every REFUNDED order and every succeeded payment of a CANCELLED order has exactly one refund.

    Also: no payment is refunded twice or for another amount, and a cancelled order gives its points
    discount back once (when the discount was actually taken: the placing freeze was confirmed).
    """
    ledger = _Ledger(report)
    found = _Findings()
    numbers = dict.fromkeys(("refunded_orders", "cancelled_orders", "refunds", "discounts_returned"), 0)
    for payment in report.pay.payments:
        numbers["refunds"] += payment.refund_count
        found.hard.extend(_refund_count_problems(payment))
    for order in _orders_with(report, (REFUNDED,)):
        numbers["refunded_orders"] += 1
        _check_refunded_order(order, ledger, found)
    for order in _orders_with(report, (CANCELLED,)):
        numbers["cancelled_orders"] += 1
        _check_cancelled_order(order, ledger, found)
    for order in _orders_with(report, (CANCELLED, REFUNDED)):
        numbers["discounts_returned"] += _check_discount_returned(order, ledger, found)
    for order in report.orders.orders:
        _check_refunded_once(order, ledger, found)
    _check_orphan_payments(ledger, found)
    return _result(
        "orders.refunded_once",
        "refunded / cancelled-after-payment orders have exactly one refund",
        found,
        numbers,
        view=report.coordinator,
    )


def _refund_count_problems(payment: pay_pb2.PaymentAuditRow) -> list[str]:
    if payment.refund_count > 1:
        return [
            f"payment {payment.payment_id} (order {payment.order_id}) refunded {payment.refund_count} times"
        ]
    if payment.refund_count == 1 and payment.refunded_cents != payment.amount_cents:
        return [
            f"payment {payment.payment_id} (order {payment.order_id}) refunded {payment.refunded_cents} "
            f"of {payment.amount_cents} cents"
        ]
    if payment.refund_count and not payment.succeeded:
        return [f"payment {payment.payment_id} (order {payment.order_id}) refunded but never succeeded"]
    return []


def _check_refunded_order(order: order_pb2.OrderAuditRow, ledger: _Ledger, found: _Findings) -> None:
    """Record what a REFUNDED order lacks; every finding is hard.

    REFUNDED is final and comes only after every refund branch succeeded (the cancel chain's ``finish``
    depends on them, and the audit reads orders before payments and points), so a REFUNDED order
    without its refund is never a moment of an honest transaction.
    """
    name = f"order {order.order_id} (REFUNDED)"
    external = ledger.succeeded_payments(order.order_id)
    refunds = sum(1 for p in external if p.refund_count) + int(ledger.points_refunded(order.order_id))
    for payment in external:
        if payment.refund_count == 0:
            found.hard.append(f"{name}: payment {payment.payment_id} not refunded")
    if ledger.points_paid(order.order_id) and not ledger.points_refunded(order.order_id):
        found.hard.append(f"{name}: points payment not refunded")
    if (
        refunds == 0
        and order.amount_due_cents > 0
        and not external
        and not ledger.points_paid(order.order_id)
    ):
        found.hard.append(f"{name}: no payment and no refund found")


def _check_refunded_once(order: order_pb2.OrderAuditRow, ledger: _Ledger, found: _Findings) -> None:
    """An order's money comes back once: more refunds than one (any channels) is a hard finding.

    One live payment attempt per order means at most one payment ever succeeds, so at most one refund
    (a late gateway success after a cancel is refunded automatically: that is the one). A payment
    refunded twice is reported per payment instead.
    """
    refunds = ledger.refund_labels(order.order_id)
    if len(refunds) > 1:
        name = f"order {order.order_id} ({order_status_name(order.status)})"
        found.hard.append(f"{name}: refunded {len(refunds)} times ({', '.join(refunds)})")


def _check_cancelled_order(order: order_pb2.OrderAuditRow, ledger: _Ledger, found: _Findings) -> None:
    name = f"order {order.order_id} (CANCELLED)"
    for payment in ledger.succeeded_payments(order.order_id):
        if payment.refund_count == 0:
            found.eventual.append(f"{name}: payment {payment.payment_id} succeeded and was not refunded")
    if ledger.points_paid(order.order_id) and not ledger.points_refunded(order.order_id):
        found.eventual.append(f"{name}: points payment not refunded")


def _check_discount_returned(order: order_pb2.OrderAuditRow, ledger: _Ledger, found: _Findings) -> int:
    """1 when the order's points discount was taken and given back; records it when not given back."""
    if order.points_used <= 0 or not ledger.entry(ENTRY_FREEZE, order.gid, confirmed=True):
        return 0
    if ledger.entry(ENTRY_REFUND, order.order_id + DISCOUNT_SUFFIX):
        return 1
    problem = (
        f"order {order.order_id} ({order_status_name(order.status)}): "
        f"points discount of {order.points_used} not given back"
    )
    # REFUNDED waits for the discount refund too; a CANCELLED order's chain may still be sending it.
    (found.hard if order.status == REFUNDED else found.eventual).append(problem)
    return 0


def _check_orphan_payments(ledger: _Ledger, found: _Findings) -> None:
    for order_id, payments in ledger.payments.items():
        if order_id in ledger.orders:
            continue
        for payment in payments:
            if payment.succeeded and payment.refund_count == 0:
                found.eventual.append(f"payment {payment.payment_id} succeeded for unknown order {order_id}")


def check_not_paid_and_cancelled(report: MeshReport) -> CheckResult:
    """No CANCELLED order keeps a payment (it is either refunded or the order is not cancelled)."""
    ledger = _Ledger(report)
    found = _Findings()
    cancelled = _orders_with(report, (CANCELLED,))
    for order in cancelled:
        kept = [p.payment_id for p in ledger.kept_payments(order.order_id)]
        if ledger.kept_points_payment(order.order_id):
            kept.append("points:" + order.order_id)
        if kept:
            found.eventual.append(f"order {order.order_id} is CANCELLED but keeps payment {', '.join(kept)}")
    return _result(
        "orders.paid_xor_cancelled",
        "no order is both paid and cancelled",
        found,
        {"cancelled_orders": len(cancelled), "cancelled_and_paid": len(found.eventual)},
        view=report.coordinator,
    )


# --------------------------------------------------------------------------- coordinator


def retry_budget_ms(options: coordinator_pb2.TxOptions) -> int:
    """How long a transaction's ops may keep retrying before it must be flagged stuck.

    Every attempt up to ``retry_limit`` may wait its (capped, jittered) backoff plus one request
    timeout; a due transaction may be picked up a sweep plus a lease late.
    """
    limit = options.retry_limit or DEFAULT_RETRY_LIMIT
    interval = options.retry_interval_ms or DEFAULT_RETRY_INTERVAL_MS
    request = options.request_timeout_ms or DEFAULT_REQUEST_TIMEOUT_MS
    total = PICKUP_SLACK_MS
    for attempt in range(limit):
        backoff = interval * 2.0 ** min(attempt, 40) * (1 + BACKOFF_JITTER)
        total += int(min(backoff, MAX_BACKOFF_MS)) + request
    return total


def tx_deadline_ms(tx: coordinator_pb2.Transaction) -> int:
    """When a non-final transaction that is not flagged stuck becomes a violation (epoch ms)."""
    if tx.HasField("timeout_at"):
        timeout_at = tx.timeout_at.ToMilliseconds()
    else:
        timeout_at = tx.created_at.ToMilliseconds() + (tx.options.timeout_ms or DEFAULT_TIMEOUT_MS)
    return timeout_at + retry_budget_ms(tx.options)


def check_transactions(report: MeshReport) -> CheckResult:
    """No transaction is non-final past its timeout plus retry budget unless it is listed as stuck."""
    view = report.coordinator
    found = _Findings()
    stuck = 0
    for tx in view.unfinished:
        if tx.stuck or tx.gid in view.stuck_gids:
            stuck += 1
            continue
        late_ms = view.now_ms - tx_deadline_ms(tx)
        if late_ms > 0:
            found.hard.append(
                f"{tx_label(tx)}: non-final {late_ms / 1000:.0f} s past its timeout + retry budget "
                "and not listed as stuck"
            )
    numbers = {"unfinished": len(view.unfinished), "stuck": stuck, "overdue": len(found.hard)}
    notes = [view.note] if view.note else []
    if stuck:
        notes.append(f"{stuck} stuck: see meshctl tx stuck")
    return CheckResult(
        "transactions.finish",
        "no transaction non-final past timeout + retry budget (unless stuck)",
        Verdict.FAIL if found.hard else Verdict.PASS,
        numbers,
        tuple(found.hard),
        "; ".join(notes),
    )


CHECKS: tuple[Callable[[MeshReport], CheckResult], ...] = (
    check_stock_conservation,
    check_stock_db_matches_redis,
    check_stock_sold_matches_orders,
    check_points_conservation,
    check_points_non_negative,
    check_points_refunds,
    check_paid_orders,
    check_refunds,
    check_not_paid_and_cancelled,
    check_transactions,
)


def run_checks(report: MeshReport) -> list[CheckResult]:
    """Every invariant, in a fixed order."""
    return [check(report) for check in CHECKS]


def all_ok(results: Iterable[CheckResult]) -> bool:
    """True when no check failed."""
    return all(r.ok for r in results)


def all_pass(results: Iterable[CheckResult]) -> bool:
    """True when every check passed (none failed, none skipped)."""
    return all(r.verdict is Verdict.PASS for r in results)


def _kv(values: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
