"""Mesh credentials: who may call a protected RPC, and how a caller proves it.

Two credentials exist (README "Threat model"):

* the **mesh secret** (``auth.mesh_secret``), held by the coordinator and the four services only. A call
  signed with it carries one ``x-mesh-auth: v1.<unix_ms>.<hex>`` header, where ``<hex>`` is
  HMAC-SHA256(secret, ``v1|<unix_ms>|<full method path>|<x-mesh-gid values joined by ','>``). The method
  path binds the signature to one RPC, the gid to one transaction, the time to ``auth.max_skew_seconds``.
  :class:`MeshSigner` (a ``grpc.aio`` client interceptor, installed by :func:`client_interceptors` on every
  channel meshkit opens) adds it to every outgoing call when a secret is configured.
* the **admin token** (``admin.token``), held by operators: ``authorization: Bearer <token>``.

A server declares, per full method path, which of them a method accepts (:data:`MESH`, :data:`ADMIN` or
:data:`MESH_OR_ADMIN`); :class:`Gate` checks a call's metadata against that before the request body is
decoded. Anything not declared is open (public user RPCs, health, reflection).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from meshkit.errors import Unauthenticated
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.client_metrics import ClientMetricsInterceptor
from meshkit.rpc.client_trace import TraceForwarder
from meshkit.runtime.clock import Clock, SystemClock, now_ms
from meshkit.settings.config import AuthSettings
from meshkit.tx.context import GID_KEY

AUTH_KEY = "x-mesh-auth"
AUTHORIZATION_KEY = "authorization"
BEARER = "bearer "
VERSION = "v1"


class Credential(enum.Enum):
    """A kind of credential a protected method accepts."""

    MESH = "mesh"
    ADMIN = "admin"


Accepts = frozenset[Credential]
MESH: Accepts = frozenset({Credential.MESH})
ADMIN: Accepts = frozenset({Credential.ADMIN})
MESH_OR_ADMIN: Accepts = frozenset({Credential.MESH, Credential.ADMIN})
Protected = Mapping[str, Accepts]
MetadataItems = Iterable[tuple[str, str | bytes]]


def protect(service: str, accepts: Accepts, methods: Iterable[str]) -> dict[str, Accepts]:
    """``{"/<service>/<method>": accepts}`` for each of ``methods`` of the full service name ``service``."""
    return {f"/{service}/{method}": accepts for method in methods}


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def _values(metadata: MetadataItems | None, key: str) -> list[str]:
    return [_text(v) for k, v in metadata or () if k.lower() == key]


def signature(secret: str, unix_ms: int, method: str, gids: Sequence[str]) -> str:
    """The hex HMAC-SHA256 of one call (see the module docstring for the signed string)."""
    message = f"{VERSION}|{unix_ms}|{method}|{','.join(gids)}".encode()
    return hmac.digest(secret.encode(), message, hashlib.sha256).hex()


def auth_header(secret: str, unix_ms: int, method: str, gids: Sequence[str]) -> str:
    """The ``x-mesh-auth`` value of one call."""
    return f"{VERSION}.{unix_ms}.{signature(secret, unix_ms, method, gids)}"


def bearer_token(metadata: MetadataItems | None) -> str | None:
    """The token of ``authorization: Bearer <token>``; two ``authorization`` headers are refused."""
    values = _values(metadata, AUTHORIZATION_KEY)
    if len(values) > 1:
        raise Unauthenticated("more than one 'authorization' header")
    if values and values[0][: len(BEARER)].lower() == BEARER:
        return values[0][len(BEARER) :].strip()
    return None


def check_admin(expected: str, metadata: MetadataItems | None) -> None:
    """Refuse with :class:`Unauthenticated` unless the call carries the configured admin token."""
    presented = bearer_token(metadata)
    if not expected:
        raise Unauthenticated("the admin API is disabled: set admin.token (MESH_ADMIN__TOKEN)")
    if presented is None:
        raise Unauthenticated("admin calls need metadata 'authorization: Bearer <admin.token>'")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Unauthenticated("wrong admin token")


class MeshVerifier:
    """Checks the ``x-mesh-auth`` header of a call against the mesh secret and the skew window."""

    def __init__(self, settings: AuthSettings, clock: Clock | None = None) -> None:
        self._secret = settings.mesh_secret.get_secret_value()
        self._skew_ms = round(settings.max_skew_seconds * 1000)
        self._clock = clock or SystemClock()

    def check(self, method: str, metadata: MetadataItems | None) -> None:
        """Raise :class:`Unauthenticated` unless the call is signed for ``method`` within the window."""
        if not self._secret:
            raise Unauthenticated("mesh-only RPC, and this process has no auth.mesh_secret")
        headers: list[str] = []
        gids: list[str] = []
        for key, value in metadata or ():  # one pass: this runs on every mesh-only call
            name = key.lower()
            if name == AUTH_KEY:
                headers.append(_text(value))
            elif name == GID_KEY:
                gids.append(_text(value))
        if not headers:
            raise Unauthenticated(f"mesh-only RPC: metadata '{AUTH_KEY}' missing")
        if len(headers) > 1:
            raise Unauthenticated(f"more than one '{AUTH_KEY}' header")
        version, _, rest = headers[0].partition(".")
        stamp, _, presented = rest.partition(".")
        if version != VERSION or not stamp.isdigit() or len(stamp) > 15 or not presented:
            raise Unauthenticated(f"malformed '{AUTH_KEY}' (expected {VERSION}.<unix_ms>.<hex>)")
        unix_ms = int(stamp)
        if abs(now_ms(self._clock) - unix_ms) > self._skew_ms:
            raise Unauthenticated(f"'{AUTH_KEY}' outside the {self._skew_ms / 1000:g}s clock-skew window")
        expected = signature(self._secret, unix_ms, method, gids)
        if not hmac.compare_digest(presented.encode(errors="replace"), expected.encode()):
            raise Unauthenticated(f"bad '{AUTH_KEY}' signature")


class Gate:
    """A server's access rule: the credentials each protected method accepts, checked from metadata."""

    def __init__(
        self, protected: Protected, settings: AuthSettings, admin_token: str, clock: Clock | None = None
    ) -> None:
        self._protected = dict(protected)
        self._mesh = MeshVerifier(settings, clock)
        self._admin_token = admin_token

    def check(self, method: str, metadata: MetadataItems | None) -> None:
        """Raise :class:`Unauthenticated` unless ``method`` is open or one accepted credential verifies."""
        accepts = self._protected.get(method)
        if accepts is None:
            return
        if Credential.MESH in accepts and (
            Credential.ADMIN not in accepts or _values(metadata, AUTH_KEY)  # signed: mesh, else admin
        ):
            self._mesh.check(method, metadata)
            return
        check_admin(self._admin_token, metadata)


