"""The audit's invariant checks over hand-built reports: a coherent mesh passes, each violation fails."""

from __future__ import annotations

from dataclasses import replace

from google.protobuf.timestamp_pb2 import Timestamp

from meshctl.audit import checks
from meshctl.audit.model import CheckResult, CoordinatorView, MeshReport, Verdict
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from meshpb.points.v1 import points_pb2 as ppb
from meshpb.stock.v1 import stock_pb2 as spb

NOW_MS = 1_800_000_000_000
PAID = opb.ORDER_STATUS_PAID
CANCELLED = opb.ORDER_STATUS_CANCELLED
REFUNDED = opb.ORDER_STATUS_REFUNDED
EXTERNAL = opb.PAY_CHANNEL_EXTERNAL
POINTS = opb.PAY_CHANNEL_POINTS
SUCCEEDED = paypb.PAYMENT_STATUS_SUCCEEDED
PAY_REFUNDED = paypb.PAYMENT_STATUS_REFUNDED


def _order(
    order_id: str,
    status: opb.OrderStatus.ValueType,
    channel: opb.PayChannel.ValueType,
    due: int,
    *,
    points_used: int = 0,
    items: tuple[tuple[str, int], ...] = (),
) -> opb.OrderAuditRow:
    payment_id = {EXTERNAL: f"pay-{order_id}", POINTS: f"points:{order_id}"}.get(channel, "")
    return opb.OrderAuditRow(
        order_id=order_id,
        user_id="alice",
        status=status,
        channel=channel,
        payment_id=payment_id,
        amount_due_cents=due,
        points_used=points_used,
        gid=f"g-{order_id}",
        items=[opb.OrderItem(sku=sku, merchant_id="m", quantity=q, unit_price_cents=100) for sku, q in items],
    )


def _payment(order_id: str, amount: int, *, refunds: int = 0) -> paypb.PaymentAuditRow:
    return paypb.PaymentAuditRow(
        payment_id=f"pay-{order_id}",
        order_id=order_id,
        channel=EXTERNAL,
        status=PAY_REFUNDED if refunds else SUCCEEDED,
        amount_cents=amount,
        succeeded=True,
        refund_count=refunds,
        refunded_cents=amount * min(refunds, 1),
    )


def _entry(
    kind: str, out_trade_no: str, amount: int, state: str, spending: tuple[str, str] = ("", "")
) -> ppb.PointsLogEntry:
    return ppb.PointsLogEntry(
        out_trade_no=out_trade_no,
        type=kind,
        user_id="alice",
        amount=amount,
        state=state,
        spending_type=spending[0],
        spending_out_trade_no=spending[1],
    )


def _refund(out_trade_no: str, amount: int, spending: tuple[str, str]) -> ppb.PointsLogEntry:
    return _entry("refund", out_trade_no, amount, "done", spending)


