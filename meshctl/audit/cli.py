"""``meshctl audit``: check the invariants of DESIGN.md section 8 across every service and the coordinator.

Exit codes (:mod:`meshctl.exitcodes`): 0 every invariant holds (or could not be judged while
transactions were in flight), 1 an invariant is violated, 2 bad input (a malformed address, an unknown
option), 3 a service (or the stack) cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from meshctl import progress
from meshctl.audit.checks import all_ok
from meshctl.audit.clients import PROCESS_NAMES, AddressError, MeshAddresses, MeshClients
from meshctl.audit.gather import AttemptHook, AuditOutcome, ServiceUnreachable, audit_until_settled
from meshctl.audit.model import CheckResult, Verdict
from meshctl.audit.render import outcome_json, print_outcome
from meshctl.exitcodes import ExitCode
from meshctl.stack import stackfile
from meshctl.stack.cli import JsonOut
from meshctl.stack.endpoints import EndpointError, admin_token, service_address
from meshkit.runtime.clock import Clock, SystemClock

EXIT_OK = ExitCode.OK
EXIT_VIOLATION = ExitCode.FAILED
EXIT_USAGE = ExitCode.USAGE
EXIT_UNREACHABLE = ExitCode.UNAVAILABLE
DEFAULT_DATA_DIR = Path(".mesh")
DEFAULT_WAIT_SECONDS = 10.0

Address = Annotated[
    str | None, typer.Option(help="host:port (default: MESH_PEERS__<SVC>, else the data directory's stack)")
]


class NoStack(AddressError):
    """No address was given and the data directory holds no running stack."""


def resolve_addresses(data_dir: Path | None, **explicit: str | None) -> MeshAddresses:
    """Each address from its option, else ``MESH_PEERS__*``, else the data directory's stack, else 50050.

    (The rules of :mod:`meshctl.stack.endpoints`, shared with ``meshctl tx``.) ``data_dir`` None means the
    default ``.mesh``; an explicit data directory without a running stack is an error unless every
    address was given.
    """
    directory = data_dir if data_dir is not None else DEFAULT_DATA_DIR
    if (
        data_dir is not None
        and stackfile.load(data_dir) is None
        and not all(explicit.get(k) for k in PROCESS_NAMES)
    ):
        raise NoStack(
            f"no stack is running in {data_dir} (no {stackfile.STACK_FILE}); start one with "
            "meshctl up, or give every address (--coordinator/--order/--stock/--pay/--points)"
        )
    try:
        resolved = {
            key: service_address(process, directory, explicit.get(key))
            for key, process in PROCESS_NAMES.items()
        }
    except EndpointError as exc:
        raise AddressError(str(exc)) from None
    return MeshAddresses(**resolved)


def resolve_token(token: str | None, data_dir: Path | None) -> str:
    """The admin token (``--token``, ``MESH_ADMIN__TOKEN``, ``<data-dir>/admin.token``); '' when none."""
    try:
        return admin_token(data_dir if data_dir is not None else DEFAULT_DATA_DIR, token)
    except EndpointError:
        return ""


def exit_code(outcome: AuditOutcome) -> int:
    """0 when no invariant is violated, else 1."""
    return EXIT_OK if all_ok(outcome.results) else EXIT_VIOLATION


async def run_audit(
    addresses: MeshAddresses, token: str, *, wait_seconds: float, as_json: bool, clock: Clock
) -> int:
    """Gather, check (repeating for up to ``wait_seconds`` until all pass), print; returns the exit code."""
    async with MeshClients(addresses, token) as clients:
        try:
            with progress.shown("gathering every service's audit", enabled=not as_json) as step:
                outcome = await audit_until_settled(
                    clients,
                    clock,
                    wait_seconds=wait_seconds,
                    on_attempt=_attempt_reporter(step, wait_seconds),
                )
        except ServiceUnreachable as exc:
            report_unreachable(exc, as_json=as_json)
            return EXIT_UNREACHABLE
    if as_json:
        print(json.dumps(outcome_json(outcome), indent=2))
    else:
        print_outcome(Console(), outcome)
    return exit_code(outcome)


def _attempt_reporter(step: progress.Progress, wait_seconds: float) -> AttemptHook:
    def report(attempt: int, results: list[CheckResult], left_seconds: float) -> None:
        waiting = [r.key for r in results if r.verdict is not Verdict.PASS]
        step(
            f"audit attempt {attempt}: {len(waiting)} of {len(results)} checks not passing yet "
            f"({', '.join(waiting)}); again for up to {left_seconds:.1f} of {wait_seconds:g} s"
        )

    return report


def report_unreachable(exc: ServiceUnreachable, *, as_json: bool) -> None:
    """Say which services could not be audited (JSON on stdout too, for scripts)."""
    err = Console(stderr=True, soft_wrap=True)
    for problem in exc.problems:
        err.print(f"[red]error:[/red] {problem}", highlight=False)
    if as_json:
        print(json.dumps({"ok": False, "error": "unreachable", "problems": exc.problems}, indent=2))


def audit(  # noqa: PLR0917 - typer maps each parameter to an option
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="the stack to audit (addresses and admin token); default .mesh"),
    ] = None,
    coordinator: Address = None,
    order: Address = None,
    stock: Address = None,
    pay: Address = None,
    points: Address = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="coordinator admin token (default: MESH_ADMIN__TOKEN or <data-dir>/admin.token)"
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="seconds to keep re-checking until every invariant passes"),
    ] = DEFAULT_WAIT_SECONDS,
    as_json: JsonOut = False,
) -> None:
    """Check the invariants across all services and the coordinator (exit 1: violated, 3: unreachable)."""
    resolved = data_dir.resolve() if data_dir is not None else None
    try:
        addresses = resolve_addresses(
            resolved, coordinator=coordinator, order=order, stock=stock, pay=pay, points=points
        )
    except AddressError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_UNREACHABLE if isinstance(exc, NoStack) else EXIT_USAGE) from None
    code = asyncio.run(
        run_audit(
            addresses,
            resolve_token(token, resolved),
            wait_seconds=wait,
            as_json=as_json,
            clock=SystemClock(),
        )
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``audit`` to ``app``."""
    app.command("audit")(audit)
