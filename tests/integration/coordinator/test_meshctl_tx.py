"""``meshctl tx`` as an operator runs it: a real CLI process against a real coordinator."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshctl.exitcodes import ExitCode
from meshctl.stack.embedded import free_port
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import (
    ADMIN_TOKEN,
    RunningCoordinator,
    wait_final,
    wait_for,
)
from tests.integration.coordinator.participants import Bank, payload
from tests.integration.coordinator.test_admin_api import stuck_tcc


@dataclass
class CliResult:
    """Exit code and output of one ``meshctl`` run."""

    code: int
    out: str
    err: str

    def json(self) -> object:
        """stdout parsed as JSON."""
        return json.loads(self.out)


async def meshctl(
    *args: str, token: str | None = ADMIN_TOKEN, data_dir: Path | None = None, columns: int | None = None
) -> CliResult:
    """Run ``python -m meshctl`` with ``args``; the token travels in the environment like an operator's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    if token is not None:
        env["MESH_ADMIN__TOKEN"] = token
    if columns is not None:
        env["COLUMNS"] = str(columns)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshctl",
        *args,
        *(("--data-dir", str(data_dir)) if data_dir else ()),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


async def finished_saga(coordinator: RunningCoordinator, bank: Bank, gid: str) -> None:
    step = pb.Branch(
        branch_id="01",
        action=bank.target("Action"),
        cancel=bank.target("Compensate"),
        payload=payload("s", 1),
    )
    await coordinator.stub.Submit(pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=[step]))
    await wait_final(coordinator, gid)


async def test_tx_list_show_and_stats_describe_a_finished_saga(
    sqlite_coordinator: RunningCoordinator, bank: Bank, gid: str, tmp_path: Path
) -> None:
    coord = sqlite_coordinator
    await finished_saga(coord, bank, gid)
    at = ("--coordinator", coord.address)
    listed = await meshctl("tx", "list", "--status", "succeeded", "--mode", "saga", "--json", *at)
    assert listed.code == 0, listed.err
    assert gid in [tx["gid"] for tx in listed.json()["transactions"]]  # type: ignore[index]
    shown = await meshctl("tx", "show", gid, "--json", *at)  # Query needs the admin token (or mesh)
    assert shown.code == 0, shown.err
    tx = shown.json()
    assert tx["status"] == "STATUS_SUCCEEDED"  # type: ignore[index]
    ops = {op["op"]: op for op in tx["ops"]}  # type: ignore[index]
    assert (ops["action"]["status"], ops["action"]["attempts"]) == ("succeeded", 1)
    assert ops["compensate"]["status"] != "succeeded"
    table = await meshctl("tx", "show", gid, *at)
    assert table.code == 0
    assert gid in table.out and "history" in table.out and "SUCCEEDED" in table.out
    stats = await meshctl("tx", "stats", "--json", *at)
    assert stats.code == 0, stats.err
    counts = {(c["mode"], c["status"]): int(c["count"]) for c in stats.json()["counts"]}  # type: ignore[index]
    assert counts[("MODE_SAGA", "STATUS_SUCCEEDED")] >= 1


async def test_tx_repairs_a_stuck_transaction_and_the_history_names_the_operator(
    sqlite_coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    coord = sqlite_coordinator
    await stuck_tcc(coord, bank, gid)
    at = ("--coordinator", coord.address)
    stuck = await meshctl("tx", "stuck", "--json", *at)
    assert stuck.code == 0, stuck.err
    assert gid in [tx["gid"] for tx in stuck.json()["transactions"]]  # type: ignore[index]
    table = await meshctl("tx", "stuck", *at)
    assert gid[:8] in table.out
    paused = await meshctl("tx", "pause", gid, "--reason", "vendor down", "--actor", "oncall-ann", *at)
    assert paused.code == 0, paused.err
    assert "PauseRetry" in paused.out
    bank._faults.clear()
    while_paused = await meshctl("tx", "retry", gid, *at)
    assert while_paused.code == 1
    assert "paused" in while_paused.err
    resumed = await meshctl("tx", "resume", gid, "--reason", "vendor back", "--actor", "oncall-ann", *at)
    assert resumed.code == 0, resumed.err
    final = await wait_final(coord, gid)
    assert final.status == pb.STATUS_SUCCEEDED
    admin = [(e.actor, e.detail) for e in final.history if e.kind == "admin"]
    assert admin[:2] == [("oncall-ann", "pause: vendor down"), ("oncall-ann", "resume: vendor back")]


async def test_tx_fail_gives_up_on_a_stuck_confirm(
    sqlite_coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    coord = sqlite_coordinator
    await stuck_tcc(coord, bank, gid)
    at = ("--coordinator", coord.address)
    refused = await meshctl("tx", "abort", gid, "--reason", "rollback please", *at)
    assert refused.code == 1
    assert "FAILED_PRECONDITION" in refused.err
    done = await meshctl("tx", "fail", gid, "--reason", "settled by hand", "--json", *at)
    assert done.code == 0, done.err
    assert done.json()["status"] == "STATUS_FAILED"  # type: ignore[index]

    async def failed() -> bool:
        return (await coord.query(gid)).status == pb.STATUS_FAILED

    await wait_for(failed, what="the transaction to be FAILED")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("tx", "show", "no-such-gid-1"), ExitCode.NOT_FOUND, "NOT_FOUND"),
        (("tx", "fail", "no-such-gid-2", "--reason", "x"), ExitCode.NOT_FOUND, "NOT_FOUND"),
        (("tx", "abort", "some-gid"), 2, "--reason"),
        (("tx", "list", "--status", "finished"), 2, "finished"),
        (("tx", "stuck", "--older-than", "soon"), 2, "soon"),
        (("tx", "pause", "bad gid!"), 2, "gid"),
    ],
    ids=["show-unknown", "fail-unknown", "abort-no-reason", "bad-status", "bad-duration", "bad-gid"],
)
async def test_tx_bad_input_and_unknown_gids_exit_non_zero_with_a_message(
    sqlite_coordinator: RunningCoordinator, args: tuple[str, ...], code: int, message: str
) -> None:
    result = await meshctl(*args, "--coordinator", sqlite_coordinator.address)
    assert result.code == code, (result.out, result.err)
    assert message in result.err


