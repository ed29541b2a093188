"""Targets, branch-call metadata and W3C traceparent propagation."""

from __future__ import annotations

import re

import pytest

from meshkit.tx.branchcall import branch_metadata, child_traceparent
from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.target import TargetError, parse_target

TRACE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def test_parse_target() -> None:
    target = parse_target("stock.svc:50052/meshpb.stock.v1.Stock/TryReserve")
    assert (target.address, target.method_path) == ("stock.svc:50052", "/meshpb.stock.v1.Stock/TryReserve")
    assert str(target) == "stock.svc:50052/meshpb.stock.v1.Stock/TryReserve"


def test_parse_target_ipv6() -> None:
    assert parse_target("[::1]:9/a.B/C").address == "[::1]:9"


@pytest.mark.parametrize("text", ["", "a:1", "a:1/B", "a:99999/a.B/C", "a b:1/a.B/C"])
def test_parse_target_errors(text: str) -> None:
    with pytest.raises(TargetError):
        parse_target(text)


def test_child_traceparent_continues_the_callers_trace() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = TRACE.fullmatch(child_traceparent(parent, "gid"))
    assert child is not None
    assert child[1] == "0af7651916cd43dd8448eb211c80319c"
    assert child[2] != "b7ad6b7169203331"
    assert child[3] == "01"


def test_child_traceparent_without_parent_is_stable_per_gid() -> None:
    first = TRACE.fullmatch(child_traceparent(None, "gid-1"))
    second = TRACE.fullmatch(child_traceparent("garbage", "gid-1"))
    other = TRACE.fullmatch(child_traceparent(None, "gid-2"))
    assert first and second and other
    assert first[1] == second[1] != other[1]


def test_branch_metadata_carries_context_headers_and_trace() -> None:
    ctx = TxContext("g1", "01", Op.CONFIRM, TxMode.TCC)
    md = dict(branch_metadata(ctx, [("x-tenant", "acme")]))
    assert md["x-mesh-gid"] == "g1"
    assert md["x-mesh-branch"] == "01"
    assert md["x-mesh-op"] == "confirm"
    assert md["x-mesh-mode"] == "tcc"
    assert md["x-tenant"] == "acme"
    assert TRACE.fullmatch(md["traceparent"])
