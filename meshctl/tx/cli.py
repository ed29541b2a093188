"""``meshctl tx``: see and repair global transactions through the coordinator's Admin service.

Exit codes (:mod:`meshctl.exitcodes`): 0 done; 1 refused (action not allowed in the transaction's
state); 2 bad input (checked before anything is sent, or INVALID_ARGUMENT); 3 the coordinator could
not be reached; 4 unknown gid; 5 the admin token was refused.
"""

from __future__ import annotations

import asyncio
import getpass
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import grpc.aio
import typer
from google.protobuf.duration_pb2 import Duration
from rich.console import Console

from meshctl import exitcodes
from meshctl.exitcodes import ExitCode
from meshctl.stack.endpoints import EndpointError, admin_token, service_address
from meshctl.tx import render as tx_render
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

T = TypeVar("T")

CALL_TIMEOUT_SECONDS = 10.0
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")

Coordinator = Annotated[
    str | None,
    typer.Option(
        "--coordinator", help="host:port (default: from MESH_PEERS__COORDINATOR or --data-dir's stack)"
    ),
]
DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the local stack's directory (address and admin.token)")
]
Token = Annotated[
    str | None,
    typer.Option("--token", help="admin token (default: MESH_ADMIN__TOKEN or <data-dir>/admin.token)"),
]
JsonOut = Annotated[
    bool, typer.Option("--json", help="print JSON for scripts (every field; int64 as numbers)")
]
Wide = Annotated[
    bool, typer.Option("--wide", help="every column in full (lines may exceed the terminal's width)")
]
Gid = Annotated[str, typer.Argument(help="the global transaction id")]
Reason = Annotated[str, typer.Option("--reason", help="why (written to the transaction's history)")]
Actor = Annotated[str | None, typer.Option("--actor", help="who acts (default: the local user name)")]

app = typer.Typer(help="Inspect and repair global transactions (Admin service).", no_args_is_help=True)


class Target:
    """Where and how to reach the coordinator, resolved from options once per command."""

    def __init__(
        self, coordinator: str | None, data_dir: Path, token: str | None, *, need_token: bool = True
    ):
        self.address = service_address("coordinator", data_dir, coordinator)
        self.token = admin_token(data_dir, token) if need_token else ""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The admin call's metadata."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` on stderr; the exit to raise."""
    _stderr().print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def parse_duration(text: str) -> Duration:
    """``90``, ``90s``, ``5m``, ``2h``, ``1d``, ``250ms`` as a Duration; BadParameter otherwise."""
    match = DURATION_RE.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 5m, 2h or 1d")
    seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    duration = Duration()
    duration.FromMilliseconds(round(seconds * 1000))
    return duration


def parse_enum(text: str | None, enum: Any, prefix: str, field: str) -> int:
    """A case-insensitive enum name without its prefix (``submitted``) as its number; 0 for None."""
    if text is None:
        return 0
    name = f"{prefix}{text.strip().upper()}"
    known: list[str] = list(enum.keys())
    if name not in known or name.endswith("UNSPECIFIED"):
        names = ", ".join(k.removeprefix(prefix).lower() for k in known if not k.endswith("UNSPECIFIED"))
        raise typer.BadParameter(f"{text!r} is not one of {names}", param_hint=field)
    return int(enum.Value(name))


