"""``meshctl`` at 80 columns, ``--json`` numbers, the exit-code table, ``--version`` and progress lines."""

from __future__ import annotations

import io
import json
import socket
from importlib.metadata import version
from pathlib import Path

import grpc
import pytest
from rich.console import Console
from typer.testing import CliRunner

from meshctl import exitcodes, progress
from meshctl.__main__ import build_app
from meshctl.exitcodes import ExitCode
from meshctl.jsonout import message_dict
from meshctl.tx import render
from meshpb.coordinator.v1 import coordinator_pb2 as pb

NARROW = {"COLUMNS": "80", "LINES": "40"}
LONG_ERROR = (
    "UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50052:\n"
    "Failed to connect to remote host: Connection refused " + "and more " * 20
)


def _tx(gid: str) -> pb.Transaction:
    tx = pb.Transaction(gid=gid, mode=pb.MODE_TCC, status=pb.STATUS_SUBMITTED, stuck=True)
    tx.created_at.FromMilliseconds(1_700_000_000_000)
    tx.ops.add(branch_id="stock", op="try", status="succeeded", attempts=1)
    tx.ops.add(
        branch_id="stock",
        op="confirm",
        status="pending",
        attempts=7,
        last_error=LONG_ERROR,
        target="127.0.0.1:50052/meshpb.stock.v1.Stock/ConfirmReserve",
    )
    event = tx.history.add(kind="state", to_status=pb.STATUS_SUBMITTED, actor="coordinator/r1")
    event.detail = "every try succeeded; confirming " + "now " * 30
    event.at.FromMilliseconds(1_700_000_000_500)
    return tx


def _narrow() -> Console:
    return Console(width=80, record=True, force_terminal=False)


def _lines(console: Console) -> list[str]:
    return console.export_text().splitlines()


def test_list_at_80_columns_shows_a_long_gid_whole_on_one_line() -> None:
    gid = "order-place-" + "0123456789abcdef" * 3 + "-tail"  # 65 characters
    console = _narrow()
    console.print(render.transactions_table("transactions", [_tx(gid), _tx("short-gid")], width=80))
    lines = _lines(console)
    assert any(gid in line for line in lines), lines
    assert all(len(line) <= 80 for line in lines)


def test_list_at_80_columns_cuts_the_error_to_one_line() -> None:
    gid = "tcc-medium-length-gid-0001"
    console = _narrow()
    console.print(render.transactions_table("transactions", [_tx(gid)], width=80))
    lines = _lines(console)
    row = [line for line in lines if gid in line]
    assert len(row) == 1
    assert "UNAVAILABLE" in row[0] and row[0].rstrip().endswith("…")
    assert not any("Connection refused" in line for line in lines)  # the rest of the error is cut
    assert len([line for line in lines if line.strip()]) == 4  # title, header, rule, the one row


def test_show_at_80_columns_keeps_the_gid_whole_and_errors_on_one_line() -> None:
    gid = "msg-cancel-" + "fedcba9876543210" * 5  # 91 characters: wider than the terminal
    console = _narrow()
    render.print_transaction(console, _tx(gid))
    lines = _lines(console)
    assert gid in lines
    ops = [line for line in lines if line.startswith("stock") and "confirm" in line]
    assert len(ops) == 1 and "UNAVAILABLE" in ops[0]
    assert all(len(line) <= 80 for line in lines if line != gid)


def test_wide_shows_every_column_and_the_whole_error() -> None:
    gid = "tcc-wide-0001"
    console = _narrow()
    table = render.transactions_table("transactions", [_tx(gid)], width=80, wide=True)
    render.widen_for(console, table)
    console.print(table)
    text = console.export_text()
    for header in ("gid", "mode", "status", "flags", "ops", "att", "last error", "created (UTC)"):
        assert header in text
    assert " ".join(LONG_ERROR.split()) in text
    assert "2023-11-14 22:13:20.000" in text


def test_json_has_int64_as_numbers_and_every_field() -> None:
    stats = pb.StatsResponse(stuck=0, paused=3)
    stats.counts.add(mode=pb.MODE_SAGA, status=pb.STATUS_SUCCEEDED, count=2**40 + 1)
    doc = message_dict(stats)
    assert doc == {
        "counts": [{"mode": "MODE_SAGA", "status": "STATUS_SUCCEEDED", "count": 2**40 + 1}],
        "stuck": 0,
        "paused": 3,
        "oldest_unfinished": None,
    }
    tx = message_dict(pb.Transaction(gid="12345", version=9))
    assert tx["gid"] == "12345"  # a numeric-looking string stays a string
    assert tx["version"] == 9
    assert tx["reason"] == "" and tx["ops"] == [] and tx["retry_paused"] is False
    assert tx["finished_at"] is None
    assert json.loads(json.dumps(tx)) == tx


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (grpc.StatusCode.NOT_FOUND, ExitCode.NOT_FOUND),
        (grpc.StatusCode.FAILED_PRECONDITION, ExitCode.FAILED),
        (grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
        (grpc.StatusCode.UNAUTHENTICATED, ExitCode.AUTH),
        (grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, ExitCode.UNAVAILABLE),
    ],
)
def test_rpc_status_maps_to_one_exit_code(status: grpc.StatusCode, code: ExitCode) -> None:
    assert exitcodes.for_status(status) is code


def test_help_epilog_lists_every_exit_code() -> None:
    result = CliRunner().invoke(build_app(), ["--help"], env=NARROW)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for code, meaning in exitcodes.MEANINGS.items():
        assert f"{int(code)} {meaning}" in text


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(build_app(), ["--version"])
    assert result.exit_code == ExitCode.OK
    assert result.output.strip() == f"meshctl {version('saga-mesh')}"


def test_typo_option_is_a_usage_error_and_unreachable_audit_is_3(tmp_path: Path) -> None:
    app = build_app()
    typo = CliRunner().invoke(app, ["audit", "--wiat", "1"])
    assert typo.exit_code == ExitCode.USAGE
    bad = CliRunner().invoke(app, ["audit", "--coordinator", "no-port"])
    assert bad.exit_code == ExitCode.USAGE
    assert "not host:port" in bad.output
    port = _closed_port()
    addresses = [f"--{n}" for n in ("coordinator", "order", "stock", "pay", "points")]
    args = [a for flag in addresses for a in (flag, f"127.0.0.1:{port}")]
    down = CliRunner().invoke(app, ["audit", "--wait", "0", "--token", "t", *args])
    assert down.exit_code == ExitCode.UNAVAILABLE, down.output
    assert "UNAVAILABLE" in down.output


def test_status_of_an_unreachable_address_exits_3(tmp_path: Path) -> None:
    port = _closed_port()
    result = CliRunner().invoke(build_app(), ["status", "--address", f"127.0.0.1:{port}", "--json"])
    assert result.exit_code == ExitCode.UNAVAILABLE
    doc = json.loads(result.stdout)
    assert doc == {
        "healthy": False,
        "services": [
            {"service": f"127.0.0.1:{port}", "address": f"127.0.0.1:{port}", "health": "UNREACHABLE"}
        ],
    }
    bad = CliRunner().invoke(build_app(), ["status", "--order", "nowhere"])
    assert bad.exit_code == ExitCode.USAGE


def test_status_without_stack_is_unavailable(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "no stack is running" in result.output


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress.shown("starting", stream=stream) as step:
        step("waiting for 5 services")
    assert stream.getvalue().splitlines() == ["... starting", "... waiting for 5 services"]
    quiet = io.StringIO()
    with progress.shown("starting", enabled=False, stream=quiet) as step:
        step("nothing shown")
    assert quiet.getvalue() == ""


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
