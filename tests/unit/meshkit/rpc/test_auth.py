"""Issue 9 item 6: meshkit.rpc.auth's header format, skew window, duplicate headers and access rules."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from meshkit.errors import Unauthenticated
from meshkit.rpc.auth import (
    ADMIN,
    MESH,
    MESH_OR_ADMIN,
    Gate,
    MeshSigner,
    MeshVerifier,
    auth_header,
    channel_options,
    client_interceptors,
    protect,
)
from meshkit.runtime.clock import ManualClock
from meshkit.settings.config import AuthSettings, MeshSettings, redacted

SECRET = "s3cret"
METHOD = "/meshpb.stock.v1.Stock/TryReserve"
SETTINGS = AuthSettings(mesh_secret=SecretStr(SECRET), max_skew_seconds=300)


def test_item6_header_is_v1_ms_and_hmac_of_the_documented_string() -> None:
    expected = hmac.new(b"s3cret", b"v1|1800000000000|/a.B/C|g-1", hashlib.sha256).hexdigest()
    assert auth_header(SECRET, 1_800_000_000_000, "/a.B/C", ["g-1"]) == f"v1.1800000000000.{expected}"


def test_item6_signer_and_verifier_agree_within_the_window_only() -> None:
    clock = ManualClock()
    signer = MeshSigner(SECRET, clock=clock)
    metadata = [("x-mesh-gid", "g-1"), *signer.headers(METHOD, [("x-mesh-gid", "g-1")])]
    verifier = MeshVerifier(SETTINGS, clock)
    verifier.check(METHOD, metadata)
    clock.advance(299)
    verifier.check(METHOD, metadata)
    clock.advance(2)
    with pytest.raises(Unauthenticated, match="skew"):
        verifier.check(METHOD, metadata)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([], "missing"),
        ([("x-mesh-auth", "v1.1.ab"), ("x-mesh-auth", "v1.1.ab")], "more than one"),
        ([("x-mesh-auth", "garbage")], "malformed"),
        ([("x-mesh-auth", "v1.9999999999999999.ab")], "malformed"),
        (
            [("x-mesh-gid", "g-2"), ("x-mesh-auth", auth_header(SECRET, 1_800_000_000_000, METHOD, ["g-1"]))],
            "bad",
        ),
        ([("x-mesh-auth", auth_header("other", 1_800_000_000_000, METHOD, []))], "bad"),
    ],
)
def test_item6_verifier_refuses(metadata: list[tuple[str, str]], reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        MeshVerifier(SETTINGS, ManualClock()).check(METHOD, metadata)


def test_item6_signer_adds_both_credentials_but_never_over_the_callers_own() -> None:
    signer = MeshSigner(SECRET, "tok", clock=ManualClock())
    keys = [key for key, _ in signer.headers(METHOD, [])]
    assert keys == ["x-mesh-auth", "authorization"]
    own = [("x-mesh-auth", "v1.1.ab"), ("authorization", "Bearer mine")]
    assert signer.headers(METHOD, own) == []


def test_item6_a_process_without_secret_refuses_mesh_calls_and_signs_nothing() -> None:
    header = auth_header(SECRET, 1_800_000_000_000, METHOD, [])
    with pytest.raises(Unauthenticated, match="mesh_secret"):
        MeshVerifier(AuthSettings(), ManualClock()).check(METHOD, [("x-mesh-auth", header)])
    assert not any(isinstance(i, MeshSigner) for i in client_interceptors(AuthSettings()))


def test_item6_gate_applies_each_methods_rule() -> None:
    clock = ManualClock()
    protected = {
        **protect("p.S", MESH, ["Branch"]),
        **protect("p.S", ADMIN, ["Put"]),
        **protect("p.S", MESH_OR_ADMIN, ["Audit"]),
    }
    gate = Gate(protected, SETTINGS, "tok", clock)
    signed = MeshSigner(SECRET, clock=clock)
    admin = [("authorization", "Bearer tok")]
    gate.check("/p.S/Open", [])
    gate.check("/p.S/Branch", signed.headers("/p.S/Branch", []))
    gate.check("/p.S/Put", admin)
    gate.check("/p.S/Audit", admin)
    gate.check("/p.S/Audit", signed.headers("/p.S/Audit", []))
    for method, metadata in [
        ("/p.S/Branch", admin),
        ("/p.S/Put", signed.headers("/p.S/Put", [])),
        ("/p.S/Put", [("authorization", "Bearer nope")]),
        ("/p.S/Put", [*admin, *admin]),
        ("/p.S/Audit", []),
    ]:
        with pytest.raises(Unauthenticated):
            gate.check(method, metadata)
    with pytest.raises(Unauthenticated, match=r"admin\.token"):
        Gate(protected, SETTINGS, "", clock).check("/p.S/Put", admin)


def test_item6_mesh_secret_is_redacted_in_the_settings_log() -> None:
    settings = MeshSettings(auth=SETTINGS)
    assert SECRET not in str(redacted(settings))


def test_mesh_channels_reconnect_within_seconds_after_a_peer_restarts() -> None:
    options = dict(channel_options([("grpc.keepalive_time_ms", 30_000)]))
    assert options["grpc.lb_policy_name"] == "round_robin"
    assert options["grpc.max_reconnect_backoff_ms"] == 2_000
    assert options["grpc.keepalive_time_ms"] == 30_000
    chosen = dict(channel_options([("grpc.max_reconnect_backoff_ms", 9_000)]))
    assert chosen["grpc.max_reconnect_backoff_ms"] == 9_000
