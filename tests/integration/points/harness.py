"""An in-process points_svc for tests: the real runtime behind a real MeshServer on a free port.

Branch calls carry the ``x-mesh-*`` metadata exactly as the coordinator sends it
(:func:`meshkit.tx.branchcall.branch_metadata` of a :class:`TxContext`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest

from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock
from meshkit.settings.config import DbSettings
from meshkit.tx.branchcall import branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.common.v1 import common_pb2
from meshpb.points.v1 import points_pb2, points_pb2_grpc
from points_svc.__main__ import SERVICE_NAME
from points_svc.config import PointsServerSettings, PointsSettings
from points_svc.runtime import PROTECTED, PointsRuntime
from tests.integration.creds import ADMIN, AUTH, trusted_channel

POINTS_BRANCH = "points"  # the branch id order_svc gives the points branch


def points_settings(db_url: str) -> PointsSettings:
    """Settings of a test points_svc on ``db_url``, serving on a free 127.0.0.1 port."""
    return PointsSettings(
        server=PointsServerSettings(host="127.0.0.1", port=0, grace_seconds=0.5),
        db=DbSettings(url=db_url),
        auth=AUTH,
        admin=ADMIN,
    )


def tcc(gid: str, op: Op, branch: str = POINTS_BRANCH) -> TxContext:
    """The context of a TCC branch op."""
    return TxContext(gid=gid, branch_id=branch, op=op, mode=TxMode.TCC)


def msg_action(gid: str, branch: str = "02") -> TxContext:
    """The context of a MSG branch (the coordinator calls MSG branches with op ``action``)."""
    return TxContext(gid=gid, branch_id=branch, op=Op.ACTION, mode=TxMode.MSG)


def refund_request(
    user: str, amount: int, out_trade_no: str, spending: tuple[str, str]
) -> points_pb2.RefundRequest:
    """A RefundRequest giving back ``spending`` (``(out_trade_no, type)`` of a freeze or deduct)."""
    spent_key, spent_type = spending
    return points_pb2.RefundRequest(
        user_id=user,
        amount=amount,
        out_trade_no=out_trade_no,
        spending_out_trade_no=spent_key,
        spending_type=spent_type,
    )


@dataclass
class PointsClient:
    """Typed helpers over a Points stub."""

    stub: Any  # PointsAsyncStub

    async def grant(self, user: str, amount: int, out_trade_no: str) -> points_pb2.Account:
        """Grant points."""
        request = points_pb2.GrantRequest(user_id=user, amount=amount, out_trade_no=out_trade_no)
        account: points_pb2.Account = await self.stub.Grant(request)
        return account

    async def refund(
        self, user: str, amount: int, out_trade_no: str, spending: str, kind: str = "freeze"
    ) -> points_pb2.Account:
        """Refund points of the spending ``kind spending`` (the operator's RPC)."""
        request = refund_request(user, amount, out_trade_no, (spending, kind))
        account: points_pb2.Account = await self.stub.Refund(request)
        return account

    async def account(self, user: str) -> tuple[int, int]:
        """``(balance, frozen)`` of ``user``."""
        account = await self.stub.GetAccount(points_pb2.GetAccountRequest(user_id=user))
        return int(account.balance), int(account.frozen)

    async def branch(
        self,
        method: str,
        ctx: TxContext,
        user: str,
        amount: int,
        out_trade_no: str,
        *,
        spending: tuple[str, str] = ("", ""),
    ) -> str:
        """Call a branch RPC the way the coordinator does; returns the reply's note.

        ``spending`` (``(out_trade_no, type)`` of the spending given back) is for RefundBranch only.
        """
        request: Any
        if method == "RefundBranch":
            request = refund_request(user, amount, out_trade_no, spending)
        else:
            request = points_pb2.PointsBranchRequest(user_id=user, amount=amount, out_trade_no=out_trade_no)
        reply: common_pb2.BranchReply = await getattr(self.stub, method)(
            request, metadata=branch_metadata(ctx)
        )
        return reply.note

    async def audit(self) -> points_pb2.PointsAudit:
        """The audit figures."""
        report: points_pb2.PointsAudit = await self.stub.Audit(common_pb2.AuditRequest())
        return report

    async def balanced(self) -> points_pb2.PointsAudit:
        """The audit, asserting the points invariant (DESIGN.md section 8) and no negative account."""
        report = await self.audit()
        held = report.sum_balance + report.sum_frozen + report.spent - report.refunded
        assert held == report.issued, f"points invariant broken: {report}"
        assert report.negative_accounts == 0, f"negative accounts: {report}"
        return report


@dataclass
class RunningPoints(PointsClient):
    """A started points_svc: runtime, server, a stub on a channel to it, and the client helpers."""

    runtime: PointsRuntime
    server: MeshServer
    channel: grpc.aio.Channel

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.server.port}"

    def target(self, method: str) -> str:
        """The branch target of ``method`` as an initiator hands it to the coordinator."""
        return f"{self.address}/{SERVICE_NAME}/{method}"

    @classmethod
    async def start(cls, settings: PointsSettings, *, clock: Clock | None = None) -> RunningPoints:
        """Start the runtime and its server."""
        runtime = await PointsRuntime.start(settings, clock=clock)
        server = MeshServer(settings, "points_svc", [runtime.register], [SERVICE_NAME], protected=PROTECTED)
        server.add_stop_hook(runtime.stop)
        await server.start()
        channel = trusted_channel(f"127.0.0.1:{server.port}")
        return cls(points_pb2_grpc.PointsStub(channel), runtime, server, channel)

    async def stop(self) -> None:
        """Stop the server (and with it the runtime)."""
        await self.channel.close()
        await self.server.stop(0.5)


async def expect_error(call: Any, code: grpc.StatusCode) -> str:
    """Await ``call``, assert it fails with ``code``; returns the details."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""
