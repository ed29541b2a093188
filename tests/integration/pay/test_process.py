"""``python -m pay_svc`` as a real process: MESH_* settings, the real callback path, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from meshctl.stack.embedded import free_port, log_tail
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from tests.integration.creds import ENV as CREDENTIALS_ENV
from tests.integration.creds import MESH_SECRET, trusted_channel
from tests.integration.pay.harness import SECRET, FakeOrder
from tests.integration.processes import spawn_module, wait_module_serving


async def test_pay_svc_process_pays_through_its_own_callback(tmp_path: Path, fake_order: FakeOrder) -> None:
    port = free_port()
    log_path = tmp_path / "pay_svc.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        {
            "MESH_SERVER__HOST": "127.0.0.1",
            "MESH_SERVER__PORT": str(port),
            "MESH_SERVER__GRACE_SECONDS": "0.5",
            "MESH_DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'pay.db'}",
            "MESH_PAY__CALLBACK_SECRET": SECRET,
            "MESH_PEERS__ORDER": fake_order.address,
            "MESH_LOG__JSON": "true",
            "MESH_PAY__SIMULATOR_ENABLED": "true",
            **CREDENTIALS_ENV,
        }
    )
    proc = await spawn_module("pay_svc", env, log_path)
    try:
        await wait_module_serving(proc, f"127.0.0.1:{port}", log_path, 30)
        async with trusted_channel(f"127.0.0.1:{port}") as channel:
            stub = pay_pb2_grpc.PayStub(channel)
            created = await stub.CreatePayment(
                pay_pb2.CreatePaymentRequest(
                    order_id="o-proc", user_id="u1", amount_cents=321, channel=order_pb2.PAY_CHANNEL_EXTERNAL
                )
            )
            paid = await stub.SimulateGatewayPay(
                pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id)
            )

        assert paid.status == pay_pb2.PAYMENT_STATUS_SUCCEEDED
        assert [c.answered for c in fake_order.calls_for("o-proc")] == ["accepted"]
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        assert code == 0, log_tail(log_path)
        assert SECRET not in log_path.read_text()
        assert MESH_SECRET not in log_path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
