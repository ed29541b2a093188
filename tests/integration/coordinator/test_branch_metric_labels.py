"""The coordinator's branch-call metrics stay bounded although initiators choose the branch targets.

Real gRPC invoker (the coordinator's), real participant server; no coordinator store is involved.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from coordinator.engine.ports import BranchCall, Outcome
from coordinator.invoker import GrpcBranchInvoker
from meshkit.observability.metrics import MAX_METHODS, OTHER_METHOD, ClientRpcMetrics
from meshkit.tx.context import Op, TxMode
from tests.integration.coordinator.participants import Bank

DISTINCT_TARGETS = 500


def series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def call(target: str, gid: str) -> BranchCall:
    return BranchCall(target, b"", gid, "01", Op.TRY, TxMode.TCC, timeout_ms=5_000)


async def test_500_distinct_branch_targets_produce_a_bounded_number_of_series(bank: Bank, gid: str) -> None:
    registry = CollectorRegistry()
    metrics = ClientRpcMetrics(registry)
    invoker = GrpcBranchInvoker(metrics=metrics)
    address = f"127.0.0.1:{bank.port}"
    try:
        first = await invoker.invoke(call(f"{address}/x.Y/M0", gid))
        assert first.outcome is Outcome.TRANSIENT  # UNIMPLEMENTED on the participant
        one_method = series(registry)
        for i in range(1, DISTINCT_TARGETS):
            await invoker.invoke(call(f"{address}/x.Y/M{i}", gid))
    finally:
        await invoker.close()
    # one set per labelled method plus the shared "other" set, however many methods were called
    assert series(registry) <= (MAX_METHODS + 1) * one_method
    assert len(metrics._methods) == MAX_METHODS
    overflow = {"service": OTHER_METHOD, "method": OTHER_METHOD, "code": "UNIMPLEMENTED"}
    assert (
        registry.get_sample_value("mesh_rpc_client_handled_total", overflow) == DISTINCT_TARGETS - MAX_METHODS
    )
    named = {"service": "x.Y", "method": "M0", "code": "UNIMPLEMENTED"}
    assert registry.get_sample_value("mesh_rpc_client_handled_total", named) == 1.0
