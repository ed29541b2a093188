"""How ``meshctl demo`` tells its story: readable rich output, or one JSON document with the same facts.

Every fact goes through a :class:`Narrator`, which records it in the current step (for ``--json``) and,
unless JSON was asked for, prints it right away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from meshctl.audit.checks import order_status_name
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from meshpb.points.v1 import points_pb2 as ppb
from meshpb.stock.v1 import stock_pb2 as spb

OP_MARK = {"succeeded": "[green]✓[/green]", "failed": "[red]✗[/red]", "pending": "[yellow]…[/yellow]"}
STATUS_STYLE = {
    "PAID": "green",
    "COMPLETED": "green",
    "SUCCEEDED": "green",
    "CREATED": "cyan",
    "PENDING": "cyan",
    "CANCELLED": "yellow",
    "REFUNDING": "yellow",
    "REFUNDED": "magenta",
    "FAILED": "red",
    "ABORTING": "red",
}


def money(cents: int) -> str:
    """``12.50`` for 1250 cents."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def styled(status: str) -> str:
    """A status name in its colour (rich markup)."""
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def order_json(order: opb.OrderInfo) -> dict[str, Any]:
    """The facts of an order the demo shows."""
    return {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "merchant_id": order.merchant_id,
        "status": order_status_name(order.status),
        "total_cents": order.total_cents,
        "points_used": order.points_used,
        "amount_due_cents": order.total_cents - order.points_used,
        "items": [{"sku": i.sku, "quantity": i.quantity} for i in order.items],
        "payment_id": order.payment_id,
        "gid": order.gid,
    }


def tx_json(tx: cpb.Transaction) -> dict[str, Any]:
    """The coordinator's view of one transaction: gid, mode, status and every branch op."""
    return {
        "gid": tx.gid,
        "mode": cpb.Mode.Name(tx.mode).removeprefix("MODE_"),
        "status": cpb.Status.Name(tx.status).removeprefix("STATUS_"),
        "reason": tx.reason,
        "ops": [
            {
                "branch": op.branch_id,
                "op": op.op,
                "status": op.status,
                "attempts": op.attempts,
                "last_error": op.last_error,
            }
            for op in tx.ops
        ],
    }


def stock_json(level: spb.StockLevel) -> dict[str, Any]:
    """One SKU's stock."""
    return {"sku": level.sku, "available": level.available, "reserved": level.reserved, "sold": level.sold}


def payment_json(payment: paypb.Payment) -> dict[str, Any]:
    """One payment."""
    return {
        "payment_id": payment.payment_id,
        "order_id": payment.order_id,
        "amount_cents": payment.amount_cents,
        "status": paypb.PaymentStatus.Name(payment.status).removeprefix("PAYMENT_STATUS_"),
        "refund_id": payment.refund_id,
    }


