"""The flash sale's pure rules: sale and buy validation, window, tickets, entries, quota snapshot, flags."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshkit.errors import FailedPrecondition, InvalidArgument
from meshkit.runtime.clock import ManualClock
from order_svc.flash.flags import SoldOutFlags
from order_svc.flash.queue import QueueNames, job_payload, ticket_of_job
from order_svc.flash.rules import (
    MAX_TICKET_LEN,
    BuyRequest,
    FlashSale,
    FlashState,
    TicketEntry,
    check_buy,
    check_buy_against,
    check_sale,
    check_ticket,
    new_ticket,
    snapshot,
    ticket_of,
)

START = 1_800_000_000_000
END = START + 60_000
SALE = FlashSale("sale-1", "sku-1", "m-1", 99, 10, 1, START, END)
BUY = BuyRequest("req-1", "u-1", "sale-1", "sku-1", 1)


def sale_field(**changes: object) -> str:
    with pytest.raises(InvalidArgument) as info:
        check_sale(replace(SALE, **changes))  # type: ignore[arg-type]
    return info.value.field


def buy_field(**changes: object) -> str:
    with pytest.raises(InvalidArgument) as info:
        check_buy(replace(BUY, **changes))  # type: ignore[arg-type]
    return info.value.field


# ---------------------------------------------------------------- sales


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sale_id": ""}, "sale_id"),
        ({"sale_id": "has space"}, "sale_id"),
        ({"sale_id": "x" * 65}, "sale_id"),
        ({"sale_id": "brace{tag}"}, "sale_id"),
        ({"sku": ""}, "sku"),
        ({"merchant_id": "a b"}, "merchant_id"),
        ({"price_cents": -1}, "price_cents"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1_000_001}, "quantity"),
        ({"starts_at_ms": 0}, "starts_at"),
        ({"ends_at_ms": 0}, "ends_at"),
        ({"ends_at_ms": START}, "ends_at"),
        ({"per_user_limit": -1}, "per_user_limit"),
        ({"per_user_limit": 10_001}, "per_user_limit"),
    ],
)
def test_bad_sale_names_the_field(changes: dict[str, object], field: str) -> None:
    assert sale_field(**changes) == field


def test_sale_per_user_limit_zero_means_one() -> None:
    assert check_sale(replace(SALE, per_user_limit=0)).per_user_limit == 1
    assert check_sale(replace(SALE, per_user_limit=3)).per_user_limit == 3


def test_sale_differences_name_the_request_fields() -> None:
    other = replace(SALE, price_cents=1, ends_at_ms=END + 1, created_at_ms=5)
    assert SALE.differences(other) == ["price_cents", "ends_at"]
    assert SALE.differences(replace(SALE, created_at_ms=5)) == []


def test_window_is_start_inclusive_end_exclusive_and_named_in_the_refusal() -> None:
    SALE.check_open(START)
    SALE.check_open(END - 1)
    with pytest.raises(FailedPrecondition, match=r"has not started: window \[2027-01-15T08:00:00.000Z, "):
        SALE.check_open(START - 1)
    with pytest.raises(FailedPrecondition, match=r"has ended: window \[.*, 2027-01-15T08:01:00.000Z\)"):
        SALE.check_open(END)


# ---------------------------------------------------------------- buying


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"request_id": ""}, "request_id"),
        ({"request_id": "r" * 129}, "request_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u\t1"}, "user_id"),
        ({"sale_id": ""}, "sale_id"),
        ({"sale_id": "s/1"}, "sale_id"),
        ({"sku": ""}, "sku"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": 10_001}, "quantity"),
    ],
)
def test_bad_buy_names_the_field(changes: dict[str, object], field: str) -> None:
    assert buy_field(**changes) == field


def test_buy_quantity_zero_means_one() -> None:
    assert check_buy(replace(BUY, quantity=0)).quantity == 1


def test_buy_must_match_the_sale() -> None:
    with pytest.raises(InvalidArgument) as info:
        check_buy_against(replace(BUY, sku="sku-2"), SALE)
    assert info.value.field == "sku"
    with pytest.raises(InvalidArgument) as info:
        check_buy_against(replace(BUY, quantity=2), SALE)
    assert info.value.field == "quantity"
    check_buy_against(replace(BUY, quantity=2), replace(SALE, per_user_limit=2))


def test_ticket_is_derived_from_sale_and_request() -> None:
    ticket = ticket_of("sale-1", "req-1")
    assert ticket == ticket_of("sale-1", "req-1")
    assert ticket != ticket_of("sale-2", "req-1")
    assert ticket != ticket_of("sale-1", "req-2")
    assert len(ticket) <= MAX_TICKET_LEN
    assert check_ticket(ticket) == ticket
    with pytest.raises(InvalidArgument, match="ticket"):
        check_ticket("")


def test_ticket_entry_round_trips_even_with_the_separator_in_the_user_id() -> None:
    entry = TicketEntry(held=True, quantity=2, user_id="odd|user")
    assert TicketEntry.parse(entry.encode()) == entry
    assert entry.encode() == "1|2|odd|user"
    assert TicketEntry.parse("0|1|u").held is False
    with pytest.raises(ValueError, match="malformed"):
        TicketEntry.parse("x|1|u")
    assert entry.matches(BuyRequest("r", "odd|user", "s", "k", 2))
    assert not entry.matches(BuyRequest("r", "odd|user", "s", "k", 1))


def test_snapshot_counts_pending_and_succeeded_tickets_not_failed_ones() -> None:
    sale = replace(SALE, per_user_limit=3)
    pending = new_ticket(sale, replace(BUY, user_id="a", quantity=2), "t1", 1)
    succeeded = replace(new_ticket(sale, replace(BUY, user_id="b"), "t2", 1), state=FlashState.SUCCEEDED)
    failed = replace(
        new_ticket(sale, replace(BUY, user_id="c", quantity=3), "t3", 1), state=FlashState.FAILED
    )
    snap = snapshot(sale, [pending, succeeded, failed])
    assert snap.remaining == 10 - 3
    assert snap.users == {"a": 2, "b": 1}
    assert snap.entries == {
        "t1": TicketEntry(True, 2, "a"),
        "t2": TicketEntry(True, 1, "b"),
        "t3": TicketEntry(False, 3, "c"),
    }
    assert failed.give_back_owed and not pending.give_back_owed
    assert new_ticket(sale, BUY, "t4", 7).unit_price_cents == sale.price_cents


# ---------------------------------------------------------------- flags and queue names


def test_sold_out_flag_remembers_tickets_until_cleared_or_expired() -> None:
    clock = ManualClock()
    flags = SoldOutFlags(clock, ttl_seconds=5)
    assert flags.tickets("s") is None
    flags.set("s", ["t1"])
    assert flags.tickets("s") == frozenset({"t1"})
    assert flags.clear("s") is True
    assert flags.clear("s") is False
    flags.set("s", [])
    clock.advance(4.9)
    assert flags.is_set("s")
    clock.advance(0.2)
    assert not flags.is_set("s")


def test_job_payload_and_queue_names() -> None:
    assert ticket_of_job(job_payload("flash-abc")) == "flash-abc"
    for bad in (b"", b"[]", b'{"ticket": 1}', b"\xff"):
        with pytest.raises(ValueError):
            ticket_of_job(bad)
    names = QueueNames("t-1")
    assert (names.stream, names.job_subject, names.restock_subject, names.durable) == (
        "MESH_FLASH_T-1",
        "mesh.flash.t-1.job",
        "mesh.flash.t-1.restocked",
        "order-flash-t-1",
    )
