"""Two-phase message (MSG) overhead: its two branches through the coordinator vs the same calls directly.

``python -m bench msg_overhead [--seconds S] [--concurrency C]``

Runs on the :mod:`bench.tcc_overhead` mesh (three participant processes on SQLite, a coordinator on
SQLite with NATS off) and uses two of its participants:

* **MSG direct**: ``Action`` on both participants at once (the coordinator calls the branches of a
  message that depend on nothing concurrently), with the metadata the coordinator would send;
* **MSG coordinator**: ``meshkit.tx.initiator.msg`` - ``Prepare`` with both branches, then ``Submit``
  with ``wait_result``, so a message counts once both branches are done.

Neither side runs the initiator's local transaction: the comparison is the delivery alone. The check-back
target (``query_prepared``) is never called here since every message is submitted right away.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench.participant import SERVICE, account_name
from bench.tcc_overhead import (
    BENCH_AUTH,
    CALL_SECONDS,
    Mesh,
    Result,
    Work,
    measure,
    running_mesh,
)
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.initiator import CoordinatorClient, msg
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as pb

BRANCHES = 2


def _payload(n: int) -> bytes:
    return common_pb2.SkuQuantity(sku=account_name(n), quantity=1).SerializeToString()


def msg_direct(mesh: Mesh, pool: ChannelPool) -> Work:
    """Both branch actions at once, with the metadata the coordinator would send."""

    async def one(n: int) -> None:
        gid = uuid.uuid4().hex
        data = _payload(n)
        await asyncio.gather(
            *(
                pool.call(
                    mesh.target(i, "Action"),
                    data,
                    branch_metadata(TxContext(gid, f"{i + 1:02d}", Op.ACTION, TxMode.MSG), ()),
                    CALL_SECONDS,
                )
                for i in range(BRANCHES)
            )
        )

    return one


def msg_coordinated(mesh: Mesh, client: CoordinatorClient) -> Work:
    """The same two branches as a message through the coordinator, counted once both are done."""

    async def one(n: int) -> None:
        data = _payload(n)
        m = msg(
            client, query_prepared=f"{mesh.participants[0]}/{SERVICE}/QueryPrepared", gid=uuid.uuid4().hex
        )
        for i in range(BRANCHES):
            m.add(mesh.target(i, "Action"), data)
        await m.prepare()
        status = await m.submit(wait=True)
        if status != pb.STATUS_SUCCEEDED:
            raise RuntimeError(f"msg {m.gid} ended {status}")

    return one


async def run_phases(mesh: Mesh, seconds: float, concurrency: int) -> list[Result]:
    """MSG direct, then MSG through the coordinator."""
    pool = ChannelPool(auth=BENCH_AUTH)
    client = CoordinatorClient(mesh.coordinator, auth=BENCH_AUTH)
    try:
        return [
            await measure(mesh, "MSG direct", msg_direct(mesh, pool), seconds, concurrency),
            await measure(mesh, "MSG coordinator", msg_coordinated(mesh, client), seconds, concurrency),
        ]
    finally:
        await client.close()
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m bench msg_overhead``."""
    parser = argparse.ArgumentParser(prog="bench msg_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent initiators")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0 and --concurrency >= 1")
    with tempfile.TemporaryDirectory(prefix="bench-msg-") as tmp, running_mesh(Path(tmp), None) as mesh:
        direct, coordinated = asyncio.run(run_phases(mesh, args.seconds, args.concurrency))
    print(f"\nMSG {BRANCHES} branches, SQLite, {args.concurrency} concurrent initiators")
    print(f"{'phase':<18}{'tx':>8}{'tx/s':>9}{'errors':>8}{'coord ms/tx':>13}{'parts ms/tx':>13}")
    for r in (direct, coordinated):
        print(
            f"{r.name:<18}{r.transactions:>8}{r.rate:>9.1f}{r.errors:>8}"
            f"{r.cpu_ms_per_tx(r.coordinator_cpu):>13.2f}{r.cpu_ms_per_tx(r.participants_cpu):>13.2f}"
        )
    print(f"MSG ratio coordinator/direct: {coordinated.rate / direct.rate if direct.rate else 0.0:.2f}")
    return 0 if direct.transactions and coordinated.transactions else 1


if __name__ == "__main__":
    sys.exit(main())