class MeshSigner(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds ``x-mesh-auth`` (and, for an operator's channel, the admin bearer token) to every call."""

    def __init__(self, secret: str, admin_token: str = "", clock: Clock | None = None) -> None:
        self._secret = secret
        self._admin_token = admin_token
        self._clock = clock or SystemClock()

    def headers(self, method: str, metadata: MetadataItems | None) -> list[tuple[str, str]]:
        """The credential headers a call of ``method`` with ``metadata`` gets (ones it carries win)."""
        added: list[tuple[str, str]] = []
        if self._secret and not _values(metadata, AUTH_KEY):
            gids = _values(metadata, GID_KEY)
            added.append((AUTH_KEY, auth_header(self._secret, now_ms(self._clock), method, gids)))
        if self._admin_token and not _values(metadata, AUTHORIZATION_KEY):
            added.append((AUTHORIZATION_KEY, f"Bearer {self._admin_token}"))
        return added

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Call on with the credential headers appended to the call's metadata."""
        details: grpc.aio.ClientCallDetails = client_call_details
        method = _text(details.method)
        existing = list(details.metadata or ())
        metadata = grpc.aio.Metadata(*existing, *self.headers(method, existing))
        signed = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return await continuation(signed, request)


def client_interceptors(
    settings: AuthSettings | None,
    *,
    admin_token: str = "",
    clock: Clock | None = None,
    metrics: ClientRpcMetrics | None = None,
    forward_trace: bool = True,
) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors of a meshkit channel: client metrics (given ``metrics``), the trace, the signer.

    The :class:`~meshkit.rpc.client_trace.TraceForwarder` sends the served call's trace on; the
    :class:`MeshSigner` is there only when there is anything to attach. Branch calls carry their
    transaction's trace themselves (``forward_trace=False``).
    """
    chain: list[grpc.aio.ClientInterceptor] = [TraceForwarder()] if forward_trace else []
    if metrics is not None:
        chain.append(ClientMetricsInterceptor(metrics))
    secret = settings.mesh_secret.get_secret_value() if settings is not None else ""
    if secret or admin_token:
        chain.append(MeshSigner(secret, admin_token, clock))
    return chain


LB_POLICY_OPTION = "grpc.lb_policy_name"


def balanced(options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``options`` plus the ``round_robin`` load-balancing policy unless they name one.

    ``host:port`` goes through gRPC's DNS resolver (as ``dns:///host:port`` would): behind a headless
    Kubernetes Service it resolves to every ready pod, and round_robin spreads calls over all of them
    where the default pick_first would pin each client to one pod.
    """
    chosen = list(options)
    if all(key != LB_POLICY_OPTION for key, _ in chosen):
        chosen.append((LB_POLICY_OPTION, "round_robin"))
    return chosen


RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


def channel_options(options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """:func:`balanced` ``options`` with a short reconnect backoff unless they set one.

    gRPC's default backoff grows to 120 s, so a channel to a peer that restarted (a rollout, a crash)
    could answer ``UNAVAILABLE`` for up to two minutes after the peer is back; within a mesh the peer
    is expected back in seconds.
    """
    chosen = balanced(options)
    named = {key for key, _ in chosen}
    chosen.extend(option for option in RECONNECT_OPTIONS if option[0] not in named)
    return chosen


def mesh_channel(
    address: str,
    settings: AuthSettings | None,
    *,
    options: Sequence[tuple[str, Any]] = (),
    admin_token: str = "",
    metrics: ClientRpcMetrics | None = None,
) -> grpc.aio.Channel:
    """An insecure, round-robin ``grpc.aio`` channel to ``address`` with this process's credentials.

    Given ``metrics``, its calls are counted there (``mesh_rpc_client_*``).
    """
    return grpc.aio.insecure_channel(
        address,
        options=channel_options(options),
        interceptors=client_interceptors(settings, admin_token=admin_token, metrics=metrics),
    )