def world(view: CoordinatorView | None = None) -> MeshReport:
    """A coherent mesh: every flow of the demo once, all settled."""
    stock = spb.StockAudit(
        skus=[
            spb.SkuAudit(
                sku="tea",
                initial=10,
                redis_available=7,
                redis_reserved=0,
                db_available=7,
                db_sold=3,
                redis_loaded=True,
            ),
            spb.SkuAudit(sku="book", initial=5, db_available=5, redis_loaded=False),
        ]
    )
    points = ppb.PointsAudit(
        issued=1000,
        spent=350,
        refunded=150,
        sum_balance=800,
        sum_frozen=0,
        entries=[
            _entry("deduct", "o-paid-points", 200, "confirmed"),
            _entry("deduct", "o-refunded-points", 100, "confirmed"),
            _refund("o-refunded-points:payment", 100, ("deduct", "o-refunded-points")),
            _entry("freeze", "g-o-refunded-points", 50, "confirmed"),
            _refund("o-refunded-points:discount", 50, ("freeze", "g-o-refunded-points")),
            _entry("deduct", "o-abandoned", 70, "cancelled"),
        ],
    )
    orders = opb.OrderAudit(
        orders=[
            _order("o-paid-points", PAID, POINTS, 200, items=(("tea", 1),)),
            _order("o-paid-ext", opb.ORDER_STATUS_COMPLETED, EXTERNAL, 500, items=(("tea", 1),)),
            _order("o-refunded-ext", REFUNDED, EXTERNAL, 400, items=(("book", 2),)),
            _order("o-late-callback", CANCELLED, opb.PAY_CHANNEL_UNSPECIFIED, 300),
            _order("o-cancelled", CANCELLED, opb.PAY_CHANNEL_UNSPECIFIED, 300, items=(("book", 1),)),
            _order("o-refunded-points", REFUNDED, POINTS, 100, points_used=50),
            _order("o-free", PAID, POINTS, 0, points_used=90),
            _order(
                "o-created", opb.ORDER_STATUS_CREATED, opb.PAY_CHANNEL_UNSPECIFIED, 80, items=(("tea", 1),)
            ),
        ]
    )
    late = _payment("o-late-callback", 300, refunds=1)
    pay = paypb.PayAudit(
        payments=[
            _payment("o-paid-ext", 500),
            _payment("o-refunded-ext", 400, refunds=1),
            late,
            paypb.PaymentAuditRow(
                payment_id="pay-o-created",
                order_id="o-created",
                channel=EXTERNAL,
                status=paypb.PAYMENT_STATUS_PENDING,
                amount_cents=80,
            ),
        ]
    )
    return MeshReport(stock, points, orders, pay, view or CoordinatorView(now_ms=NOW_MS))


def in_flight() -> CoordinatorView:
    """A view with one transaction running right now."""
    return CoordinatorView(now_ms=NOW_MS, unfinished=(_tx("g-running", created_ms=NOW_MS - 1000),))


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _tx(gid: str, *, created_ms: int, stuck: bool = False) -> cpb.Transaction:
    return cpb.Transaction(
        gid=gid,
        mode=cpb.MODE_TCC,
        status=cpb.STATUS_SUBMITTED,
        created_at=_ts(created_ms),
        timeout_at=_ts(created_ms + 30_000),
        options=cpb.TxOptions(
            timeout_ms=30_000, retry_interval_ms=1000, retry_limit=3, request_timeout_ms=2000
        ),
        stuck=stuck,
    )


def _by_key(report: MeshReport) -> dict[str, CheckResult]:
    return {r.key: r for r in checks.run_checks(report)}


def _verdicts(report: MeshReport) -> dict[str, Verdict]:
    return {k: r.verdict for k, r in _by_key(report).items()}


def _only_failing(report: MeshReport) -> dict[str, tuple[str, ...]]:
    return {k: r.violations for k, r in _by_key(report).items() if r.verdict is Verdict.FAIL}


# --------------------------------------------------------------------------- passing


def test_coherent_mesh_passes_every_check() -> None:
    results = checks.run_checks(world())
    assert [r.verdict for r in results] == [Verdict.PASS] * len(checks.CHECKS)
    assert checks.all_pass(results)


def test_numbers_are_reported_per_invariant() -> None:
    found = _by_key(world())
    assert found["stock.conservation"].numbers == {
        "skus": 2,
        "initial": 15,
        "available": 12,
        "reserved": 0,
        "sold": 3,
    }
    assert found["points.conservation"].numbers["issued"] == 1000
    assert found["orders.paid_once"].numbers == {
        "paid_orders": 3,
        "external": 1,
        "points": 1,
        "nothing_due": 1,
    }
    assert found["orders.refunded_once"].numbers["discounts_returned"] == 1


def test_empty_mesh_passes() -> None:
    empty = MeshReport(
        spb.StockAudit(),
        ppb.PointsAudit(),
        opb.OrderAudit(),
        paypb.PayAudit(),
        CoordinatorView(now_ms=NOW_MS),
    )
    assert checks.all_pass(checks.run_checks(empty))


# --------------------------------------------------------------------------- stock


