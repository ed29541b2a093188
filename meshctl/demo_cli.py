"""``meshctl demo``: start the stack detached, show its health, stop it.

Later this drives the scripted order scenario against the running stack; for now it proves the stack
comes up healthy and goes down cleanly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from meshctl import layout
from meshctl.stack_cli import BasePort, DataDir, JsonOut, run_down, run_status, run_up
from meshkit.clock import Clock, SystemClock


async def run_demo(base_port: int, data_dir: Path, *, as_json: bool, clock: Clock) -> int:
    """Up (detached), status, down; returns the first failing step's exit code, else 0."""
    code = await run_up(base_port, data_dir, detach=True, as_json=as_json, clock=clock)
    if code != 0:
        return code
    status_code = await run_status(data_dir, as_json=as_json)
    down_code = await run_down(data_dir, as_json=as_json, clock=clock)
    if not as_json:
        Console().print("demo finished" if status_code == down_code == 0 else "[red]demo failed[/red]")
    return status_code or down_code


def demo(
    base_port: BasePort = layout.DEFAULT_BASE_PORT,
    data_dir: DataDir = Path(".mesh"),
    as_json: JsonOut = False,
) -> None:
    """Run the demo scenario against a freshly started local stack, then stop it."""
    raise typer.Exit(
        asyncio.run(run_demo(base_port, data_dir.resolve(), as_json=as_json, clock=SystemClock()))
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo)
