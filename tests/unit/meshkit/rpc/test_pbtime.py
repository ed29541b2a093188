"""meshkit.rpc.pbtime: epoch ms <-> Timestamp; out-of-range client values named by field (issue 15 item 4)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from meshkit.errors import InvalidArgument
from meshkit.rpc.pbtime import MAX_SECONDS, MIN_SECONDS, duration_ms, timestamp, timestamp_ms


def test_round_trip() -> None:
    assert timestamp_ms(timestamp(1_700_000_000_123)) == 1_700_000_000_123
    assert timestamp(None) is None
    assert timestamp_ms(Timestamp(seconds=MAX_SECONDS, nanos=999_999_999)) == MAX_SECONDS * 1000 + 999
    assert timestamp_ms(Timestamp(seconds=MIN_SECONDS)) == MIN_SECONDS * 1000


@pytest.mark.parametrize(
    ("ts", "field"),
    [
        (Timestamp(seconds=2**63 - 1), "starts_at.seconds"),
        (Timestamp(seconds=-(2**63)), "starts_at.seconds"),
        (Timestamp(seconds=MAX_SECONDS + 1), "starts_at.seconds"),
        (Timestamp(seconds=MIN_SECONDS - 1), "starts_at.seconds"),
        (Timestamp(seconds=0, nanos=-1), "starts_at.nanos"),
        (Timestamp(seconds=0, nanos=1_000_000_000), "starts_at.nanos"),
    ],
)
def test_issue15_item4_an_out_of_range_timestamp_names_the_field(ts: Timestamp, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        timestamp_ms(ts, "starts_at")
    assert info.value.field == field


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (Duration(seconds=2**63 - 1), "older_than.seconds"),
        (Duration(seconds=-(2**63)), "older_than.seconds"),
        (Duration(seconds=1, nanos=-1), "older_than.nanos"),
        (Duration(seconds=0, nanos=1_000_000_000), "older_than.nanos"),
    ],
)
def test_item7_an_out_of_range_duration_names_the_field(value: Duration, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        duration_ms(value, "older_than")
    assert info.value.field == field
    assert duration_ms(Duration(seconds=-2, nanos=-500_000_000), "d") == -2500
