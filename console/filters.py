"""The query parameters of the list pages, parsed and checked: bad input is a :class:`FilterError` (400)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from meshpb.coordinator.v1 import coordinator_pb2 as pb

# ASCII digits only (str.isdigit and \d also take '²' or '٣', which int() refuses or reads) and a bounded
# count of them, so no value overflows a float or an int64 on its way to the Admin request.
DURATION_RE = re.compile(r"\s*(\d{1,12}(?:\.\d{1,6})?)\s*(ms|s|m|h|d)?\s*", re.ASCII)
INT_RE = re.compile(r"\d{1,12}", re.ASCII)
DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_DURATION_MS = 3650 * 86_400_000
GID_PREFIX_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
CURSOR_RE = re.compile(r"[A-Za-z0-9_=\-.:+/]{1,512}")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class FilterError(ValueError):
    """A query parameter is malformed; the message names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_duration_ms(text: str, field: str) -> int:
    """``90``, ``90s``, ``5m``, ``2h``, ``1d``, ``250ms`` in milliseconds."""
    match = DURATION_RE.fullmatch(text)
    if match is None:
        raise FilterError(field, f"{text!r} is not a duration like 90s, 5m, 2h or 1d")
    try:
        value = round(float(match.group(1)) * DURATION_UNITS_MS[match.group(2) or "s"])
    except (ValueError, OverflowError) as exc:  # not reachable through DURATION_RE; a 400 all the same
        raise FilterError(field, "at most ten years") from exc
    if value > MAX_DURATION_MS:
        raise FilterError(field, "at most ten years")
    return value


def _enum(text: str, enum: type[pb.Status] | type[pb.Mode], prefix: str, field: str) -> int:
    name = f"{prefix}{text.strip().upper()}"
    every: list[str] = list(enum.keys())
    known = [k for k in every if not k.endswith("UNSPECIFIED")]
    if name not in known:
        names = ", ".join(k.removeprefix(prefix).lower() for k in known)
        raise FilterError(field, f"{text[:40]!r} is not one of {names}")
    return int(enum.Value(name))


def _int(text: str, field: str, low: int, high: int) -> int:
    problem = FilterError(field, f"must be a whole number in {low}..{high}")
    if INT_RE.fullmatch(text) is None:
        raise problem
    try:
        value = int(text)
    except ValueError as exc:  # not reachable through INT_RE; a 400 all the same
        raise problem from exc
    if not low <= value <= high:
        raise problem
    return value


@dataclass(frozen=True, slots=True)
class TxFilter:
    """The transactions page's filters (empty / zero = any)."""

    status: int = 0
    mode: int = 0
    newer_ms: int = 0  # created within this long ago
    older_ms: int = 0  # created at least this long ago
    gid_prefix: str = ""
    cursor: str = ""
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> TxFilter:
        """From a query string; :class:`FilterError` naming the first bad parameter."""
        status = params.get("status", "").strip()
        mode = params.get("mode", "").strip()
        newer = params.get("newer", "").strip()
        older = params.get("older", "").strip()
        prefix = params.get("gid", "").strip()
        cursor = params.get("cursor", "").strip()
        limit = params.get("limit", "").strip()
        if prefix and not GID_PREFIX_RE.fullmatch(prefix):
            raise FilterError("gid", "a gid prefix is 1..128 of A-Z a-z 0-9 _ . : -")
        if cursor and not CURSOR_RE.fullmatch(cursor):
            raise FilterError("cursor", "not a cursor this console handed out")
        return cls(
            status=_enum(status, pb.Status, "STATUS_", "status") if status else 0,
            mode=_enum(mode, pb.Mode, "MODE_", "mode") if mode else 0,
            newer_ms=parse_duration_ms(newer, "newer") if newer else 0,
            older_ms=parse_duration_ms(older, "older") if older else 0,
            gid_prefix=prefix,
            cursor=cursor,
            limit=_int(limit, "limit", 1, MAX_LIMIT) if limit else DEFAULT_LIMIT,
        )

    def request(self, now_ms: int, cursor: str) -> pb.ListRequest:
        """The Admin ``List`` request of these filters from ``cursor``."""
        request = pb.ListRequest(status=self.status, mode=self.mode, cursor=cursor)  # type: ignore[arg-type]
        if self.newer_ms:
            request.created_after.FromMilliseconds(now_ms - self.newer_ms)
        if self.older_ms:
            request.created_before.FromMilliseconds(now_ms - self.older_ms)
        return request


@dataclass(frozen=True, slots=True)
class StuckFilter:
    """The stuck page's question."""

    older_ms: int = 0
    min_attempts: int = 0

    @classmethod
    def parse(cls, params: Mapping[str, str], default_min_attempts: int) -> StuckFilter:
        """From a query string; :class:`FilterError` naming the bad parameter."""
        older = params.get("older", "").strip()
        attempts = params.get("min_attempts", "").strip()
        return cls(
            older_ms=parse_duration_ms(older, "older") if older else 0,
            min_attempts=_int(attempts, "min_attempts", 0, 1_000_000) if attempts else default_min_attempts,
        )
