"""Output of the stack commands: a rich table for people, JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from meshctl.stack.stackfile import KIND_SERVICE, StackState
from meshkit.rpc.health import SERVING

RUNNING = "RUNNING"
STOPPED = "STOPPED"


def stack_rows(state: StackState, health: dict[str, str]) -> list[dict[str, Any]]:
    """One row per process: what it is, where, its pid, whether it runs and its health."""
    rows = []
    for proc in state.processes:
        running = proc.running()
        if not running:
            status = STOPPED
        elif proc.kind == KIND_SERVICE:
            status = health.get(proc.address, "UNKNOWN")
        else:
            status = RUNNING
        rows.append(
            {
                "service": proc.name,
                "kind": proc.kind,
                "address": proc.address,
                "pid": proc.pid,
                "running": running,
                "metrics": f"http://{proc.address.rsplit(':', 1)[0]}:{proc.metrics_port}/metrics"
                if proc.metrics_port
                else "",
                "health": status,
                "log": proc.log,
            }
        )
    return rows


def healthy(rows: list[dict[str, Any]]) -> bool:
    """True when every service answers SERVING and every process runs."""
    return all(r["running"] and r["health"] in (SERVING, RUNNING) for r in rows)


def stack_json(state: StackState, rows: list[dict[str, Any]]) -> str:
    """The status document scripts read."""
    doc = {
        "data_dir": state.data_dir,
        "base_port": state.base_port,
        "started_at": state.started_at,
        "detached": state.detached,
        "healthy": healthy(rows),
        "processes": rows,
    }
    return json.dumps(doc, indent=2)


def print_table(console: Console, state: StackState, rows: list[dict[str, Any]]) -> None:
    """The health table."""
    table = Table(
        title=f"saga-mesh stack in {state.data_dir} (started {state.started_at})",
        caption="metrics: http://127.0.0.1:<metrics>/metrics; logs: <data-dir>/logs/<service>.log",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("service", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("pid", no_wrap=True, justify="right")
    table.add_column("metrics", no_wrap=True, justify="right")
    table.add_column("health", no_wrap=True)
    for row in rows:
        color = "green" if row["health"] in (SERVING, RUNNING) else "red"
        table.add_row(
            row["service"],
            row["address"],
            str(row["pid"]),
            row["metrics"].removesuffix("/metrics").rpartition(":")[2] if row["metrics"] else "",
            f"[{color}]{row['health']}[/{color}]",
        )
    console.print(table)


def address_json(rows: list[dict[str, str]]) -> str:
    """``meshctl status --address ...`` for scripts: each server's health and whether all serve."""
    return json.dumps({"healthy": all(r["health"] == SERVING for r in rows), "services": rows}, indent=2)


def print_address_table(console: Console, rows: list[dict[str, str]]) -> None:
    """The health of each given server."""
    table = Table(title="health", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("service", "address", "health"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        color = "green" if row["health"] == SERVING else "red"
        table.add_row(row["service"], row["address"], f"[{color}]{row['health']}[/{color}]")
    console.print(table)