def test_stock_not_adding_up_fails_at_rest() -> None:
    report = world()
    report.stock.skus[0].redis_available = 6
    report.stock.skus[0].db_available = 6
    report.stock.skus[0].db_sold = 4
    report.orders.orders[-1].items[0].quantity = 2  # the fourth unit sold is held by an order
    assert _only_failing(report) == {}
    report.stock.skus[0].db_sold = 3
    report.orders.orders[-1].items[0].quantity = 1
    report.stock.skus[0].initial = 9  # DB still 6 + 3 = 9, Redis 6 + 0 + 3 = 9: consistent
    assert _only_failing(report) == {}
    report.stock.skus[0].redis_available = 5
    failing = _only_failing(report)
    assert set(failing) == {"stock.conservation", "stock.db_matches_redis"}
    assert "sku tea: initial 9 != available 5 + reserved 0 + sold 3 (= 8)" in failing["stock.conservation"]


def test_stock_mid_transaction_is_skipped_while_in_flight() -> None:
    report = world(in_flight())
    report.stock.skus[0].redis_reserved = 2  # confirmed in the DB, reservation not yet cleared
    found = _by_key(report)
    assert found["stock.conservation"].verdict is Verdict.SKIP
    assert found["stock.db_matches_redis"].verdict is Verdict.SKIP
    assert "1 transaction(s) in flight" in found["stock.conservation"].note


def test_stock_reservation_in_flight_keeps_both_equalities() -> None:
    report = world(in_flight())
    sku = report.stock.skus[0]
    sku.redis_available, sku.redis_reserved = 5, 2  # tried, not yet confirmed
    assert _verdicts(report)["stock.conservation"] is Verdict.PASS
    assert _verdicts(report)["stock.db_matches_redis"] is Verdict.PASS


def test_stock_db_not_adding_up_fails_even_in_flight() -> None:
    report = world(in_flight())
    report.stock.skus[1].db_sold = 1
    failing = _only_failing(report)
    assert failing["stock.conservation"] == ("sku book: DB available 5 + sold 1 != initial 5",)


def test_negative_stock_fails() -> None:
    report = world(in_flight())
    report.stock.skus[0].redis_available = -1
    report.stock.skus[0].redis_reserved = 8
    failing = _only_failing(report)
    assert failing["stock.conservation"] == ("sku tea: negative redis_available=-1",)


def test_stock_sold_not_held_by_orders_fails_at_rest() -> None:
    report = world()
    report.stock.skus[1].db_sold = 1  # a book sold that no live order holds
    report.stock.skus[1].db_available = 4
    report.stock.skus[1].initial = 5
    assert _only_failing(report) == {
        "stock.sold_matches_orders": ("sku book: stock_svc sold 1 to orders != live orders hold 0",)
    }


def _with_stock_log(report: MeshReport) -> MeshReport:
    """``world``'s stock log: tea sold to three orders (one each), book sold to two and given back."""
    refs = report.stock.sold_by_ref
    for order_id in ("o-paid-points", "o-paid-ext", "o-created"):
        refs.add(sku="tea", order_ids=[order_id], sold=1)
    refs.add(sku="book", order_ids=["o-refunded-ext", "o-cancelled"], sold=0)
    return report


def test_stock_sold_to_another_initiator_is_counted_apart() -> None:
    report = _with_stock_log(world())
    report.stock.skus[0].db_sold += 4  # a warehouse TCC sold 4 teas under its own ids, 1 under none
    report.stock.skus[0].db_available -= 4
    report.stock.skus[0].redis_available -= 4
    report.stock.sold_by_ref.add(sku="tea", order_ids=["warehouse-1"], sold=3)
    report.stock.sold_by_ref.add(sku="tea", order_ids=[], sold=1)
    result = _by_key(report)["stock.sold_matches_orders"]
    assert result.verdict is Verdict.PASS, result
    assert (result.numbers["sold_to_orders"], result.numbers["sold_outside_orders"]) == (3, 4)


