"""Where the mesh's services are and typed gRPC clients for all of them (audit, demo and bench use them)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from meshctl.stack import layout
from meshctl.stack.stackfile import StackState
from meshkit.rpc.auth import mesh_channel
from meshkit.runtime.closing import AsyncClosing
from meshkit.settings.config import AuthSettings
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from meshpb.order.v1 import order_pb2_grpc
from meshpb.pay.v1 import pay_pb2_grpc
from meshpb.points.v1 import points_pb2_grpc
from meshpb.stock.v1 import stock_pb2_grpc

# Field of MeshAddresses -> the service process name in the stack (layout.SERVICES).
PROCESS_NAMES = {
    "coordinator": "coordinator",
    "order": "order_svc",
    "stock": "stock_svc",
    "pay": "pay_svc",
    "points": "points_svc",
}
AUTHORIZATION_KEY = "authorization"


class AddressError(ValueError):
    """The addresses of the mesh cannot be determined (no stack file, a service missing from it)."""


@dataclass(frozen=True, slots=True)
class MeshAddresses:
    """``host:port`` of the coordinator and the four services."""

    coordinator: str
    order: str
    stock: str
    pay: str
    points: str

    @classmethod
    def for_base_port(cls, base_port: int) -> MeshAddresses:
        """The ``meshctl up`` layout on ``base_port`` (DESIGN.md section 9)."""
        by_name = {spec.name: layout.address(base_port, spec) for spec in layout.SERVICES}
        return cls(**{key: by_name[name] for key, name in PROCESS_NAMES.items()})

    @classmethod
    def from_stack(cls, state: StackState) -> MeshAddresses:
        """The addresses recorded in a stack's ``stack.json``."""
        by_name = {p.name: p.address for p in state.services()}
        missing = [name for name in PROCESS_NAMES.values() if name not in by_name]
        if missing:
            raise AddressError(f"stack in {state.data_dir} has no {', '.join(missing)}")
        return cls(**{key: by_name[name] for key, name in PROCESS_NAMES.items()})

    def overridden(self, **addresses: str | None) -> MeshAddresses:
        """A copy with the given (non-empty) addresses replaced."""
        return replace(self, **{k: v for k, v in addresses.items() if v})

    def items(self) -> list[tuple[str, str]]:
        """``(process name, address)`` of every service, coordinator first."""
        return [(PROCESS_NAMES[f.name], getattr(self, f.name)) for f in fields(self)]


class MeshClients(AsyncClosing):
    """One channel per service and its typed async stubs; use as ``async with MeshClients(...)``.

    An operator's clients: every call carries the admin token (when given), which the admin RPCs
    (PutSku, Grant, Refund, PutFlashSale, Audit, Coordinator.Query, Admin) need. ``auth`` adds the mesh
    credentials too, for a test that plays a service.
    """

    def __init__(
        self, addresses: MeshAddresses, admin_token: str = "", auth: AuthSettings | None = None
    ) -> None:
        self.addresses = addresses
        self.admin_token = admin_token
        self._channels = {
            key: mesh_channel(getattr(addresses, key), auth, admin_token=admin_token) for key in PROCESS_NAMES
        }
        self.coordinator = coordinator_pb2_grpc.CoordinatorStub(self._channels["coordinator"])
        self.admin = coordinator_pb2_grpc.AdminStub(self._channels["coordinator"])
        self.order = order_pb2_grpc.OrderStub(self._channels["order"])
        self.stock = stock_pb2_grpc.StockStub(self._channels["stock"])
        self.pay = pay_pb2_grpc.PayStub(self._channels["pay"])
        self.points = points_pb2_grpc.PointsStub(self._channels["points"])

    @property
    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata Admin calls carry (``authorization: Bearer <token>``)."""
        return ((AUTHORIZATION_KEY, f"Bearer {self.admin_token}"),)

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close()
