"""The console's pure parts: filters, the plot's buckets and bars, how values read."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from console.filters import FilterError, StuckFilter, TxFilter
from console.plot import MINUTE_MS, buckets, plot
from console.present import age, span, why_stuck
from meshpb.coordinator.v1 import coordinator_pb2 as pb

NOW_MS = 1_800_000_000_000


def test_filters_parse_every_field() -> None:
    flt = TxFilter.parse(
        {"status": "Submitted", "mode": "tcc", "newer": "10m", "older": "90", "gid": "order-", "limit": "20"}
    )
    assert (flt.status, flt.mode, flt.newer_ms, flt.older_ms) == (
        pb.STATUS_SUBMITTED,
        pb.MODE_TCC,
        600_000,
        90_000,
    )
    request = flt.request(NOW_MS, "c1")
    assert request.created_after.ToMilliseconds() == NOW_MS - 600_000
    assert request.created_before.ToMilliseconds() == NOW_MS - 90_000
    assert (request.cursor, flt.gid_prefix, flt.limit) == ("c1", "order-", 20)


def test_empty_filters_mean_any() -> None:
    flt = TxFilter.parse({})
    request = flt.request(NOW_MS, "")
    assert (request.status, request.mode, request.HasField("created_after")) == (0, 0, False)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "unspecified"}, "status"), ({"newer": "11y"}, "newer"), ({"limit": "501"}, "limit")],
)
def test_bad_filters_name_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(FilterError) as caught:
        TxFilter.parse(params)
    assert caught.value.field == field


def test_stuck_filter_defaults_to_the_configured_attempts() -> None:
    assert StuckFilter.parse({}, 5) == StuckFilter(0, 5)
    assert StuckFilter.parse({"older": "5m", "min_attempts": "0"}, 5) == StuckFilter(300_000, 0)


def test_buckets_count_per_minute_and_drop_what_is_outside() -> None:
    this_minute = NOW_MS // MINUTE_MS * MINUTE_MS
    stamps = [this_minute, this_minute + 1, this_minute - 1, this_minute - 3 * MINUTE_MS, NOW_MS + MINUTE_MS]
    assert buckets(stamps, NOW_MS, 3) == [0, 1, 2]


def test_plot_scales_bars_to_the_peak() -> None:
    drawn = plot([0, 4], [2, 0])
    heights = {(b.kind, b.label): b.height for b in drawn.bars}
    assert drawn.peak == 4
    assert heights[("ok", "this minute")] == 2 * heights[("failed", "1 min ago")]
    assert heights[("ok", "1 min ago")] == 0
    assert (drawn.succeeded, drawn.failed) == (4, 2)


def test_spans_and_ages_read_naturally() -> None:
    assert [span(250), span(4200), span(185_000), span(3_720_000)] == ["250ms", "4.2s", "3m 05s", "1h 02m"]
    stamp = Timestamp()
    assert age(stamp, NOW_MS) == "-"
    stamp.FromMilliseconds(NOW_MS - 5000)
    assert age(stamp, NOW_MS) == "5.0s ago"
    stamp.FromMilliseconds(NOW_MS + 2000)
    assert age(stamp, NOW_MS) == "in 2.0s"


def test_why_stuck_names_the_failing_op_and_its_error() -> None:
    tx = pb.Transaction(
        gid="g",
        status=pb.STATUS_ABORTING,
        stuck=True,
        retry_paused=True,
        ops=[
            pb.BranchOp(
                branch_id="01", op="compensate", status="pending", attempts=7, last_error="UNAVAILABLE"
            )
        ],
    )
    text = why_stuck(tx, NOW_MS)
    assert "flagged stuck" in text
    assert "paused" in text
    assert "compensate of branch 01 failed 7x (last error: UNAVAILABLE)" in text