def test_stock_log_disagreeing_with_sold_fails_even_in_flight() -> None:
    report = _with_stock_log(world(in_flight()))
    report.stock.sold_by_ref[0].sold = 2  # the log says 4 teas, the DB 3
    result = _by_key(report)["stock.sold_matches_orders"]
    assert result.verdict is Verdict.FAIL
    assert "sku tea: stock_svc sold 3 != its stock log 4" in result.violations


def test_stock_sold_mismatch_while_an_order_refunds_is_skipped_in_flight() -> None:
    report = world(in_flight())
    report.orders.orders[1].status = opb.ORDER_STATUS_REFUNDING  # its tea is being given back
    result = _by_key(report)["stock.sold_matches_orders"]
    assert result.verdict is Verdict.SKIP
    assert "REFUNDING" in result.violations[0]


def test_sku_held_by_orders_but_unknown_to_stock_fails() -> None:
    report = world()
    report.orders.orders[0].items.append(opb.OrderItem(sku="ghost", merchant_id="m", quantity=1))
    failing = _only_failing(report)
    assert failing["stock.sold_matches_orders"] == (
        "sku ghost: held by orders (1 units) but unknown to stock_svc",
    )


def test_db_disagreeing_with_redis_fails_at_rest() -> None:
    report = world()
    report.stock.skus[0].redis_available = 8
    report.stock.skus[0].db_sold = 2
    report.stock.skus[0].db_available = 8
    report.stock.skus[0].redis_available = 9
    report.stock.skus[0].initial = 10
    failing = _only_failing(report)
    assert "sku tea: DB available 8 != Redis available 9 + reserved 0" in failing["stock.db_matches_redis"]


# --------------------------------------------------------------------------- points


def test_points_not_adding_up_fails() -> None:
    report = world()
    report.points.sum_balance = 790
    failing = _only_failing(report)
    assert failing == {
        "points.conservation": ("balances 790 + frozen 0 + spent 350 - refunded 150 = 990 != issued 1000",)
    }


def test_points_frozen_moving_keeps_the_sum() -> None:
    report = world()
    report.points.sum_balance, report.points.sum_frozen = 700, 100
    assert _only_failing(report) == {}


def test_negative_account_fails_even_in_flight() -> None:
    report = world(in_flight())
    report.points.negative_accounts = 2
    failing = _only_failing(report)
    assert failing == {"points.non_negative": ("2 account(s) with a negative balance or frozen amount",)}


# --------------------------------------------------------------------------- paid orders


def test_paid_order_without_payment_fails() -> None:
    report = world()
    del report.pay.payments[0]  # o-paid-ext's payment
    failing = _only_failing(report)
    assert failing["orders.paid_once"] == (
        "order o-paid-ext (COMPLETED): no successful payment (500 cents due)",
    )


def test_paid_order_with_unconfirmed_points_deduction_fails() -> None:
    report = world()
    report.points.entries[0].state = "trying"
    failing = _only_failing(report)
    assert failing["orders.paid_once"] == (
        "order o-paid-points (PAID): no successful payment (200 cents due)",
    )


def test_paid_order_mid_confirm_is_skipped_while_in_flight() -> None:
    report = world(in_flight())
    report.points.entries[0].state = "trying"
    assert _verdicts(report)["orders.paid_once"] is Verdict.SKIP


def test_paid_order_with_two_payments_fails() -> None:
    report = world()
    report.pay.payments.append(
        paypb.PaymentAuditRow(
            payment_id="pay-extra",
            order_id="o-paid-points",
            channel=EXTERNAL,
            status=SUCCEEDED,
            amount_cents=200,
            succeeded=True,
        )
    )
    failing = _only_failing(report)
    assert failing["orders.paid_once"] == (
        "order o-paid-points (PAID): 2 successful payments (pay-extra, points:o-paid-points)",
    )


def test_paid_order_paid_with_another_amount_fails() -> None:
    report = world()
    report.pay.payments[0].amount_cents = 499
    failing = _only_failing(report)
    assert failing["orders.paid_once"] == (
        "order o-paid-ext (COMPLETED): payment pay-o-paid-ext took 499 cents, due 500",
    )


