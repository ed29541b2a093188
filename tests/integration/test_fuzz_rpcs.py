"""Property-based fuzzing of EVERY RPC of every service on a REAL whole stack (issue 9 item 7, issue 15).

The RPCs come from the generated descriptors (coordinator Coordinator + Admin, order, stock, pay,
points), so a new RPC is fuzzed automatically. Each gets valid-shaped and invalid bodies (edge values,
unknown enum numbers, out-of-range timestamps, invalid UTF-8, 10,000 repeated entries, random bytes,
bodies just over 64 KiB) with no, plausible or malformed ``x-mesh-*`` metadata, and with or without the
admin token and the mesh credentials (most calls are signed with the stack's mesh secret, so they reach
the handlers and not only the credential check).

Bad input is the client's fault, so no answer may be ``INTERNAL`` or ``UNKNOWN`` (those mean a bug or a
crash inside the server), and no call with malformed ``x-mesh-*`` metadata may be accepted. Afterwards
every process must still be SERVING and ``meshctl audit`` must pass: nothing the fuzzer sent may have
moved money or stock outside a transaction.

Fixed seed (``derandomize``), bounded count: ``EXAMPLES_PER_RPC`` calls per RPC (30; a deeper local run
sets ``MESH_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings

from meshctl.audit.checks import all_ok
from meshctl.audit.gather import audit_until_settled
from meshctl.stack import layout
from meshkit.rpc.auth import auth_header
from meshkit.runtime.clock import SystemClock, now_ms
from meshkit.tx.context import GID_KEY
from tests.integration.flows.stack import Stack, whole_stack
from tests.integration.fuzz_bodies import MODULES, Rpc, Wire, all_rpcs, bodies
from tests.integration.fuzz_metadata import CallMetadata, metadata

EXAMPLES_PER_RPC = int(os.environ.get("MESH_FUZZ_EXAMPLES", "30"))  # CI: the default; raise it locally
CALL_SECONDS = 15.0
BUGS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)

pytestmark = pytest.mark.timeout(300)


@dataclass
class Outcome:
    """What the fuzzer heard: counts per code, and every call answered with a bug's code."""

    codes: Counter[str] = field(default_factory=Counter)
    bugs: list[str] = field(default_factory=list)
    bug_kinds: Counter[str] = field(default_factory=Counter)
    accepted_malformed: list[str] = field(default_factory=list)

    def record(self, rpc: Rpc, body: Wire, md: CallMetadata, code: grpc.StatusCode, details: str) -> None:
        """Count one answer; keep a readable line for a bug."""
        self.codes[code.name] += 1
        if md.malformed and code is grpc.StatusCode.OK:
            self.accepted_malformed.append(f"{rpc.path} md={list(md.pairs)}")
        if code in BUGS:
            kind, raw = body
            self.bug_kinds[f"{rpc.method} {kind} {code.name}"] += 1
            self.bugs.append(f"{rpc.path} {code.name} {details!r} body={kind}:{raw[:60]!r} md={md.keys()}")

    def summary(self) -> str:
        """``N calls: CODE n, ...``."""
        total = sum(self.codes.values())
        return f"{total} calls: " + ", ".join(f"{c} {n}" for c, n in self.codes.most_common())


def signed(md: CallMetadata, path: str, secret: str) -> list[tuple[str, str | bytes]]:
    """The call's metadata, with a valid ``x-mesh-auth`` (for its method and gids) when asked for."""
    pairs = list(md.pairs)
    if md.sign:
        gids = [v if isinstance(v, str) else v.decode(errors="replace") for k, v in pairs if k == GID_KEY]
        pairs.append(("x-mesh-auth", auth_header(secret, now_ms(SystemClock()), path, gids)))
    return pairs


def invoke(
    channel: grpc.Channel, rpc: Rpc, body: Wire, md: CallMetadata, secret: str
) -> tuple[grpc.StatusCode, str]:
    """Send raw request bytes; the status code and details of the answer."""
    call = channel.unary_unary(rpc.path)  # no serializers: bytes go out as they are
    try:
        call(body[1], metadata=signed(md, rpc.path, secret), timeout=CALL_SECONDS)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def fuzz_rpc(channel: grpc.Channel, rpc: Rpc, credentials: tuple[str, str], outcome: Outcome) -> None:
    """``EXAMPLES_PER_RPC`` seeded calls of one RPC."""
    admin_token, secret = credentials

    @settings(
        max_examples=EXAMPLES_PER_RPC,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=bodies(rpc.request), md=metadata(rpc.method, admin_token))
    def run(body: Wire, md: CallMetadata) -> None:
        code, details = invoke(channel, rpc, body, md, secret)
        outcome.record(rpc, body, md, code, details)

    run()


def serving(channel: grpc.Channel) -> int:
    """The overall health status of a process."""
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_SECONDS)
    status: int = reply.status
    return status


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with whole_stack(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


async def test_item7_fuzz_every_rpc_no_internal_or_unknown(stack: Stack) -> None:
    rpcs = all_rpcs()
    assert {r.process for r in rpcs} == set(MODULES)
    assert "meshpb.coordinator.v1.Admin" in {r.service for r in rpcs}
    channels = {key: grpc.insecure_channel(getattr(stack.clients.addresses, key)) for key in MODULES}
    secret = (stack.launcher.data_dir / layout.MESH_SECRET_FILE).read_text().strip()
    outcome = Outcome()
    try:
        for rpc in rpcs:
            fuzz_rpc(channels[rpc.process], rpc, (stack.clients.admin_token, secret), outcome)
        print(
            f"\nfuzz: {len(rpcs)} RPCs, {outcome.summary()};"
            f" {len(outcome.accepted_malformed)} malformed contexts accepted"
        )
        for kind, n in outcome.bug_kinds.most_common():
            print(f"  {n:4d} {kind}")
        health = {key: serving(channel) for key, channel in channels.items()}
    finally:
        for channel in channels.values():
            channel.close()

    assert not outcome.bugs, f"{len(outcome.bugs)} INTERNAL/UNKNOWN answers:\n" + "\n".join(outcome.bugs[:40])
    assert not outcome.accepted_malformed, "accepted malformed x-mesh-* metadata:\n" + "\n".join(
        outcome.accepted_malformed[:40]
    )
    assert health == dict.fromkeys(MODULES, health_pb2.HealthCheckResponse.SERVING)
    audit = await audit_until_settled(stack.clients, SystemClock(), wait_seconds=30)
    assert all_ok(audit.results), [(r.key, r.violations) for r in audit.results if not r.ok]
