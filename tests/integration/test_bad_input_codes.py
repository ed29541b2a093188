"""Bad input and early branch calls get a precise code on a REAL whole stack, never INTERNAL or UNKNOWN.

Issue 9 item 7 and issue 15 items 4 and 5: an undecodable body, invalid UTF-8 in a string field or a
non-UTF-8 ``-bin`` metadata value (``INVALID_ARGUMENT``, or ignored when it is not ours); duplicate or
inconsistent ``x-mesh-*`` metadata (``INVALID_ARGUMENT`` naming the key, nothing changed); the admin
token checked before the body is decoded; a confirm before its try (``FAILED_PRECONDITION``, logged at
WARNING with the gid) or one that can never succeed (``ABORTED``); an order id reused by another gid;
out-of-range timestamps and durations (``INVALID_ARGUMENT`` naming the field).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import SecretStr

from meshctl.stack import layout
from meshkit.rpc.auth import mesh_channel
from meshkit.settings.config import AuthSettings
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from meshpb.order.v1 import order_pb2 as opb
from meshpb.order.v1 import order_pb2_grpc
from meshpb.points.v1 import points_pb2 as ppb
from meshpb.points.v1 import points_pb2_grpc
from meshpb.stock.v1 import stock_pb2 as spb
from meshpb.stock.v1 import stock_pb2_grpc
from tests.integration.asserts import eventually, rpc_error
from tests.integration.flows.stack import Stack, whole_stack

Pairs = Sequence[tuple[str, str | bytes]]
BUGS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
CORRUPT = b"\xff\xff\xff\xff"
BAD_UTF8_FIELD_1 = b"\x0a\x02\xc3\x28"  # field 1 (a string in every request used here) = C3 28


class Mesh:
    """Signed channels (mesh secret, admin token) and an unsigned one to each service of the stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        secret = (stack.launcher.data_dir / layout.MESH_SECRET_FILE).read_text().strip()
        auth = AuthSettings(mesh_secret=SecretStr(secret))
        addresses = stack.clients.addresses
        self.token = stack.clients.admin_token
        processes = ("order", "points", "stock", "coordinator")
        self.signed = {k: mesh_channel(getattr(addresses, k), auth) for k in processes}
        self.admin_channel = mesh_channel(addresses.coordinator, None, admin_token=self.token)
        self.bare = {k: grpc.aio.insecure_channel(getattr(addresses, k)) for k in ("order", "points")}
        self.order = order_pb2_grpc.OrderStub(self.signed["order"])
        self.points = points_pb2_grpc.PointsStub(self.signed["points"])
        self.stock = stock_pb2_grpc.StockStub(self.signed["stock"])
        self.coordinator = coordinator_pb2_grpc.CoordinatorStub(self.signed["coordinator"])
        self.admin = coordinator_pb2_grpc.AdminStub(self.admin_channel)

    async def close(self) -> None:
        """Close every channel."""
        for channel in [*self.signed.values(), *self.bare.values(), self.admin_channel]:
            await channel.close()

    async def raw(self, process: str, path: str, body: bytes, md: Pairs = (), *, signed: bool = True) -> Any:
        """The error of sending ``body`` as it is to ``path`` (the test fails when the call succeeds)."""
        channel = (self.signed if signed else self.bare)[process]
        return await rpc_error(channel.unary_unary(path)(body, metadata=list(md), timeout=20))


def ctx(gid: str, op: Op, mode: TxMode = TxMode.TCC, branch: str = "points") -> list[tuple[str, str]]:
    """The ``x-mesh-*`` metadata of a branch call."""
    return TxContext(gid=gid, branch_id=branch, op=op, mode=mode).to_metadata()


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    async with whole_stack(tmp_path_factory.mktemp("badinput")) as stack:
        running = Mesh(stack)
        try:
            yield running
        finally:
            await running.close()


async def user_with(mesh: Mesh, points: int) -> str:
    user = fresh("u")
    await mesh.stack.points.Grant(
        ppb.GrantRequest(user_id=user, amount=points, out_trade_no=fresh("grant")),
        metadata=mesh.stack.clients.admin_metadata,
        timeout=20,
    )
    return user


# --------------------------------------------------------------------------- transport (issue 15 item 5)


@pytest.mark.parametrize(
    ("process", "path", "signed"),
    [
        ("order", "/meshpb.order.v1.Order/GetOrder", False),
        ("points", "/meshpb.points.v1.Points/GetAccount", False),
        ("points", "/meshpb.points.v1.Points/TryFreeze", True),
        ("order", "/meshpb.order.v1.Order/ConfirmCreate", True),
        ("coordinator", "/meshpb.coordinator.v1.Coordinator/Query", True),
    ],
)
@pytest.mark.parametrize("body", [CORRUPT, BAD_UTF8_FIELD_1], ids=["corrupt", "invalid-utf8"])
async def test_item7_issue15_item5_an_undecodable_body_is_invalid_argument(
    mesh: Mesh, process: str, path: str, signed: bool, body: bytes
) -> None:
    md = (
        ctx(fresh("g"), Op.TRY if "Try" in path else Op.CONFIRM) if "Try" in path or "Confirm" in path else []
    )
    error = await mesh.raw(process, path, body, md, signed=signed)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert error.details().startswith("request body: not a valid message")