def test_paid_order_recording_another_payment_fails() -> None:
    report = world()
    report.orders.orders[1].payment_id = "pay-someone-else"
    failing = _only_failing(report)
    assert failing["orders.paid_once"] == (
        "order o-paid-ext (COMPLETED): records payment pay-someone-else but pay-o-paid-ext succeeded",
    )


# --------------------------------------------------------------------------- refunds


def test_refunded_order_without_refund_fails() -> None:
    report = world()
    payment = report.pay.payments[1]  # o-refunded-ext
    payment.refund_count, payment.refunded_cents, payment.status = 0, 0, SUCCEEDED
    failing = _only_failing(report)
    assert failing["orders.refunded_once"] == (
        "order o-refunded-ext (REFUNDED): payment pay-o-refunded-ext not refunded",
    )


def test_refunded_points_order_without_points_refund_fails() -> None:
    report = world()
    del report.points.entries[2]  # o-refunded-points:payment
    failing = _only_failing(report)
    assert failing["orders.refunded_once"] == (
        "order o-refunded-points (REFUNDED): points payment not refunded",
    )


def test_double_refund_fails_even_in_flight() -> None:
    report = world(in_flight())
    report.pay.payments[1].refund_count = 2
    report.pay.payments[1].refunded_cents = 800
    failing = _only_failing(report)
    assert failing["orders.refunded_once"] == (
        "payment pay-o-refunded-ext (order o-refunded-ext) refunded 2 times",
    )


def test_partial_refund_fails() -> None:
    report = world()
    report.pay.payments[1].refunded_cents = 100
    failing = _only_failing(report)
    assert failing["orders.refunded_once"] == (
        "payment pay-o-refunded-ext (order o-refunded-ext) refunded 100 of 400 cents",
    )


def test_late_callback_not_refunded_fails_refunds_and_paid_xor_cancelled() -> None:
    report = world()
    late = report.pay.payments[2]
    late.refund_count, late.refunded_cents, late.status = 0, 0, SUCCEEDED
    failing = _only_failing(report)
    assert failing == {
        "orders.refunded_once": (
            "order o-late-callback (CANCELLED): payment pay-o-late-callback succeeded and was not refunded",
        ),
        "orders.paid_xor_cancelled": (
            "order o-late-callback is CANCELLED but keeps payment pay-o-late-callback",
        ),
    }


def test_cancelled_order_keeping_points_payment_fails() -> None:
    report = world()
    report.points.entries.append(_entry("deduct", "o-cancelled", 300, "confirmed"))
    failing = _only_failing(report)
    assert failing["orders.paid_xor_cancelled"] == (
        "order o-cancelled is CANCELLED but keeps payment points:o-cancelled",
    )
    assert failing["orders.refunded_once"] == ("order o-cancelled (CANCELLED): points payment not refunded",)


def test_points_discount_not_given_back_fails() -> None:
    report = world()
    del report.points.entries[4]  # o-refunded-points:discount
    failing = _only_failing(report)
    assert failing["orders.refunded_once"] == (
        "order o-refunded-points (REFUNDED): points discount of 50 not given back",
    )


def test_discount_of_a_rolled_back_placement_needs_no_refund() -> None:
    report = world()
    report.points.entries[3].state = "cancelled"  # the freeze was cancelled: nothing was taken
    del report.points.entries[4]
    assert _only_failing(report) == {}


def test_succeeded_payment_for_unknown_order_fails() -> None:
    report = world()
    report.pay.payments.append(_payment("o-ghost", 10))
    failing = _only_failing(report)
    assert failing["orders.refunded_once"] == ("payment pay-o-ghost succeeded for unknown order o-ghost",)


# --------------------------------------------------------------------------- transactions


def test_transaction_within_its_budget_passes() -> None:
    view = CoordinatorView(now_ms=NOW_MS, unfinished=(_tx("g1", created_ms=NOW_MS - 60_000),))
    found = _by_key(world(view))["transactions.finish"]
    assert found.verdict is Verdict.PASS
    assert found.numbers == {"unfinished": 1, "stuck": 0, "overdue": 0}


