"""Epoch milliseconds <-> ``google.protobuf.Timestamp``: the one conversion every servicer uses.

Reading a client's Timestamp or Duration checks its range (a Timestamp within years 1..9999, nanos
0..999,999,999; a Duration within +-10,000 years), so an out-of-range value is ``INVALID_ARGUMENT``
naming the field rather than a ``ValueError`` (``INTERNAL``) or an integer no column can hold.
"""

from __future__ import annotations

from typing import overload

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from meshkit.errors import InvalidArgument

MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years
MAX_NANOS = 999_999_999


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


def timestamp_ms(ts: Timestamp, field: str = "timestamp") -> int:
    """A protobuf Timestamp as epoch milliseconds; :class:`InvalidArgument` naming ``field`` when invalid."""
    if not MIN_SECONDS <= ts.seconds <= MAX_SECONDS:
        raise InvalidArgument(f"{field}.seconds", f"must be within {MIN_SECONDS}..{MAX_SECONDS}")
    if not 0 <= ts.nanos <= MAX_NANOS:
        raise InvalidArgument(f"{field}.nanos", f"must be within 0..{MAX_NANOS}")
    return int(ts.ToMilliseconds())


def duration_ms(value: Duration, field: str = "duration") -> int:
    """A protobuf Duration as milliseconds; :class:`InvalidArgument` naming ``field`` when invalid."""
    if not -MAX_DURATION_SECONDS <= value.seconds <= MAX_DURATION_SECONDS:
        raise InvalidArgument(f"{field}.seconds", f"must be within +-{MAX_DURATION_SECONDS}")
    if not -MAX_NANOS <= value.nanos <= MAX_NANOS or value.seconds * value.nanos < 0:
        raise InvalidArgument(f"{field}.nanos", f"must be within +-{MAX_NANOS}, with the sign of seconds")
    return int(value.ToMilliseconds())
