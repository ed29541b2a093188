"""``meshctl up``, ``down`` and ``status``: the local stack (DESIGN.md section 9).

The ``run_*`` functions do the work and return an exit code, so ``demo`` can chain them.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from meshctl import progress
from meshctl.exitcodes import ExitCode
from meshctl.stack import layout, render, stackfile
from meshctl.stack.endpoints import EndpointError, check_address
from meshctl.stack.launcher import StackError, StackLauncher, preflight, stop_recorded
from meshctl.stack.stackfile import StackLocked, StackState
from meshkit.rpc.health import SERVING, UNREACHABLE, check_all
from meshkit.runtime.clock import Clock, SystemClock

WATCH_SECONDS = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

BasePort = Annotated[
    int, typer.Option("--base-port", help="coordinator on P, order P+1, stock P+2, pay P+3, points P+4")
]
DataDir = Annotated[Path, typer.Option("--data-dir", help="SQLite files, logs, secrets and stack.json")]
JsonOut = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of a table")]
Address = Annotated[str | None, typer.Option(help="host:port of this service")]


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def _err(message: str) -> None:
    _stderr().print(f"[red]error:[/red] {message}", highlight=False)


async def _health_of(state: StackState) -> dict[str, str]:
    targets = [p.address for p in state.services() if p.running()]
    return await check_all(targets) if targets else {}


async def show_status(state: StackState, as_json: bool, console: Console) -> bool:
    """Print the health table (or JSON) of ``state``; True when every service is SERVING."""
    rows = render.stack_rows(state, await _health_of(state))
    if as_json:
        print(render.stack_json(state, rows))
    else:
        render.print_table(console, state, rows)
    return render.healthy(rows)


def health_code(statuses: list[str]) -> ExitCode:
    """0 when all SERVING; 3 when one is unreachable or stopped; 1 when one answers something else."""
    if all(s in (SERVING, render.RUNNING) for s in statuses):
        return ExitCode.OK
    if any(s in (UNREACHABLE, render.STOPPED) for s in statuses):
        return ExitCode.UNAVAILABLE
    return ExitCode.FAILED


async def start_stack(launcher: StackLauncher, *, detached: bool, show_progress: bool = False) -> StackState:
    """Preflight under the data directory's lock, then start; raises StackError / StackLocked.

    With ``show_progress`` each step is shown on stderr while it runs.
    """
    shown = progress.shown(f"starting a stack in {launcher.data_dir}", enabled=show_progress)
    with shown as step, stackfile.locked(launcher.data_dir):
        preflight(launcher.data_dir, launcher.base_port)
        return await launcher.start(detached=detached, progress=step)


async def _foreground(launcher: StackLauncher, stop: asyncio.Event, clock: Clock) -> int:
    """Keep the stack up until ``stop`` is set (SIGINT/SIGTERM) or one of its processes dies; then stop it."""
    code = ExitCode.OK
    while not stop.is_set():
        dead = launcher.exited()
        if dead:
            _err(f"process(es) exited: {', '.join(dead)}; stopping the stack")
            code = ExitCode.FAILED
            break
        await clock.sleep(WATCH_SECONDS)
    left = await launcher.stop()
    stackfile.remove(launcher.data_dir)
    if left:
        _err(f"still running after stop: {', '.join(left)}")
        return ExitCode.FAILED
    _stderr().print("stack stopped")
    return code


async def run_up(base_port: int, data_dir: Path, *, detach: bool, as_json: bool, clock: Clock) -> int:
    """``meshctl up`` (``data_dir`` absolute); returns the exit code.

    SIGINT/SIGTERM are handled from the first moment: during start-up they cancel it (everything
    started so far is stopped), afterwards (foreground) they stop the stack.
    """
    launcher = StackLauncher(data_dir, base_port, clock, with_console=True)
    stop = asyncio.Event()
    starting = asyncio.ensure_future(start_stack(launcher, detached=detach, show_progress=not as_json))

    def on_signal() -> None:
        stop.set()
        starting.cancel()  # no-op once started

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        return await _up(launcher, starting, stop, detach=detach, as_json=as_json, clock=clock)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _up(
    launcher: StackLauncher,
    starting: asyncio.Future[StackState],
    stop: asyncio.Event,
    *,
    detach: bool,
    as_json: bool,
    clock: Clock,
) -> int:
    console = Console()
    try:
        state = await starting
    except asyncio.CancelledError:
        _err("interrupted during start-up; everything started was stopped")
        return ExitCode.INTERRUPTED
    except StackLocked:
        _err(f"another meshctl is starting a stack in {launcher.data_dir}")
        return ExitCode.FAILED
    except StackError as exc:
        _err(str(exc))
        if exc.details:
            _stderr().print(exc.details, markup=False, highlight=False)
        return ExitCode.FAILED
    await show_status(state, as_json, console)
    web = state.console()
    if web is not None and not as_json:
        console.print(
            f"console: {web.address} (log in with the token in {launcher.data_dir / 'admin.token'})",
            highlight=False,
        )
    if detach:
        if not as_json:
            console.print(f"detached; stop with: meshctl down --data-dir {launcher.data_dir}")
        return 0
    if not as_json:
        console.print("running in the foreground; Ctrl-C stops the stack")
    return await _foreground(launcher, stop, clock)


async def run_down(data_dir: Path, *, as_json: bool, clock: Clock) -> int:
    """``meshctl down`` (``data_dir`` absolute); returns the exit code."""
    state = stackfile.load(data_dir)
    if state is None:
        _err(f"no stack is running in {data_dir} (no {stackfile.STACK_FILE})")
        return ExitCode.UNAVAILABLE
    if not state.running():
        stackfile.remove(data_dir)
        _err(f"no stack is running in {data_dir} (its processes had exited; stale stack file removed)")
        return ExitCode.UNAVAILABLE
    left = await stop_recorded(state, clock)
    if left:
        _err("still running: " + ", ".join(f"{p.name} (pid {p.pid})" for p in left))
        return ExitCode.FAILED
    stackfile.remove(data_dir)
    stopped = [p.name for p in state.processes]
    if as_json:
        print(json.dumps({"data_dir": str(data_dir), "stopped": stopped, "still_running": []}))
    else:
        Console().print(f"stopped {len(stopped)} processes in {data_dir}: {', '.join(stopped)}")
    return 0


async def run_status(data_dir: Path, *, as_json: bool) -> int:
    """``meshctl status`` of the local stack (``data_dir`` absolute); see :func:`health_code`."""
    state = stackfile.load(data_dir)
    if state is None:
        _err(f"no stack is running in {data_dir} (no {stackfile.STACK_FILE})")
        return ExitCode.UNAVAILABLE
    rows = render.stack_rows(state, await _health_of(state))
    if as_json:
        print(render.stack_json(state, rows))
    else:
        render.print_table(Console(), state, rows)
    return health_code([r["health"] for r in rows])


async def run_address_status(targets: dict[str, str], *, as_json: bool) -> int:
    """``meshctl status --coordinator H:P ...``: the health of each given ``name -> address``."""
    health = await check_all(list(dict.fromkeys(targets.values())))
    rows = [{"service": name, "address": a, "health": health[a]} for name, a in targets.items()]
    if as_json:
        print(render.address_json(rows))
    else:
        render.print_address_table(Console(), rows)
    return health_code([r["health"] for r in rows])


def status_targets(named: dict[str, str | None], addresses: list[str]) -> dict[str, str]:
    """``service -> host:port`` from the per-service options and ``--address``; EndpointError if bad."""
    targets = {name: check_address(a, name) for name, a in named.items() if a}
    for address in addresses:
        targets.setdefault(check_address(address, "--address"), address)
    return targets


def up(
    base_port: BasePort = layout.DEFAULT_BASE_PORT,
    data_dir: DataDir = Path(".mesh"),
    detach: Annotated[
        bool, typer.Option("--detach", help="return once ready; stop with meshctl down")
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Start the whole mesh locally (Redis, NATS, coordinator, the four services and the web console)."""
    raise typer.Exit(
        asyncio.run(
            run_up(base_port, data_dir.resolve(), detach=detach, as_json=as_json, clock=SystemClock())
        )
    )


