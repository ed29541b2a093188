"""meshctl audit plumbing: where addresses and the token come from, JSON and table output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from meshctl.__main__ import build_app
from meshctl.audit import checks
from meshctl.audit.checks import run_checks
from meshctl.audit.cli import (
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_VIOLATION,
    exit_code,
    resolve_addresses,
    resolve_token,
)
from meshctl.audit.clients import AddressError, MeshAddresses
from meshctl.audit.gather import AuditOutcome
from meshctl.audit.render import outcome_json, print_outcome
from meshctl.stack import layout, stackfile
from meshctl.stack.stackfile import KIND_SERVICE, ProcEntry, StackState
from tests.unit.meshctl.test_audit_checks import in_flight, world


@pytest.fixture(autouse=True)
def _no_peer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("COORDINATOR", "ORDER", "STOCK", "PAY", "POINTS"):
        monkeypatch.delenv(f"MESH_PEERS__{key}", raising=False)
    monkeypatch.delenv("MESH_ADMIN__TOKEN", raising=False)


def _write_stack(data_dir: Path, base_port: int) -> None:
    procs = [
        ProcEntry(s.name, KIND_SERVICE, 1, None, layout.address(base_port, s), None, "log")
        for s in layout.SERVICES
    ]
    stackfile.save(data_dir, StackState(str(data_dir), base_port, "now", 1, True, procs))


def test_addresses_come_from_the_data_directory_stack(tmp_path: Path) -> None:
    _write_stack(tmp_path, 41000)
    found = resolve_addresses(tmp_path, order="10.0.0.1:9000")
    assert found == MeshAddresses(
        coordinator="127.0.0.1:41000",
        order="10.0.0.1:9000",
        stock="127.0.0.1:41002",
        pay="127.0.0.1:41003",
        points="127.0.0.1:41004",
    )


def test_peer_environment_beats_the_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_stack(tmp_path, 41000)
    monkeypatch.setenv("MESH_PEERS__STOCK", "stock.internal:50052")
    assert resolve_addresses(tmp_path).stock == "stock.internal:50052"


def test_explicit_data_directory_without_stack_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AddressError, match="no stack is running"):
        resolve_addresses(tmp_path, order="127.0.0.1:1")


def test_every_address_given_needs_no_stack(tmp_path: Path) -> None:
    given = {
        k: f"127.0.0.1:{i + 1}" for i, k in enumerate(("coordinator", "order", "stock", "pay", "points"))
    }
    assert resolve_addresses(tmp_path, **given) == MeshAddresses(**given)


def test_bad_address_is_an_error(tmp_path: Path) -> None:
    _write_stack(tmp_path, 41000)
    with pytest.raises(AddressError, match="not host:port"):
        resolve_addresses(tmp_path, pay="nowhere")


def test_default_layout_when_nothing_is_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_addresses(None) == MeshAddresses.for_base_port(layout.DEFAULT_BASE_PORT)


def test_token_from_option_environment_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_token(None, tmp_path) == ""
    (tmp_path / "admin.token").write_text("from-file\n")
    assert resolve_token(None, tmp_path) == "from-file"
    monkeypatch.setenv("MESH_ADMIN__TOKEN", "from-env")
    assert resolve_token(None, tmp_path) == "from-env"
    assert resolve_token("given", tmp_path) == "given"


def test_passing_outcome_json_and_exit_code() -> None:
    outcome = AuditOutcome(world(), run_checks(world()), attempts=1)
    doc = outcome_json(outcome)
    assert doc["ok"] is True
    assert doc["all_pass"] is True
    assert doc["at_rest"] is True
    assert [c["result"] for c in doc["checks"]] == ["PASS"] * len(checks.CHECKS)
    assert doc["checks"][0]["numbers"]["initial"] == 15
    json.dumps(doc)
    assert exit_code(outcome) == EXIT_OK


def test_violation_outcome_json_table_and_exit_code() -> None:
    report = world()
    report.points.negative_accounts = 1
    outcome = AuditOutcome(report, run_checks(report), attempts=3)
    doc = outcome_json(outcome)
    assert doc["ok"] is False
    failing = [c for c in doc["checks"] if c["result"] == "FAIL"]
    assert [c["key"] for c in failing] == ["points.non_negative"]
    assert failing[0]["violation_count"] == 1
    assert exit_code(outcome) == EXIT_VIOLATION
    console = Console(record=True, width=160)
    print_outcome(console, outcome)
    text = console.export_text()
    assert "FAIL" in text
    assert "1 account(s) with a negative balance" in text
    assert "audit FAILED: 1 invariant(s) violated" in text


def test_in_flight_outcome_is_not_a_violation() -> None:
    report = world(in_flight())
    report.stock.skus[0].redis_reserved = 3
    outcome = AuditOutcome(report, run_checks(report), attempts=1)
    assert exit_code(outcome) == EXIT_OK
    assert outcome_json(outcome)["all_pass"] is False
    console = Console(record=True, width=160)
    print_outcome(console, outcome)
    assert "not judged: transactions were in flight" in console.export_text()


def test_cli_without_stack_exits_unavailable_with_a_clear_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["audit", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == EXIT_UNREACHABLE
    assert "no stack is running" in result.output
