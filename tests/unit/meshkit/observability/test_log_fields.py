"""Log fields: bound fields, the trace id and the per-key line limiter, on real records and JSON lines."""

from __future__ import annotations

import io
import json
import logging

from meshkit.observability.logctx import bound, continuing, trace_id_of
from meshkit.observability.logging import setup_logging
from meshkit.observability.ratelimit import LogLimiter
from meshkit.runtime.clock import ManualClock
from meshkit.settings.config import LogSettings
from meshkit.tx.context import Op, TxContext, TxMode, current_tx, read_metadata

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def json_lines(emit: object) -> list[dict[str, object]]:
    """Run ``emit()`` with the process's JSON handler on a buffer; the lines it wrote."""
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging(LogSettings(level="INFO", json=True), out)
    try:
        emit()  # type: ignore[operator]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_bound_fields_and_the_trace_id_are_on_every_json_line(gid: str) -> None:
    log = logging.getLogger("test.fields")

    def emit() -> None:
        with continuing(TRACEPARENT), bound(gid=gid, order_id="o-1"):
            log.info("inside")
            with bound(branch="stock"):
                log.info("nested")
        log.info("outside")

    inside, nested, outside = json_lines(emit)
    assert (inside["gid"], inside["order_id"], inside["trace_id"]) == (gid, "o-1", TRACE)
    assert (nested["gid"], nested["branch"], nested["order_id"]) == (gid, "stock", "o-1")
    assert "gid" not in outside and "trace_id" not in outside and "order_id" not in outside


def test_an_explicit_extra_wins_over_bound_and_tx_context_fields(gid: str) -> None:
    log = logging.getLogger("test.fields")

    def emit() -> None:
        token = current_tx.set(TxContext(gid, "01", Op.TRY, TxMode.TCC))
        try:
            with bound(order_id="bound"):
                log.info("line", extra={"order_id": "explicit"})
        finally:
            current_tx.reset(token)

    (line,) = json_lines(emit)
    assert (line["gid"], line["branch"], line["op"], line["order_id"]) == (gid, "01", "try", "explicit")


def test_read_metadata_keeps_a_well_formed_traceparent_only(gid: str) -> None:
    ctx, parent = read_metadata(
        (
            ("x-mesh-gid", gid),
            ("x-mesh-branch", "01"),
            ("x-mesh-op", "try"),
            ("x-mesh-mode", "tcc"),
            ("traceparent", TRACEPARENT),
        )
    )
    assert ctx is not None and ctx.gid == gid
    assert parent == TRACEPARENT
    assert read_metadata((("traceparent", "00-zz-bad-01"),)) == (None, "")
    assert trace_id_of(parent) == TRACE
    assert trace_id_of("") == ""


def test_log_limiter_lets_one_line_per_key_per_interval_and_counts_the_rest() -> None:
    clock = ManualClock()
    limiter = LogLimiter(clock, 10.0)
    assert limiter.allow("a") == 0
    clock.advance(4.0)
    assert limiter.allow("a") is None
    assert limiter.allow("b") == 0  # another key has its own budget
    clock.advance(5.9)
    assert limiter.allow("a") is None
    clock.advance(0.1)
    assert limiter.allow("a") == 2  # the two held back since the last line
    assert limiter.allow("a") is None


def test_log_limiter_forgets_the_least_recent_key_beyond_its_bound() -> None:
    clock = ManualClock()
    limiter = LogLimiter(clock, 10.0, max_keys=2)
    assert limiter.allow("a") == 0
    assert limiter.allow("b") == 0
    assert limiter.allow("c") == 0  # "a" forgotten
    assert limiter.allow("a") == 0
    assert limiter.allow("c") is None
