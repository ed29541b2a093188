"""Two coordinator replicas (processes) on one MariaDB finishing many transactions.

Every branch op must be applied exactly once (the barrier's job, checked through the participant's
ledger), no transaction may be left unfinished, and the calls each op received are counted: calls
beyond one are retries (injected failures) or a second replica driving the same op after a lease
lapsed; the counts are reported in the test output (``-s``) and as junit properties.
Set ``MESH_TEST_REPLICA_TXS`` (default 200) to run more, e.g. the issue's 1000.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import grpc
import pytest

from meshkit.infra.db import create_engine
from meshkit.settings.config import DbSettings
from meshkit.tx.initiator import CoordinatorClient, saga, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import FINAL, wait_for
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.coordinator.process import CoordinatorProcess
from tests.integration.creds import AUTH

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(600)]

TRANSACTIONS = int(os.environ.get("MESH_TEST_REPLICA_TXS", "200"))
CONCURRENCY = 16


async def run_tcc(client: CoordinatorClient, bank: Bank, gid: str) -> None:
    async with tcc(client, gid=gid) as t:
        for name in ("a", "b"):
            await t.call_branch(
                bank.target("Try"), bank.target("Confirm"), bank.target("Cancel"), payload(name, 1)
            )


async def run_saga(client: CoordinatorClient, bank: Bank, gid: str) -> None:
    built = saga(client, gid=gid, retry_interval_ms=50)
    for name in ("a", "b", "c"):
        built.add(bank.target("Action"), bank.target("Compensate"), payload(name, 1))
    await built.submit()


def expected_ops(kind: str, gid: str, fails: bool) -> Counter[tuple[str, str, str]]:
    if kind == "tcc":
        return Counter({(gid, b, op): 1 for b in ("01", "02") for op in ("try", "confirm")})
    if fails:  # step 03 fails before its barrier row: steps 01 and 02 are compensated
        return Counter({(gid, b, op): 1 for b in ("01", "02") for op in ("action", "compensate")})
    return Counter({(gid, b, "action"): 1 for b in ("01", "02", "03")})


async def test_two_replicas_finish_everything_exactly_once(
    mysql_url: str, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    db = create_engine(DbSettings(url=mysql_url))
    bank = await Bank(db).start()
    replicas = [
        CoordinatorProcess(mysql_url, tmp_path / f"replica{i}.log", replica=f"r{i}", lease_seconds=1.0)
        for i in (1, 2)
    ]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        clients = [CoordinatorClient(r.address, auth=AUTH) for r in replicas]
        plan: dict[str, tuple[str, bool]] = {}
        for i in range(TRANSACTIONS):
            gid = f"rep-{i:05d}"
            kind = "tcc" if i % 2 == 0 else "saga"
            fails = kind == "saga" and i % 10 == 1
            plan[gid] = (kind, fails)
            if i % 5 == 0:  # a transient failure: the retry may be taken by either replica
                bank.fail(
                    "Confirm" if kind == "tcc" else "Action",
                    grpc.StatusCode.UNAVAILABLE,
                    gid=gid,
                    branch="02",
                )
            if fails:
                bank.fail("Action", grpc.StatusCode.ABORTED, gid=gid, branch="03")
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int, gid: str) -> None:
            kind, _ = plan[gid]
            async with slots:
                client = clients[i % 2]
                await (run_tcc(client, bank, gid) if kind == "tcc" else run_saga(client, bank, gid))

        await asyncio.gather(*(one(i, gid) for i, gid in enumerate(plan)))

        async def all_final() -> bool:
            statuses = []
            for gid in plan:
                tx = (await clients[0].stub.Query(pb.QueryRequest(gid=gid))).transaction
                if tx.status not in FINAL:
                    return False
                statuses.append(tx.status)
            return True

        await wait_for(all_final, within=240, interval=0.5, what="every transaction to finish")
        applied = await bank.applied()
        for gid, (kind, fails) in plan.items():
            mine = Counter({k: n for k, n in applied.items() if k[0] == gid})
            assert mine == expected_ops(kind, gid, fails), gid
        statuses, finished_by, report = await summarize(clients[0], bank, plan)
        print(report)
        record_property("replica_report", report)
        assert statuses["STATUS_SUCCEEDED"] + statuses["STATUS_FAILED"] == TRANSACTIONS
        assert len(finished_by) == 2, f"both replicas should have finished some transactions: {finished_by}"
        for client in clients:
            await client.close()
    finally:
        for r in replicas:
            r.stop()
        await bank.stop()
        await db.dispose()


async def summarize(
    client: CoordinatorClient, bank: Bank, plan: dict[str, tuple[str, bool]]
) -> tuple[Counter[str], Counter[str], str]:
    """Final statuses, which replica finished each transaction, and the call-count report."""
    finished_by: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for gid in plan:
        tx = (await client.stub.Query(pb.QueryRequest(gid=gid))).transaction
        statuses[pb.Status.Name(tx.status)] += 1
        last = [e for e in tx.history if e.kind == "state"][-1]
        finished_by[last.actor] += 1
    coordinator_calls = {k: n for k, n in bank.calls.items() if k[0] in plan and k[2] != "try"}
    extra = sum(n - 1 for n in coordinator_calls.values() if n > 1)
    duplicates = {k: n for k, n in coordinator_calls.items() if n > 1 and k[1] != "02"}
    causes: Counter[str] = Counter()
    for gid, branch, op in duplicates:
        tx = (await client.stub.Query(pb.QueryRequest(gid=gid))).transaction
        attempts = next((o.attempts for o in tx.ops if o.branch_id == branch and o.op == op), 0)
        failures = [e.detail for e in tx.history if e.branch_id == branch and e.op == op]
        causes[f"{attempts} attempts recorded, {len(failures)} failure events"] += 1
    report = (
        f"{len(plan)} transactions on 2 replicas: {dict(statuses)}; finished by {dict(finished_by)}; "
        f"{sum(coordinator_calls.values())} coordinator branch calls for {len(coordinator_calls)} ops, "
        f"{extra} extra (retries), {len(duplicates)} ops called twice without an injected failure "
        f"{dict(Counter(op for _, _, op in duplicates))}, coordinator's view {dict(causes)}; "
        "applied twice: 0"
    )
    return statuses, finished_by, report