def test_transaction_overdue_and_not_stuck_fails() -> None:
    created = NOW_MS - 3_600_000
    view = CoordinatorView(now_ms=NOW_MS, unfinished=(_tx("g-old", created_ms=created),))
    found = _by_key(world(view))["transactions.finish"]
    assert found.verdict is Verdict.FAIL
    assert found.violations[0].startswith("g-old (TCC SUBMITTED): non-final ")
    assert found.numbers["overdue"] == 1


def test_overdue_transaction_listed_as_stuck_passes() -> None:
    created = NOW_MS - 3_600_000
    flagged = CoordinatorView(now_ms=NOW_MS, unfinished=(_tx("g-old", created_ms=created, stuck=True),))
    listed = CoordinatorView(
        now_ms=NOW_MS, unfinished=(_tx("g-old", created_ms=created),), stuck_gids=frozenset({"g-old"})
    )
    for view in (flagged, listed):
        found = _by_key(world(view))["transactions.finish"]
        assert found.verdict is Verdict.PASS
        assert found.numbers == {"unfinished": 1, "stuck": 1, "overdue": 0}
        assert "see meshctl tx stuck" in found.note


def test_retry_budget_adds_capped_backoffs_request_timeouts_and_pickup_slack() -> None:
    options = cpb.TxOptions(retry_interval_ms=1000, retry_limit=3, request_timeout_ms=2000)
    backoffs = 1200 + 2400 + 4800
    assert checks.retry_budget_ms(options) == checks.PICKUP_SLACK_MS + backoffs + 3 * 2000
    capped = cpb.TxOptions(retry_interval_ms=50_000, retry_limit=2, request_timeout_ms=1)
    assert checks.retry_budget_ms(capped) == checks.PICKUP_SLACK_MS + 2 * (checks.MAX_BACKOFF_MS + 1)


def test_deadline_uses_defaults_when_options_are_zero() -> None:
    tx = cpb.Transaction(gid="g", created_at=_ts(NOW_MS))
    expected = NOW_MS + checks.DEFAULT_TIMEOUT_MS + checks.retry_budget_ms(cpb.TxOptions())
    assert checks.tx_deadline_ms(tx) == expected


def test_report_view_replacement_keeps_reports() -> None:
    report = world()
    moved = replace(report, coordinator=in_flight())
    assert moved.stock is report.stock
    assert not moved.coordinator.at_rest


def test_item3_refunded_order_without_refund_fails_even_while_transactions_run() -> None:
    report = world(in_flight())
    payment = report.pay.payments[1]  # o-refunded-ext
    payment.refund_count, payment.refunded_cents, payment.status = 0, 0, SUCCEEDED
    result = _by_key(report)["orders.refunded_once"]
    assert result.verdict is Verdict.FAIL  # REFUNDED is final: never "mid-change"
    assert result.violations == ("order o-refunded-ext (REFUNDED): payment pay-o-refunded-ext not refunded",)


def test_item3_refunded_points_order_without_refunds_fails_even_while_transactions_run() -> None:
    report = world(in_flight())
    del report.points.entries[4]  # o-refunded-points:discount
    del report.points.entries[2]  # o-refunded-points:payment
    result = _by_key(report)["orders.refunded_once"]
    assert result.verdict is Verdict.FAIL
    assert result.violations == (
        "order o-refunded-points (REFUNDED): points payment not refunded",
        "order o-refunded-points (REFUNDED): points discount of 50 not given back",
    )


def test_item3_cancelled_order_whose_refund_is_on_its_way_is_skipped_while_in_flight() -> None:
    report = world(in_flight())
    late = report.pay.payments[2]  # o-late-callback (CANCELLED): its cancel chain may still refund it
    late.refund_count, late.refunded_cents, late.status = 0, 0, SUCCEEDED
    assert _by_key(report)["orders.refunded_once"].verdict is Verdict.SKIP


# --------------------------------------------------------------------------- issue 15: money drift