def run(target: Target, call: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``call(admin_stub, coordinator_stub)`` on a channel to the coordinator; failures become exits."""

    async def body() -> T:
        async with grpc.aio.insecure_channel(target.address) as channel:
            admin = coordinator_pb2_grpc.AdminStub(channel)
            coordinator = coordinator_pb2_grpc.CoordinatorStub(channel)
            return await call(admin, coordinator)

    try:
        return asyncio.run(body())
    except grpc.aio.AioRpcError as error:
        code = exitcodes.for_status(error.code())
        where = f" (coordinator {target.address})" if code is ExitCode.UNAVAILABLE else ""
        raise fail(f"{error.code().name}: {error.details()}{where}", code) from None


def _target(coordinator: str | None, data_dir: Path, token: str | None, *, need_token: bool = True) -> Target:
    try:
        return Target(coordinator, data_dir, token, need_token=need_token)
    except EndpointError as error:
        raise fail(str(error), ExitCode.USAGE) from None


def _print_list(title: str, txs: list[pb.Transaction], message: Any, *, as_json: bool, wide: bool) -> None:
    if as_json:
        print(tx_render.as_json(message))
        return
    console = Console()
    # A gid longer than the terminal is still printed whole (the terminal wraps it, rich would cut it).
    console.width = max(console.width, *(len(tx.gid) for tx in txs), 1)
    table = tx_render.transactions_table(title, txs, width=console.width, wide=wide)
    if wide:
        tx_render.widen_for(console, table)
    console.print(table)


@app.command("list")
def list_(
    *,
    status: Annotated[
        str | None, typer.Option("--status", help="prepared|submitted|succeeded|aborting|failed")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="tcc|saga|msg")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="created within this long ago (e.g. 10m)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="page size")] = 50,
    cursor: Annotated[str, typer.Option("--cursor", help="next page (printed after a full page)")] = "",
    coordinator: Coordinator = None,
    data_dir: DataDir = Path(".mesh"),
    token: Token = None,
    as_json: JsonOut = False,
    wide: Wide = False,
) -> None:
    """Transactions, newest first, filtered by status, mode and age."""
    request = pb.ListRequest(
        status=parse_enum(status, pb.Status, "STATUS_", "--status"),  # type: ignore[arg-type]
        mode=parse_enum(mode, pb.Mode, "MODE_", "--mode"),  # type: ignore[arg-type]
        cursor=cursor,
        limit=limit,
    )
    if since is not None:
        age = parse_duration(since)
        request.created_after.GetCurrentTime()
        request.created_after.FromMilliseconds(request.created_after.ToMilliseconds() - age.ToMilliseconds())
    target = _target(coordinator, data_dir, token)
    page: pb.ListResponse = run(
        target, lambda admin, _: admin.List(request, metadata=target.metadata(), timeout=CALL_TIMEOUT_SECONDS)
    )
    _print_list("transactions", list(page.transactions), page, as_json=as_json, wide=wide)
    if page.next_cursor and not as_json:
        _stderr().print(f"more: --cursor {page.next_cursor}")


@app.command()
def show(
    gid: Gid,
    *,
    coordinator: Coordinator = None,
    data_dir: DataDir = Path(".mesh"),
    token: Token = None,
    as_json: JsonOut = False,
    wide: Wide = False,
) -> None:
    """One transaction: branches, attempts, last errors, next attempts and the history timeline."""
    target = _target(coordinator, data_dir, token)  # Query is mesh-only or admin (README "Threat model")
    reply: pb.QueryResponse = run(
        target,
        lambda _, coord: coord.Query(
            pb.QueryRequest(gid=gid), metadata=target.metadata(), timeout=CALL_TIMEOUT_SECONDS
        ),
    )
    if as_json:
        print(tx_render.as_json(reply.transaction))
    else:
        tx_render.print_transaction(Console(), reply.transaction, wide=wide)


@app.command()
def stuck(
    *,
    older_than: Annotated[str, typer.Option("--older-than", help="unfinished for at least this long")] = "0s",
    min_attempts: Annotated[
        int,
        typer.Option(
            "--min-attempts", min=0, help="also list ones with an op retried this often (0: flagged only)"
        ),
    ] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 100,
    coordinator: Coordinator = None,
    data_dir: DataDir = Path(".mesh"),
    token: Token = None,
    as_json: JsonOut = False,
    wide: Wide = False,
) -> None:
    """Unfinished transactions flagged stuck (or old and retried often): what needs a person."""
    request = pb.StuckRequest(older_than=parse_duration(older_than), min_attempts=min_attempts, limit=limit)
    target = _target(coordinator, data_dir, token)
    reply: pb.StuckResponse = run(
        target,
        lambda admin, _: admin.Stuck(request, metadata=target.metadata(), timeout=CALL_TIMEOUT_SECONDS),
    )
    _print_list("stuck transactions", list(reply.transactions), reply, as_json=as_json, wide=wide)


@app.command()
def stats(
    coordinator: Coordinator = None,
    data_dir: DataDir = Path(".mesh"),
    token: Token = None,
    as_json: JsonOut = False,
) -> None:
    """Counts by mode and status, stuck and paused counts, age of the oldest unfinished transaction."""
    target = _target(coordinator, data_dir, token)
    reply: pb.StatsResponse = run(
        target,
        lambda admin, _: admin.Stats(
            pb.StatsRequest(), metadata=target.metadata(), timeout=CALL_TIMEOUT_SECONDS
        ),
    )
    if as_json:
        print(tx_render.as_json(reply))
        return
    console = Console()
    console.print(tx_render.stats_table(reply))
    console.print(tx_render.stats_summary(reply), highlight=False)


@dataclass(frozen=True)
class Action:
    """An admin action command: its name, the Admin RPC it calls, its help, whether it needs a reason."""

    name: str
    rpc: str
    help: str
    reason_required: bool = False


ACTIONS = (
    Action("retry", "Retry", "Run the transaction's pending ops now."),
    Action("pause", "PauseRetry", "Stop automatic retries of the transaction until resumed."),
    Action("resume", "ResumeRetry", "Restart automatic retries of the transaction."),
    Action(
        "abort",
        "ForceAbort",
        "Roll back what ran (cancel / compensate); a prepared MSG is decided by its check-back."
        " Refused for a submitted TCC or MSG transaction.",
        reason_required=True,
    ),
    Action(
        "fail",
        "ForceFail",
        "Mark the transaction FAILED without compensation (after settling it by hand).",
        reason_required=True,
    ),
)


def run_action(
    action: Action,
    gid: str,
    *,
    reason: str,
    actor: str | None,
    target: Target,
    as_json: bool,
) -> None:
    """Call the action's Admin RPC on ``gid`` and print the transaction's new state."""
    if action.reason_required and not reason.strip():
        raise fail("--reason is required: say why (it goes to the transaction's history)", ExitCode.USAGE)
    request = pb.AdminActionRequest(gid=gid, reason=reason, actor=actor or f"{getpass.getuser()} (meshctl)")
    reply: pb.AdminActionResponse = run(
        target,
        lambda admin, _: getattr(admin, action.rpc)(
            request, metadata=target.metadata(), timeout=CALL_TIMEOUT_SECONDS
        ),
    )
    if as_json:
        print(tx_render.as_json(reply.transaction))
    else:
        tx = reply.transaction
        Console(soft_wrap=True).print(
            f"{action.rpc}: {tx.gid} is now {tx_render.status_name(tx.status)}", highlight=False, markup=False
        )


def action_command(action: Action) -> Callable[..., None]:
    """The typer command of ``action``."""

    def command(
        gid: Gid,
        *,
        reason: Reason = "",
        actor: Actor = None,
        coordinator: Coordinator = None,
        data_dir: DataDir = Path(".mesh"),
        token: Token = None,
        as_json: JsonOut = False,
    ) -> None:
        target = _target(coordinator, data_dir, token)
        run_action(action, gid, reason=reason, actor=actor, target=target, as_json=as_json)

    command.__doc__ = action.help
    return command


def add_actions(group: typer.Typer) -> None:
    """Add one command per admin action to ``group``."""
    for action in ACTIONS:
        group.command(action.name)(action_command(action))


add_actions(app)


def register(root: typer.Typer) -> None:
    """Add ``tx`` to ``root``."""
    root.add_typer(app, name="tx")