async def test_issue15_item5_non_utf8_binary_metadata_not_ours_is_not_read(mesh: Mesh) -> None:
    user = fresh("nobody")
    reply = mesh.stack.points.GetAccount(
        ppb.GetAccountRequest(user_id=user), metadata=[("trace-bin", b"\xff\xfe")], timeout=20
    )
    error = await rpc_error(reply)
    assert error.code() is grpc.StatusCode.NOT_FOUND  # answered normally: the value was never decoded


async def test_issue15_item5_a_binary_context_key_is_invalid_argument(mesh: Mesh) -> None:
    error = await rpc_error(
        mesh.stack.points.GetAccount(
            ppb.GetAccountRequest(user_id="u"), metadata=[("x-mesh-gid-bin", b"\xff")], timeout=20
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("x-mesh-gid: ")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        (("x-mesh-gid", "other-gid"), "x-mesh-gid"),
        (("x-mesh-op", "cancel"), "x-mesh-op"),
        (("x-mesh-mode", "tcc"), "x-mesh-mode"),
        (("x-mesh-branch", "stock"), "x-mesh-branch"),
    ],
)
async def test_issue15_item5_a_duplicate_context_key_is_refused_and_nothing_changes(
    mesh: Mesh, extra: tuple[str, str], key: str
) -> None:
    user = await user_with(mesh, 100)
    request = ppb.PointsBranchRequest(user_id=user, amount=40, out_trade_no=fresh("pay"))
    md = [*ctx(fresh("g"), Op.TRY), extra]
    error = await rpc_error(mesh.points.TryFreeze(request, metadata=md, timeout=20))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{key}: given more than once"
    assert await mesh.stack.account(user) == (100, 0)


@pytest.mark.parametrize(
    ("mode", "op", "method"),
    [
        (TxMode.SAGA, Op.TRY, "TryFreeze"),
        (TxMode.SAGA, Op.CONFIRM, "ConfirmFreeze"),
        (TxMode.SAGA, Op.CANCEL, "CancelFreeze"),
        (TxMode.TCC, Op.ACTION, "RefundBranch"),
        (TxMode.TCC, Op.MSG, "RefundBranch"),
        (TxMode.MSG, Op.TRY, "TryFreeze"),
        (TxMode.MSG, Op.COMPENSATE, "RefundBranch"),
    ],
)
async def test_issue15_item5_a_mode_inconsistent_with_the_op_is_refused(
    mesh: Mesh, mode: TxMode, op: Op, method: str
) -> None:
    user = await user_with(mesh, 100)
    request: Any = (ppb.RefundRequest if method == "RefundBranch" else ppb.PointsBranchRequest)(
        user_id=user, amount=40, out_trade_no=fresh("pay")
    )
    call = getattr(mesh.points, method)(request, metadata=ctx(fresh("g"), op, mode), timeout=20)
    error = await rpc_error(call)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"x-mesh-op: a {mode.value} transaction calls ")
    assert await mesh.stack.account(user) == (100, 0)


async def test_issue15_item5_admin_checks_the_token_before_decoding(mesh: Mesh) -> None:
    path = "/meshpb.coordinator.v1.Admin/List"
    bare = grpc.aio.insecure_channel(mesh.stack.clients.addresses.coordinator)
    try:
        unauthenticated = await rpc_error(bare.unary_unary(path)(CORRUPT, timeout=20))
        with_token = await rpc_error(
            bare.unary_unary(path)(CORRUPT, metadata=[("authorization", f"Bearer {mesh.token}")], timeout=20)
        )
    finally:
        await bare.close()
    assert unauthenticated.code() is grpc.StatusCode.UNAUTHENTICATED
    assert with_token.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert with_token.details().startswith("request body: ")


async def test_issue15_item5_two_authorization_headers_are_refused(mesh: Mesh) -> None:
    right = ("authorization", f"Bearer {mesh.token}")
    stub = mesh.stack.clients.admin
    for md in ([right, right], [right, ("authorization", "Bearer wrong")]):
        error = await rpc_error(stub.Stats(cpb.StatsRequest(), metadata=md, timeout=20))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, md


# --------------------------------------------------------------------------- branch codes (issue 15 item 4)


