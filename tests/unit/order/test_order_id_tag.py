"""The order id an Order call tags on its log lines: a well-formed one as is, anything else escaped.

Review item "forged log lines through order_id in text log mode".
"""

from __future__ import annotations

import contextvars

from meshkit.observability.logctx import log_fields
from order_svc.api.servicer import MAX_TAG, tagged

FORGED = "o1]\n2026-12-06 17:00:00,000 ERROR   coordinator FAKE [x="


def tag_of(order_id: str) -> str:
    def run() -> str:
        assert tagged(order_id) == order_id  # the call goes on with the value it was given
        return log_fields.get()["order_id"]

    return contextvars.copy_context().run(run)


def test_forged_log_line_order_id_tag_keeps_a_well_formed_id() -> None:
    assert tag_of("ord-1234") == "ord-1234"


def test_forged_log_line_order_id_tag_escapes_and_clips_a_bad_one() -> None:
    tagged_value = tag_of(FORGED)
    assert tagged_value == ascii(FORGED[:MAX_TAG])
    assert tagged_value.isprintable() and "\n" not in tagged_value
    assert len(tag_of("x" * 1000)) == MAX_TAG + 2  # clipped, plus the quotes
