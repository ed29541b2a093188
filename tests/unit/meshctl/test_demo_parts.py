"""The demo's building blocks without a stack: polling with a deadline, the narrator's record and output."""

from __future__ import annotations

from rich.console import Console

from meshctl.demo.narrate import Narrator, money, order_json, tx_json
from meshctl.demo.wait import WaitTimeout, wait_for
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb


class SteppingClock:
    """A clock whose sleep moves time forward at once (no real waiting)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps = 0

    def now(self) -> float:
        return 1_800_000_000.0 + self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.t += seconds


async def test_wait_for_returns_the_first_value_that_is_done() -> None:
    clock = SteppingClock()
    values = iter(range(100))

    async def fetch() -> int:
        return next(values)

    assert await wait_for(fetch, lambda v: v == 3, what="three", clock=clock, within=10) == 3
    assert clock.sleeps == 3


async def test_wait_for_gives_up_at_the_deadline_saying_what_it_saw() -> None:
    clock = SteppingClock()

    async def fetch() -> str:
        return "CREATED"

    try:
        await wait_for(
            fetch,
            lambda v: v == "PAID",
            what="order to be PAID",
            clock=clock,
            within=2,
            describe=str,
            interval=0.5,
        )
    except WaitTimeout as exc:
        assert str(exc) == "order to be PAID: not reached within 2 s (last seen: CREATED)"
    else:
        raise AssertionError("no timeout")
    assert clock.t == 2.0


def _order() -> opb.OrderInfo:
    return opb.OrderInfo(
        order_id="o1",
        user_id="alice",
        merchant_id="m-teahouse",
        status=opb.ORDER_STATUS_PAID,
        total_cents=2400,
        points_used=400,
        items=[opb.OrderItem(sku="sencha", merchant_id="m-teahouse", quantity=2, unit_price_cents=1200)],
        gid="g1",
    )


def _tx() -> cpb.Transaction:
    return cpb.Transaction(
        gid="g1",
        mode=cpb.MODE_TCC,
        status=cpb.STATUS_SUCCEEDED,
        ops=[
            cpb.BranchOp(branch_id="stock", op="try", status="succeeded", attempts=1),
            cpb.BranchOp(branch_id="stock", op="confirm", status="succeeded", attempts=2),
            cpb.BranchOp(
                branch_id="points", op="try", status="failed", attempts=1, last_error="ABORTED: short"
            ),
        ],
    )


def test_money_formats_cents() -> None:
    assert [money(0), money(5), money(1250), money(-99)] == ["0.00", "0.05", "12.50", "-0.99"]


def test_order_and_transaction_facts() -> None:
    assert order_json(_order())["amount_due_cents"] == 2000
    assert order_json(_order())["status"] == "PAID"
    facts = tx_json(_tx())
    assert (facts["mode"], facts["status"]) == ("TCC", "SUCCEEDED")
    assert facts["ops"][1] == {
        "branch": "stock",
        "op": "confirm",
        "status": "succeeded",
        "attempts": 2,
        "last_error": "",
    }


def test_narrator_records_steps_and_a_false_check_fails_only_its_step() -> None:
    console = Console(record=True, width=140)
    narrator = Narrator(console, as_json=False)
    narrator.begin("Seed", "put stock")
    narrator.check("stock is there", True)
    narrator.begin("Pay", "pay it")
    narrator.orders("after Pay", [_order()])
    narrator.transactions("the coordinator's view", [_tx()])
    narrator.check("order is PAID", False, "it is CREATED")
    assert [(s.number, s.title, s.ok) for s in narrator.steps] == [(1, "Seed", True), (2, "Pay", False)]
    assert not narrator.ok
    text = console.export_text()
    assert "2. Pay" in text
    assert "✗ order is PAID (it is CREATED)" in text
    assert "confirm ✓x2" in text
    assert "m-teahouse" in text
    kinds = [e["kind"] for e in narrator.steps[1].to_json()["events"]]
    assert kinds == ["blurb", "orders", "transactions", "check"]


def test_json_narrator_prints_nothing() -> None:
    console = Console(record=True)
    narrator = Narrator(console, as_json=True)
    narrator.begin("Seed", "put stock")
    narrator.say("[bold]hello[/bold]", answer=42)
    narrator.fail("boom")
    assert console.export_text() == ""
    events = narrator.steps[0].to_json()["events"]
    assert events[1] == {"kind": "say", "text": "hello", "answer": 42}
    assert events[2] == {"kind": "error", "error": "boom"}
    assert not narrator.ok