@dataclass
class StepLog:
    """What happened in one step of the story."""

    number: int
    title: str
    ok: bool = True
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The step for ``--json``."""
        return {"step": self.number, "title": self.title, "ok": self.ok, "events": self.events}


class Narrator:
    """Records the story step by step; prints it too unless JSON was asked for."""

    def __init__(self, console: Console, *, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json
        self.steps: list[StepLog] = []

    @property
    def current(self) -> StepLog:
        """The step being told (a step 0 "setup" is opened implicitly)."""
        if not self.steps:
            self.steps.append(StepLog(0, "setup"))
        return self.steps[-1]

    @property
    def ok(self) -> bool:
        """True while no step failed."""
        return all(s.ok for s in self.steps)

    def _print(self, *renderables: Any) -> None:
        if not self.as_json:
            self.console.print(*renderables)

    def begin(self, title: str, blurb: str) -> StepLog:
        """Open the next step: a heading and what it shows."""
        step = StepLog(sum(1 for s in self.steps if s.number > 0) + 1, title)
        self.steps.append(step)
        step.events.append({"kind": "blurb", "text": blurb})
        self._print(
            Text(""), Panel(Text(blurb), title=f"[bold]{step.number}. {escape(title)}[/bold]", expand=True)
        )
        return step

    def say(self, text: str, **facts: Any) -> None:
        """A line of the story (rich markup allowed) and the facts behind it."""
        self.current.events.append({"kind": "say", "text": Text.from_markup(text).plain, **facts})
        self._print(f"  {text}")

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        """An expectation of the story; a false one fails the step. Returns ``ok``."""
        self.current.events.append({"kind": "check", "label": label, "ok": ok, "detail": detail})
        if not ok:
            self.current.ok = False
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        suffix = f" [dim]({escape(detail)})[/dim]" if detail else ""
        self._print(f"  {mark} {escape(label)}{suffix}")
        return ok

    def fail(self, error: str) -> None:
        """The step could not go on."""
        self.current.ok = False
        self.current.events.append({"kind": "error", "error": error})
        self._print(f"  [bold red]step failed:[/bold red] {escape(error)}")

    def orders(self, caption: str, orders: Sequence[opb.OrderInfo]) -> None:
        """A table of orders with their state and money."""
        self.current.events.append(
            {"kind": "orders", "caption": caption, "orders": [order_json(o) for o in orders]}
        )
        table = _table(caption)
        table.add_column("order", no_wrap=True)
        table.add_column("merchant: items", overflow="fold")
        for column in ("total", "points", "due"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for order in orders:
            items = ", ".join(f"{i.quantity}x {i.sku}" for i in order.items)
            table.add_row(
                order.order_id,
                f"{escape(order.merchant_id)}: {escape(items)}",
                money(order.total_cents),
                str(order.points_used),
                money(order.total_cents - order.points_used),
                styled(order_status_name(order.status)),
            )
        self._print(table)

    def stock(self, caption: str, levels: Sequence[spb.StockLevel]) -> None:
        """A table of SKU stock levels."""
        self.current.events.append(
            {"kind": "stock", "caption": caption, "stock": [stock_json(s) for s in levels]}
        )
        table = _table(caption)
        table.add_column("sku", no_wrap=True)
        for column in ("available", "reserved", "sold"):
            table.add_column(column, justify="right")
        for level in levels:
            table.add_row(level.sku, str(level.available), str(level.reserved), str(level.sold))
        self._print(table)

    def account(self, caption: str, account: ppb.Account) -> None:
        """A points account."""
        self.current.events.append(
            {
                "kind": "account",
                "caption": caption,
                "user_id": account.user_id,
                "balance": account.balance,
                "frozen": account.frozen,
            }
        )
        self._print(
            f"  {escape(caption)}: [bold]{account.user_id}[/bold] balance {account.balance} points, "
            f"frozen {account.frozen}"
        )

    def payment(self, caption: str, payment: paypb.Payment) -> None:
        """A pay_svc payment."""
        facts = payment_json(payment)
        self.current.events.append({"kind": "payment", "caption": caption, **facts})
        refund = f", refund {payment.refund_id}" if payment.refund_id else ""
        self._print(
            f"  {escape(caption)}: payment {payment.payment_id} {money(payment.amount_cents)} "
            f"{styled(facts['status'])}{escape(refund)}"
        )

    def transactions(self, caption: str, txs: Sequence[cpb.Transaction]) -> None:
        """The coordinator's view: each transaction's gid, mode, status and branch ops."""
        self.current.events.append(
            {"kind": "transactions", "caption": caption, "transactions": [tx_json(t) for t in txs]}
        )
        if not txs:
            self._print(f"  [dim]{escape(caption)}: no transaction[/dim]")
            return
        table = _table(caption, "✓ done  ✗ failed  … pending  xN attempts (skipped ops not shown)")
        table.add_column("transaction (gid)", overflow="fold")
        table.add_column("mode", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("branch", no_wrap=True)
        table.add_column("ops", no_wrap=True)
        for tx in txs:
            facts = tx_json(tx)
            head = (escape(facts["gid"]), facts["mode"], styled(facts["status"]))
            rows = _ops_by_branch(tx) or [("", "")]
            for index, (branch, ops) in enumerate(rows):
                table.add_row(
                    *(head if index == 0 else ("", "", "")),
                    escape(branch),
                    ops,
                    end_section=index == len(rows) - 1,
                )
        self._print(table)


def _table(title: str, caption: str | None = None) -> Table:
    return Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )


OP_RANK = {"try": 0, "action": 0, "msg": 0, "confirm": 1, "compensate": 1, "cancel": 2}


def _ops_by_branch(tx: cpb.Transaction) -> list[tuple[str, str]]:
    """``(branch, "try ✓  confirm ✓")`` per branch, ops in protocol order, skipped ops left out."""
    by_branch: dict[str, list[cpb.BranchOp]] = {}
    for op in tx.ops:
        by_branch.setdefault(op.branch_id, []).append(op)
    rows = []
    for branch, ops in by_branch.items():
        shown = []
        for op in sorted(ops, key=lambda o: OP_RANK.get(o.op, 3)):
            if op.status == "skipped":
                continue
            mark = OP_MARK.get(op.status, f"[dim]{escape(op.status)}[/dim]")
            times = f"x{op.attempts}" if op.attempts > 1 else ""
            shown.append(f"{escape(op.op)} {mark}{times}")
        if shown:  # a branch whose ops were all skipped (e.g. the MSG check-back) says nothing
            rows.append((branch, "  ".join(shown)))
    return rows
