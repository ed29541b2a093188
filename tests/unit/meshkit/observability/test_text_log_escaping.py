"""Text log mode writes one line per record: control characters in the message and fields are escaped.

Review item "forged log lines through order_id in text log mode": a tagged value with a newline used to
start a line of the attacker's choosing.
"""

from __future__ import annotations

import contextvars
import io
import logging

from meshkit.observability.logctx import tag
from meshkit.observability.logging import escape_controls, setup_logging
from meshkit.settings.config import LogSettings

FORGED = "o1]\n2026-12-06 17:00:00,000 ERROR   coordinator FAKE: admin token leaked [x="


def text_lines(emit: object) -> list[str]:
    """Run ``emit()`` (in a copied context) with the process's text handler on a buffer; its lines."""
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging(LogSettings(level="INFO", json=False), out)
    try:
        contextvars.copy_context().run(emit)  # type: ignore[arg-type]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return out.getvalue().splitlines()


def test_forged_log_line_through_a_tagged_field_stays_on_its_line() -> None:
    def emit() -> None:
        tag(order_id=FORGED)
        logging.getLogger("order_svc").info("rpc /meshpb.order.v1.Order/GetOrder NOT_FOUND")

    (line,) = text_lines(emit)
    assert "order_id=o1]\\n2026-12-06 17:00:00,000 ERROR" in line


def test_forged_log_line_through_the_message_or_an_extra_stays_on_its_line() -> None:
    def emit() -> None:
        log = logging.getLogger("order_svc")
        log.info("target %s failed", "a\r\nb\x1b[2Jc\u2028d", extra={"target": "x\ny", "count": 3})

    (line,) = text_lines(emit)
    assert "target a\\r\\nb\\x1b[2Jc\\u2028d failed" in line
    assert line.endswith("target=x\\ny count=3]")


def test_forged_log_line_escaping_keeps_the_traceback_on_its_own_lines() -> None:
    def emit() -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("order_svc").exception("failed\nfor %s", "o1", extra={"order_id": "a\nb"})

    lines = text_lines(emit)
    assert lines[0].endswith("failed\\nfor o1 [order_id=a\\nb]")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: boom"


def test_forged_log_line_escape_controls_leaves_printable_text_alone() -> None:
    text = "ordre n° 42 \\n [gid=x] ünïcode"
    assert escape_controls(text) == text
    assert escape_controls("\t\x00\x7f\x85") == "\\t\\x00\\x7f\\x85"
