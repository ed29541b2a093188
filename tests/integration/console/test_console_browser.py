"""The console in a real browser against a real stack: log in, find and repair transactions, refusals.

Screenshots of the main pages go to docs/console/ (shown in README).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from tests.integration.console.conftest import SHOTS, Console, Stack, needs_chromium

pytestmark = [pytest.mark.timeout(240), needs_chromium]

UNREACHABLE = "127.0.0.1:1/meshpb.stock.v1.Stock"  # nothing listens on port 1
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NAME = "alice"


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def query(stack: Stack, gid: str) -> pb.Transaction:
    stub = coordinator_pb2_grpc.CoordinatorStub(stack.admin_channel)  # an operator's: admin token only
    reply = await stub.Query(pb.QueryRequest(gid=gid), timeout=10)
    return reply.transaction


async def stuck_saga(stack: Stack, gid: str) -> None:
    """A saga whose step and compensation both call a dead address: it ends up flagged stuck."""
    branch = pb.Branch(
        branch_id="01", action=f"{UNREACHABLE}/Reserve", cancel=f"{UNREACHABLE}/Release", payload=b""
    )
    options = pb.TxOptions(retry_interval_ms=100, retry_limit=2, request_timeout_ms=500)
    await stack.coordinator.Submit(
        pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=[branch], options=options), timeout=10
    )

    async def flagged() -> bool:
        return (await query(stack, gid)).stuck

    await wait_for(flagged, f"{gid} to be flagged stuck")


async def prepared_tcc(stack: Stack, gid: str) -> None:
    """A TCC transaction left PREPARED (no branch registered yet)."""
    await stack.coordinator.Prepare(
        pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=pb.TxOptions(timeout_ms=600_000)), timeout=10
    )


@pytest.fixture
async def page(console: Console, browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) at desktop width."""
    context = await browser.new_context(viewport=DESKTOP, base_url=console.url)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


async def log_in(page: Any, token: str, name: str = NAME) -> None:
    await page.goto("/")
    assert "/login" in page.url
    await page.fill("input[name=name]", name)
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")


async def act(page: Any, action: str, reason: str) -> None:
    await page.fill("textarea[name=reason]", reason)
    await page.check("input[name=confirm]")
    await page.click(f"button[name=action][value={action}]")
    await page.wait_for_load_state()


async def test_wrong_token_is_refused(page: Any, console: Console) -> None:
    await log_in(page, "not-the-admin-token")
    assert "/login" in page.url
    assert await page.locator(".flash.refused").inner_text() == "wrong admin token"
    await page.goto("/stuck")
    assert "/login" in page.url
    assert "not-the-admin-token" not in page.url


async def test_login_shows_the_overview_and_it_updates_live(
    page: Any, console: Console, demo_traffic: None, gid: str
) -> None:
    await log_in(page, console.stack.token)
    assert page.url == f"{console.url}/"
    assert console.stack.token not in page.url
    await page.wait_for_selector("svg.plot")
    assert await page.locator("svg.plot rect").count() > 0  # the demo's transactions, per minute
    succeeded = page.locator("table.counts tr.total td").nth(2)
    assert int(await succeeded.inner_text()) > 0
    prepared = page.locator("table.counts tr.total td").nth(0)
    before = int(await prepared.inner_text())
    await prepared_tcc(console.stack, gid)
    await page.wait_for_function(
        "n => Number(document.querySelector('table.counts tr.total td').innerText) > n", arg=before
    )
    await page.locator(".tiles a.tile", has_text=gid).wait_for()  # the oldest unfinished, linked


async def test_stuck_transaction_is_found_paused_resumed_and_retried(
    page: Any, console: Console, gid: str
) -> None:
    await stuck_saga(console.stack, gid)
    await log_in(page, console.stack.token)
    await page.goto("/stuck")
    row = page.locator("table.txs tr", has_text=gid)
    await row.wait_for()
    assert "flagged stuck" in await row.inner_text()
    await page.screenshot(path=str(SHOTS / "stuck.png"), full_page=True)
    await row.locator(f"a:text-is('{gid}')").click()
    await page.wait_for_url(re.compile(f"/tx/{gid}$"))

    await act(page, "pause", "looking at the stock vendor")
    assert "Pause retries: done" in await page.locator(".flash.ok").inner_text()
    assert (await query(console.stack, gid)).retry_paused
    await act(page, "resume", "vendor answers again")
    assert "Resume retries: done" in await page.locator(".flash.ok").inner_text()
    await act(page, "retry", "try it now")
    assert "Retry now: done" in await page.locator(".flash.ok").inner_text()

    history = page.locator("ol.timeline")
    text = await history.inner_text()
    for entry in (
        "pause: looking at the stock vendor",
        "resume: vendor answers again",
        "retry now: try it now",
    ):
        assert entry in text
    assert f"by {NAME} (console)" in text
    admin = [(e.actor, e.detail) for e in (await query(console.stack, gid)).history if e.kind == "admin"]
    assert (f"{NAME} (console)", "retry now: try it now") in admin
    await page.screenshot(path=str(SHOTS / "detail.png"), full_page=True)


async def test_prepared_transaction_is_aborted(page: Any, console: Console, gid: str) -> None:
    await prepared_tcc(console.stack, gid)
    await log_in(page, console.stack.token)
    await page.goto(f"/tx/{gid}")
    await act(page, "abort", "the initiator crashed for good")
    assert "Force abort: done" in await page.locator(".flash.ok").inner_text()

    async def failed() -> bool:
        return (await query(console.stack, gid)).status == pb.STATUS_FAILED

    await wait_for(failed, f"{gid} to be FAILED")
    await page.locator("#live .badge.s-failed").first.wait_for()  # the page follows without a reload