def test_issue15_item1_paid_order_whose_payment_was_refunded_fails_at_rest() -> None:
    report = world()
    payment = report.pay.payments[0]  # o-paid-ext (COMPLETED): Pay.Refund went around the order
    payment.refund_count, payment.refunded_cents, payment.status = 1, 500, PAY_REFUNDED
    assert _only_failing(report) == {
        "orders.paid_once": (
            "order o-paid-ext (COMPLETED): payment pay-o-paid-ext (refunded) while the order is paid",
        )
    }
    # While transactions run it may be a cancel caught between the two reads: not yet a failure.
    moving = replace(report, coordinator=in_flight())
    assert _verdicts(moving)["orders.paid_once"] is Verdict.SKIP


def test_issue15_item1_paid_order_whose_points_payment_was_refunded_fails_at_rest() -> None:
    report = world()
    report.points.entries.append(_refund("o-paid-points:payment", 200, ("deduct", "o-paid-points")))
    report.points.refunded += 200
    report.points.sum_balance += 200
    assert _only_failing(report) == {
        "orders.paid_once": (
            "order o-paid-points (PAID): payment points:o-paid-points (refunded) while the order is paid",
        )
    }


def test_issue15_item2_paid_order_with_a_second_succeeded_payment_fails_even_in_flight() -> None:
    report = world(in_flight())
    # Pay EXTERNAL and Pay POINTS both took money and the gateway payment was kept: two payments.
    report.pay.payments.append(_payment("o-paid-points", 200))
    failing = _only_failing(report)
    assert failing["orders.paid_once"] == (
        "order o-paid-points (PAID): 2 successful payments (pay-o-paid-points, points:o-paid-points)",
    )


def test_issue15_item2_order_refunded_twice_fails_even_in_flight() -> None:
    report = world(in_flight())
    # The same drift after a Cancel: the order's recorded gateway payment and its points payment both
    # refunded (a payment the order took, so not one pay_svc voided on its own).
    report.pay.payments.append(_payment("o-refunded-points", 100, refunds=1))
    orders = report.orders.orders
    at = next(i for i, o in enumerate(orders) if o.order_id == "o-refunded-points")
    orders[at].payment_id = "pay-o-refunded-points"
    failing = _only_failing(report)
    assert failing == {
        "orders.refunded_once": (
            "order o-refunded-points (REFUNDED): refunded 2 times "
            "(pay-o-refunded-points, points:o-refunded-points)",
        )
    }


def test_issue15_item2_late_gateway_success_of_a_cancelled_order_refunded_once_passes() -> None:
    report = world(in_flight())  # o-late-callback: CANCELLED, its late payment refunded automatically
    assert report.pay.payments[2].refund_count == 1
    assert _verdicts(report)["orders.refunded_once"] is Verdict.PASS


def _with_refund(entry: ppb.PointsLogEntry, *extra: ppb.PointsLogEntry) -> MeshReport:
    """The coherent world (transactions in flight: every finding here is hard) plus points entries."""
    report = world(in_flight())
    report.points.entries.extend((*extra, entry))
    return report


def test_issue15_item3_admin_refund_of_an_order_spending_fails() -> None:
    # The fuzzer's drift: Points.Refund with a fresh out_trade_no gave back o-paid-points' payment.
    report = _with_refund(_refund("fresh-1", 200, ("deduct", "o-paid-points")))
    assert _only_failing(report) == {
        "points.refunds_tied": (
            "points refund fresh-1 (200): refunds order o-paid-points's deduct o-paid-points "
            "outside its cancel chain",
        )
    }


def test_issue15_item3_points_refund_not_tied_to_a_spending_fails() -> None:
    cases = {
        "points refund fix-2 (5): spending deduct ghost not found": _refund("fix-2", 5, ("deduct", "ghost")),
        "points refund fix-3 (5): spending deduct o-abandoned cancelled": _refund(
            "fix-3", 5, ("deduct", "o-abandoned")
        ),
    }
    for message, entry in cases.items():
        assert _only_failing(_with_refund(entry)) == {"points.refunds_tied": (message,)}