def down(data_dir: DataDir = Path(".mesh"), as_json: JsonOut = False) -> None:
    """Stop the stack running in the data directory."""
    raise typer.Exit(asyncio.run(run_down(data_dir.resolve(), as_json=as_json, clock=SystemClock())))


def status(  # noqa: PLR0917 - typer maps each parameter to an option
    data_dir: DataDir = Path(".mesh"),
    as_json: JsonOut = False,
    coordinator: Address = None,
    order: Address = None,
    stock: Address = None,
    pay: Address = None,
    points: Address = None,
    address: Annotated[
        list[str] | None, typer.Option("--address", help="host:port of any gRPC server (repeatable)")
    ] = None,
) -> None:
    """Health of the local stack, or (given addresses) of each given server, local or not.

    Exit 0 when all answer SERVING, 3 when one is unreachable, 1 when one answers otherwise.
    """
    named = {"coordinator": coordinator, "order": order, "stock": stock, "pay": pay, "points": points}
    try:
        targets = status_targets(named, address or [])
    except EndpointError as exc:
        _err(str(exc))
        raise typer.Exit(ExitCode.USAGE) from None
    if targets:
        raise typer.Exit(asyncio.run(run_address_status(targets, as_json=as_json)))
    raise typer.Exit(asyncio.run(run_status(data_dir.resolve(), as_json=as_json)))


def register(app: typer.Typer) -> None:
    """Add ``up``, ``down`` and ``status`` (alias ``health``) to ``app``."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("health", hidden=True)(status)