async def test_tx_refuses_a_wrong_token_and_an_unreachable_coordinator(
    sqlite_coordinator: RunningCoordinator, tmp_path: Path
) -> None:
    wrong = await meshctl("tx", "stats", "--coordinator", sqlite_coordinator.address, token="not-the-token")
    assert wrong.code == ExitCode.AUTH
    assert "UNAUTHENTICATED" in wrong.err
    missing = await meshctl(
        "tx", "stats", "--coordinator", sqlite_coordinator.address, token=None, data_dir=tmp_path
    )
    assert missing.code == 2
    assert "admin token" in missing.err
    down = await meshctl("tx", "stats", "--coordinator", f"127.0.0.1:{free_port()}")
    assert down.code == 3
    assert "UNAVAILABLE" in down.err


async def test_tx_list_and_show_at_80_columns_print_a_long_gid_whole_on_one_line(
    sqlite_coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    long_gid = f"order-place-{gid}-{gid[:16]}"  # 77 characters
    await finished_saga(sqlite_coordinator, bank, long_gid)
    at = ("--coordinator", sqlite_coordinator.address)
    listed = await meshctl("tx", "list", "--mode", "saga", *at, columns=80)
    assert listed.code == 0, listed.err
    assert any(long_gid in line for line in listed.out.splitlines()), listed.out
    shown = await meshctl("tx", "show", long_gid, *at, columns=80)
    assert shown.code == 0, shown.err
    assert long_gid in shown.out.splitlines()
    assert all(len(line) <= 80 for line in shown.out.splitlines())
    wide = await meshctl("tx", "list", "--mode", "saga", "--wide", *at, columns=80)
    assert wide.code == 0, wide.err
    assert "created (UTC)" in wide.out and "mode" in wide.out


async def test_tx_show_takes_the_token_option(
    sqlite_coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await finished_saga(sqlite_coordinator, bank, gid)
    at = ("--coordinator", sqlite_coordinator.address)
    shown = await meshctl("tx", "show", gid, "--json", "--token", ADMIN_TOKEN, *at, token=None)
    assert shown.code == 0, shown.err
    assert shown.json()["gid"] == gid  # type: ignore[index]
    for command in (("list",), ("stuck",), ("stats",)):
        result = await meshctl("tx", *command, "--json", "--token", ADMIN_TOKEN, *at, token=None)
        assert result.code == 0, (command, result.err)


async def test_tx_json_prints_int64_as_numbers_and_zero_fields(
    sqlite_coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    await finished_saga(sqlite_coordinator, bank, gid)
    at = ("--coordinator", sqlite_coordinator.address)
    stats = await meshctl("tx", "stats", "--json", *at)
    assert stats.code == 0, stats.err
    doc = stats.json()
    assert isinstance(doc, dict)
    assert doc["stuck"] == 0 and doc["paused"] == 0  # zero fields present, as numbers
    assert all(isinstance(c["count"], int) for c in doc["counts"])
    shown = await meshctl("tx", "show", gid, "--json", *at)
    tx = shown.json()
    assert isinstance(tx, dict)
    assert isinstance(tx["version"], int) and tx["version"] > 0
    assert tx["retry_paused"] is False and tx["reason"] == ""


async def test_status_of_given_addresses_reports_each_health(sqlite_coordinator: RunningCoordinator) -> None:
    up = await meshctl("status", "--coordinator", sqlite_coordinator.address, "--json")
    assert up.code == ExitCode.OK, up.err
    assert up.json() == {
        "healthy": True,
        "services": [{"service": "coordinator", "address": sqlite_coordinator.address, "health": "SERVING"}],
    }
    closed = f"127.0.0.1:{free_port()}"
    mixed = await meshctl("status", "--coordinator", sqlite_coordinator.address, "--order", closed)
    assert mixed.code == ExitCode.UNAVAILABLE
    assert "SERVING" in mixed.out and "UNREACHABLE" in mixed.out and closed in mixed.out
