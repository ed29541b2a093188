"""Epoch milliseconds <-> ``google.protobuf.Timestamp``: the one conversion every servicer uses."""

from __future__ import annotations

from typing import overload

from google.protobuf.timestamp_pb2 import Timestamp


@overload
def timestamp(ms: int) -> Timestamp: ...


@overload
def timestamp(ms: None) -> None: ...


def timestamp(ms: int | None) -> Timestamp | None:
    """Epoch milliseconds as a protobuf Timestamp (None stays None, i.e. the field stays unset)."""
    if ms is None:
        return None
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def timestamp_ms(ts: Timestamp) -> int:
    """A protobuf Timestamp as epoch milliseconds."""
    return int(ts.ToMilliseconds())
