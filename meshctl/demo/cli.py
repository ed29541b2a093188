"""``meshctl demo`` (what ``make demo`` runs): start the stack, tell the story, audit, stop the stack.

The stack is started detached (``run_up``), the story of :mod:`meshctl.demo.story` is told against it,
``meshctl audit`` must pass at the end, and the stack is stopped whatever happened (also on Ctrl-C or
SIGTERM). Exit code 0 only when every step and the audit passed. With ``--json`` stdout carries one
JSON document (steps, audit, verdict); the stack's own output goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from meshctl.audit.checks import all_pass
from meshctl.audit.clients import AddressError, MeshAddresses, MeshClients
from meshctl.audit.gather import AuditOutcome, ServiceUnreachable, audit_until_settled
from meshctl.audit.render import outcome_json, print_outcome
from meshctl.demo.narrate import Narrator
from meshctl.demo.story import DEFAULT_WAIT_SECONDS, DemoStory
from meshctl.exitcodes import ExitCode
from meshctl.stack import layout, stackfile
from meshctl.stack.cli import BasePort, DataDir, JsonOut, run_down, run_up
from meshctl.stack.endpoints import TOKEN_FILE
from meshkit.runtime.clock import Clock, SystemClock

EXIT_FAILED = ExitCode.FAILED
AUDIT_WAIT_SECONDS = 60.0


class _Tale:
    """What the demo found out, for the final verdict and the JSON document."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.story_ok = False
        self.audit: AuditOutcome | None = None
        self.error = ""

    @property
    def ok(self) -> bool:
        return self.story_ok and self.audit is not None and all_pass(self.audit.results) and not self.error

    def to_json(self, narrator: Narrator, down_code: int) -> dict[str, Any]:
        return {
            "ok": self.ok and down_code == 0,
            "run_id": self.run_id,
            "steps": [s.to_json() for s in narrator.steps],
            "audit": outcome_json(self.audit) if self.audit is not None else None,
            "error": self.error,
            "stack_stopped": down_code == 0,
        }


async def _tell(data_dir: Path, narrator: Narrator, tale: _Tale, clock: Clock, wait_seconds: float) -> None:
    state = stackfile.load(data_dir)
    if state is None:
        raise AddressError(f"the stack in {data_dir} is gone")
    token = (data_dir / TOKEN_FILE).read_text().strip()
    async with MeshClients(MeshAddresses.from_stack(state), token) as clients:
        story = DemoStory(clients, narrator, clock, tale.run_id, wait_seconds=wait_seconds)
        tale.story_ok = await story.run()
        if not narrator.as_json:
            narrator.console.print(Text(""), Rule("[bold]meshctl audit[/bold]"))
        try:
            tale.audit = await audit_until_settled(clients, clock, wait_seconds=AUDIT_WAIT_SECONDS)
        except ServiceUnreachable as exc:
            tale.error = f"audit: {exc}"
            narrator.fail(tale.error)
            return
    if not narrator.as_json:
        print_outcome(narrator.console, tale.audit)


async def run_demo(
    base_port: int,
    data_dir: Path,
    *,
    as_json: bool,
    clock: Clock,
    run_id: str | None = None,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> int:
    """Up (detached), story, audit, down; returns 0 only when all of it went well."""
    console = Console()
    narrator = Narrator(console, as_json=as_json)
    tale = _Tale(run_id or secrets.token_hex(3))

    def quiet() -> contextlib.AbstractContextManager[object]:
        """In JSON mode the stack commands' output goes to stderr: stdout holds one document."""
        return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()

    with quiet():
        up_code = await run_up(base_port, data_dir, detach=True, as_json=as_json, clock=clock)
    if up_code != 0:
        if as_json:
            print(
                json.dumps({"ok": False, "run_id": tale.run_id, "error": "the stack did not start"}, indent=2)
            )
        return up_code
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await _tell(data_dir, narrator, tale, clock, wait_seconds)
    except (AddressError, OSError) as exc:
        tale.error = str(exc)
        narrator.fail(tale.error)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        with quiet():
            down_code = await run_down(data_dir, as_json=as_json, clock=clock)
    return _verdict(console, narrator, tale, down_code)


def _verdict(console: Console, narrator: Narrator, tale: _Tale, down_code: int) -> int:
    if narrator.as_json:
        print(json.dumps(tale.to_json(narrator, down_code), indent=2))
    else:
        failed = [f"{s.number}. {s.title}" for s in narrator.steps if not s.ok]
        if tale.ok and down_code == 0:
            console.print("[bold green]demo finished: every step passed and the audit holds[/bold green]")
        else:
            reasons = [*failed]
            if tale.audit is not None and not all_pass(tale.audit.results):
                reasons.append("the audit")
            if down_code != 0:
                reasons.append("stopping the stack")
            console.print(f"[bold red]demo failed:[/bold red] {'; '.join(reasons) or tale.error}")
    return 0 if tale.ok and down_code == 0 else EXIT_FAILED


def demo(
    base_port: BasePort = layout.DEFAULT_BASE_PORT,
    data_dir: DataDir = Path(".mesh"),
    wait: Annotated[
        float, typer.Option("--wait", min=1, help="seconds each asynchronous step may take")
    ] = DEFAULT_WAIT_SECONDS,
    as_json: JsonOut = False,
) -> None:
    """Start the stack, tell the order story, audit it, stop the stack (what make demo runs)."""
    raise typer.Exit(
        asyncio.run(
            run_demo(base_port, data_dir.resolve(), as_json=as_json, clock=SystemClock(), wait_seconds=wait)
        )
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo)