async def test_issue15_item4_points_confirm_before_try_is_not_yet_and_logged_with_the_gid(mesh: Mesh) -> None:
    user = await user_with(mesh, 100)
    for method in ("ConfirmFreeze", "ConfirmDeduct"):
        gid = fresh("early")
        request = ppb.PointsBranchRequest(user_id=user, amount=40, out_trade_no=fresh("pay"))
        call = getattr(mesh.points, method)(request, metadata=ctx(gid, Op.CONFIRM), timeout=20)
        error = await rpc_error(call)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, (method, error.details())
        assert gid in error.details()
        await eventually(
            lambda: _log_async(mesh, "points_svc"),
            lambda text, gid=gid: any("WARNING" in ln and gid in ln for ln in text.splitlines()),
            10,
            f"a WARNING line naming {gid}",
        )
    assert await mesh.stack.account(user) == (100, 0)


async def _log_async(mesh: Mesh, name: str) -> str:
    return mesh.stack.log(name)


async def test_issue15_item4_points_confirm_of_another_gids_hold_is_aborted(mesh: Mesh) -> None:
    user = await user_with(mesh, 100)
    request = ppb.PointsBranchRequest(user_id=user, amount=40, out_trade_no=fresh("pay"))
    owner = fresh("owner")
    await mesh.points.TryFreeze(request, metadata=ctx(owner, Op.TRY), timeout=20)
    error = await rpc_error(mesh.points.ConfirmFreeze(request, metadata=ctx(fresh("other"), Op.CONFIRM)))
    assert error.code() is grpc.StatusCode.ABORTED
    assert await mesh.stack.account(user) == (60, 40)  # the owner's hold is untouched
    await mesh.points.CancelFreeze(request, metadata=ctx(owner, Op.CANCEL), timeout=20)
    assert await mesh.stack.account(user) == (100, 0)


def create_payload(order_id: str, user: str) -> opb.CreateOrdersBranch:
    item = opb.OrderItem(sku="sku-1", merchant_id="m-1", quantity=1, unit_price_cents=500)
    order = opb.OrderInfo(order_id=order_id, user_id=user, merchant_id="m-1", total_cents=500, items=[item])
    return opb.CreateOrdersBranch(request_id=fresh("req"), orders=[order])


async def test_issue15_item4_order_confirms_before_try_are_not_yet(mesh: Mesh) -> None:
    gid = fresh("early")
    created = mesh.order.ConfirmCreate(
        create_payload(fresh("o")[:32], "u-1"), metadata=ctx(gid, Op.CONFIRM, branch="order"), timeout=20
    )
    paid = mesh.order.ConfirmMarkPaid(
        opb.MarkPaidBranch(
            order_id=fresh("o")[:32], payment_id="p-1", amount_cents=500, channel=opb.PAY_CHANNEL_POINTS
        ),
        metadata=ctx(gid, Op.CONFIRM, branch="order"),
        timeout=20,
    )
    for call in (created, paid):
        error = await rpc_error(call)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert gid in error.details()
    assert f"gid {gid}" in mesh.stack.log("order_svc")


async def test_issue15_item4_try_create_with_an_order_id_of_another_gid_is_refused_by_name(
    mesh: Mesh,
) -> None:
    order_id = fresh("o")[:32]
    first, second = fresh("first"), fresh("second")
    payload = create_payload(order_id, "u-1")
    await mesh.order.TryCreate(payload, metadata=ctx(first, Op.TRY, branch="order"), timeout=20)
    error = await rpc_error(
        mesh.order.TryCreate(payload, metadata=ctx(second, Op.TRY, branch="order"), timeout=20)
    )
    assert error.code() is grpc.StatusCode.ABORTED
    assert f"order_id {order_id}" in error.details()
    # The first transaction's order is untouched: its confirm still works after the refused try.
    await mesh.order.CancelCreate(payload, metadata=ctx(first, Op.CANCEL, branch="order"), timeout=20)
    confirm = mesh.order.ConfirmCreate(payload, metadata=ctx(first, Op.CONFIRM, branch="order"), timeout=20)
    assert (await rpc_error(confirm)).code() is grpc.StatusCode.ABORTED  # voided: can never succeed