def test_issue15_item3_order_refund_naming_another_spending_fails() -> None:
    bonus = _entry("deduct", "bonus-1", 100, "confirmed")
    report = world(in_flight())
    report.points.entries[2].spending_out_trade_no = "bonus-1"  # o-refunded-points:payment
    report.points.entries.append(bonus)
    assert _only_failing(report) == {
        "points.refunds_tied": (
            "points refund o-refunded-points:payment (100): order o-refunded-points's refund names "
            "deduct bonus-1, not deduct o-refunded-points",
        )
    }


def test_issue15_item3_points_refunds_over_the_spending_fail() -> None:
    report = world(in_flight())
    report.points.entries[4].amount = 60  # o-refunded-points:discount gives back 60 of a freeze of 50
    assert _only_failing(report) == {
        "points.refunds_tied": ("spending freeze g-o-refunded-points: took 50, refunds give back 60",)
    }


def test_issue15_item3_points_refund_to_another_user_fails() -> None:
    report = world(in_flight())
    report.points.entries[4].user_id = "mallory"
    assert _only_failing(report) == {
        "points.refunds_tied": (
            "points refund o-refunded-points:discount (50): to mallory, spending freeze g-o-refunded-points "
            "was alice's",
        )
    }


def test_issue15_item3_refund_of_a_non_order_spending_passes() -> None:
    report = _with_refund(
        _refund("fix-1", 40, ("deduct", "bonus-1")), _entry("deduct", "bonus-1", 100, "confirmed")
    )
    found = _by_key(report)["points.refunds_tied"]
    assert found.verdict is Verdict.PASS
    assert found.numbers == {"refunds": 3, "spendings_refunded": 3}


def _voided_by_pay(order_id: str, amount: int) -> paypb.PaymentAuditRow:
    """A gateway payment the order never recorded, succeeded late and refunded by pay_svc itself."""
    return replace_payment_id(_payment(order_id, amount, refunds=1), f"pay-orphan-{order_id}")


def replace_payment_id(row: paypb.PaymentAuditRow, payment_id: str) -> paypb.PaymentAuditRow:
    """``row`` with another payment id."""
    copy = paypb.PaymentAuditRow()
    copy.CopyFrom(row)
    copy.payment_id = payment_id
    return copy


def test_issue15_item1_orphan_payment_paid_after_points_won_and_refunded_by_pay_passes() -> None:
    report = world()
    # Pay EXTERNAL created a payment, a concurrent Pay POINTS won the order row (TryMarkPaid), the
    # orphan was paid at the gateway later and pay_svc refunded it: a healthy mesh.
    report.pay.payments.append(_voided_by_pay("o-paid-points", 200))
    assert _verdicts(report)["orders.paid_once"] is Verdict.PASS
    assert _verdicts(report)["orders.refunded_once"] is Verdict.PASS
    assert _only_failing(report) == {}


def test_issue15_item1_late_success_after_a_voided_failed_attempt_then_cancel_passes() -> None:
    report = world()
    # The gateway FAILED the order's attempt (voided), the order was paid by points and cancelled, then
    # the gateway reported the old attempt SUCCEEDED and pay_svc refunded it on its own.
    report.pay.payments.append(_voided_by_pay("o-refunded-points", 100))
    assert _verdicts(report)["orders.refunded_once"] is Verdict.PASS
    assert _only_failing(report) == {}


def test_issue15_item1_unrecorded_payment_kept_still_fails() -> None:
    report = world(in_flight())
    kept = replace_payment_id(_payment("o-paid-points", 200), "pay-orphan-o-paid-points")
    report.pay.payments.append(kept)
    assert _only_failing(report)["orders.paid_once"] == (
        "order o-paid-points (PAID): 2 successful payments (pay-orphan-o-paid-points, points:o-paid-points)",
    )


def test_issue15_item2_refund_from_before_points_0002_is_a_note_not_a_failure() -> None:
    report = _with_refund(_refund("o-old:payment", 5, ("", "")))
    result = _by_key(report)["points.refunds_tied"]
    assert result.verdict is Verdict.PASS
    assert result.note == "1 refund(s) from before migration points_0002 name no spending: o-old:payment"