async def test_refused_action_says_why(page: Any, console: Console, gid: str) -> None:
    await prepared_tcc(console.stack, gid)
    await log_in(page, console.stack.token)
    await page.goto(f"/tx/{gid}")
    await act(page, "fail", "settled by hand")
    assert "now FAILED" in await page.locator(".flash.ok").inner_text()
    await act(page, "retry", "too late")  # a FAILED transaction cannot be retried
    refusal = await page.locator(".flash.refused").inner_text()
    assert refusal.startswith("Retry now refused - refused in the transaction's current state:")
    assert "FAILED" in refusal


async def test_action_without_a_reason_is_refused(page: Any, console: Console, gid: str) -> None:
    await prepared_tcc(console.stack, gid)
    await log_in(page, console.stack.token)
    await page.goto(f"/tx/{gid}")
    await page.check("input[name=confirm]")
    await page.click("button[name=action][value=pause]")  # the browser refuses: reason is required
    assert await page.locator("textarea[name=reason]").evaluate("e => !e.validity.valid")
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    reply = await page.request.post(
        f"/tx/{gid}/act", form={"csrf_token": csrf, "action": "pause", "reason": " ", "confirm": "yes"}
    )
    assert reply.status == 400
    assert "reason is required" in await reply.text()
    assert not (await query(console.stack, gid)).retry_paused


async def test_forged_post_without_csrf_token_is_refused(page: Any, console: Console, gid: str) -> None:
    await prepared_tcc(console.stack, gid)
    await log_in(page, console.stack.token)
    reply = await page.request.post(
        f"/tx/{gid}/act", form={"action": "pause", "reason": "forged", "confirm": "yes"}
    )
    assert reply.status == 403
    assert not (await query(console.stack, gid)).retry_paused


async def test_detail_page_updates_without_reload(page: Any, console: Console, gid: str) -> None:
    await prepared_tcc(console.stack, gid)
    await log_in(page, console.stack.token)
    await page.goto(f"/tx/{gid}")
    await page.locator("#live .badge.s-prepared").first.wait_for()
    await console.stack.admin.PauseRetry(
        pb.AdminActionRequest(gid=gid, reason="from the CLI", actor="bob"), timeout=10
    )
    await page.locator("#live .badge.f-paused").first.wait_for(timeout=15_000)
    assert "pause: from the CLI" in await page.locator("ol.timeline").inner_text()


async def test_transactions_page_filters_by_gid_prefix(
    page: Any, console: Console, demo_traffic: None, gid: str
) -> None:
    await prepared_tcc(console.stack, gid)
    await log_in(page, console.stack.token)
    await page.goto("/transactions")
    await page.fill("input[name=gid]", gid[:-3])
    await page.select_option("select[name=mode]", "tcc")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(re.compile(r"/transactions\?"))
    rows = page.locator("table.txs tbody tr")
    assert await rows.count() == 1
    assert gid in await rows.first.inner_text()
    await page.goto("/transactions")
    await page.screenshot(path=str(SHOTS / "transactions.png"), full_page=True)
    await page.goto("/transactions?status=nonsense")
    assert "status:" in await page.locator(".flash.refused").inner_text()


async def test_audit_page_shows_the_invariants(page: Any, console: Console, demo_traffic: None) -> None:
    await log_in(page, console.stack.token)
    await page.goto("/audit")
    assert await page.locator("section.card h2").count() >= 5
    text = await page.locator("main").inner_text()
    assert "PASS" in text
    assert "paid_orders" in text
    await page.screenshot(path=str(SHOTS / "audit.png"), full_page=True)


async def test_pages_fit_a_phone_width(page: Any, console: Console, gid: str) -> None:
    await stuck_saga(console.stack, gid)
    await page.set_viewport_size(PHONE)
    await log_in(page, console.stack.token)
    await page.goto(f"/tx/{gid}")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    await page.screenshot(path=str(SHOTS / "detail-phone.png"), full_page=True)


async def test_transactions_page_pages_by_cursor_and_copies_whole_gids(
    page: Any, console: Console, demo_traffic: None
) -> None:
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    await log_in(page, console.stack.token)
    await page.goto("/transactions?limit=3")
    first = await page.locator("table.txs tbody .gid a").all_inner_texts()
    assert len(first) == 3
    await page.click("a.next")
    await page.wait_for_url(re.compile(r"cursor="))
    second = await page.locator("table.txs tbody .gid a").all_inner_texts()
    assert second
    assert not set(first) & set(second)
    await page.locator("table.txs tbody button.copy").first.click()
    assert await page.evaluate("navigator.clipboard.readText()") == second[0]


async def test_overview_counts_stuck_and_paused_transactions(page: Any, console: Console, gid: str) -> None:
    await stuck_saga(console.stack, gid)
    await console.stack.admin.PauseRetry(
        pb.AdminActionRequest(gid=gid, reason="waiting for the vendor", actor="bob"), timeout=10
    )
    await log_in(page, console.stack.token)
    tiles = page.locator(".tiles .tile b")
    stuck, paused = int(await tiles.nth(1).inner_text()), int(await tiles.nth(2).inner_text())
    assert stuck >= 1
    assert paused >= 1
    await page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