async def test_issue15_item4_out_of_range_timestamp_names_the_field(mesh: Mesh) -> None:
    request = opb.PutFlashSaleRequest(
        sale_id=fresh("sale"),
        sku="sku-1",
        merchant_id="m-1",
        price_cents=100,
        quantity=1,
        starts_at=Timestamp(seconds=2**63 - 1),
        ends_at=Timestamp(seconds=2_000_000_000),
    )
    stub = mesh.stack.order
    error = await rpc_error(
        stub.PutFlashSale(request, metadata=mesh.stack.clients.admin_metadata, timeout=20)
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("starts_at.seconds: ")
    request.starts_at.CopyFrom(Timestamp(seconds=1_900_000_000, nanos=-1))
    error = await rpc_error(
        stub.PutFlashSale(request, metadata=mesh.stack.clients.admin_metadata, timeout=20)
    )
    assert error.details().startswith("starts_at.nanos: ")


async def test_item7_admin_out_of_range_times_name_the_field(mesh: Mesh) -> None:
    listed = await rpc_error(mesh.admin.List(cpb.ListRequest(created_after=Timestamp(seconds=-(2**63)))))
    assert listed.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert listed.details().startswith("created_after.seconds: ")
    stuck = await rpc_error(mesh.admin.Stuck(cpb.StuckRequest(older_than=Duration(seconds=2**63 - 1))))
    assert stuck.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert stuck.details().startswith("older_than.seconds: ")


async def test_issue15_item4_points_cancels_that_can_never_succeed_are_aborted(mesh: Mesh) -> None:
    user = await user_with(mesh, 100)
    spent = ppb.PointsBranchRequest(user_id=user, amount=40, out_trade_no=fresh("pay"))
    gid = fresh("confirmed")
    await mesh.points.TryFreeze(spent, metadata=ctx(gid, Op.TRY), timeout=20)
    await mesh.points.ConfirmFreeze(spent, metadata=ctx(gid, Op.CONFIRM), timeout=20)
    after_confirm = await rpc_error(mesh.points.CancelFreeze(spent, metadata=ctx(gid, Op.CANCEL), timeout=20))
    assert after_confirm.code() is grpc.StatusCode.ABORTED, after_confirm.details()
    assert await mesh.stack.account(user) == (60, 0)

    held = ppb.PointsBranchRequest(user_id=user, amount=10, out_trade_no=fresh("pay"))
    mixed = fresh("mixed")
    await mesh.points.TryFreeze(held, metadata=ctx(mixed, Op.TRY), timeout=20)
    other_kind = await rpc_error(mesh.points.CancelDeduct(held, metadata=ctx(mixed, Op.CANCEL), timeout=20))
    assert other_kind.code() is grpc.StatusCode.ABORTED, other_kind.details()
    assert await mesh.stack.account(user) == (50, 10)
    await mesh.points.CancelFreeze(held, metadata=ctx(mixed, Op.CANCEL), timeout=20)
    assert await mesh.stack.account(user) == (60, 0)


async def test_item7_stock_repeated_confirm_with_other_items_is_invalid_argument(mesh: Mesh) -> None:
    merchant = fresh("m")
    first, second = await mesh.stack.sku(merchant, 100, 5), await mesh.stack.sku(merchant, 100, 5)

    def reserve(*skus: str) -> spb.ReserveRequest:
        items = [common_pb2.SkuQuantity(sku=s, quantity=1) for s in skus]
        return spb.ReserveRequest(items=items, order_ids=["o-1"])

    gid = fresh("stock")
    md = ctx(gid, Op.TRY, branch="stock")
    await mesh.stock.TryReserve(reserve(first), metadata=md, timeout=20)
    await mesh.stock.ConfirmReserve(reserve(first), metadata=ctx(gid, Op.CONFIRM, branch="stock"), timeout=20)
    repeat = mesh.stock.ConfirmReserve(
        reserve(first, second), metadata=ctx(gid, Op.CONFIRM, branch="stock"), timeout=20
    )
    error = await rpc_error(repeat)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(f"items: {second} not in the confirm gid {gid}")
    assert await mesh.stack.stock_of(first) == (4, 0, 1)
    assert await mesh.stack.stock_of(second) == (5, 0, 0)


async def test_issue15_item4_stock_confirm_before_try_is_not_yet_and_sells_nothing(mesh: Mesh) -> None:
    sku = await mesh.stack.sku(fresh("m"), 100, 1)
    request = spb.ReserveRequest(items=[common_pb2.SkuQuantity(sku=sku, quantity=1)], order_ids=["o-1"])
    early = fresh("early")
    error = await rpc_error(
        mesh.stock.ConfirmReserve(request, metadata=ctx(early, Op.CONFIRM, branch="stock"), timeout=20)
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert early in error.details()

    cancelled = fresh("cancelled")
    await mesh.stock.CancelReserve(request, metadata=ctx(cancelled, Op.CANCEL, branch="stock"), timeout=20)
    blocked = mesh.stock.ConfirmReserve(
        request, metadata=ctx(cancelled, Op.CONFIRM, branch="stock"), timeout=20
    )
    assert (await rpc_error(blocked)).code() is grpc.StatusCode.ABORTED
    assert await mesh.stack.stock_of(sku) == (1, 0, 0)
    assert f"confirm of gid {early}" in mesh.stack.log("stock_svc")
