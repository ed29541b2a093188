"""Conversions between ``meshpb.coordinator.v1`` messages and the engine's model (used by the servicers)."""

from __future__ import annotations

from collections.abc import Iterable

from coordinator.engine.commands import OptionsInput, PrepareCommand, SubmitCommand, TxView
from coordinator.engine.model import BranchOp, BranchSpec, Event, GlobalTx, TxOptions, branches_of
from meshkit.observability.logctx import normalized_traceparent
from meshkit.rpc.pbtime import timestamp
from meshkit.tx.context import TRACEPARENT_KEY
from meshpb.coordinator.v1 import coordinator_pb2 as pb


def options_input(options: pb.TxOptions, traceparent: str | None = None) -> OptionsInput:
    """Requested options (zeros = defaults); the caller's ``traceparent`` joins the branch headers.

    So branch calls continue the initiator's trace, unless the options name a ``traceparent`` of
    their own (kept normalized when well-formed; branch calls replace a malformed one).
    """
    headers = dict(options.headers)
    named = normalized_traceparent(headers.get(TRACEPARENT_KEY, ""))
    if named:
        headers[TRACEPARENT_KEY] = named
    if traceparent and TRACEPARENT_KEY not in headers:
        headers[TRACEPARENT_KEY] = traceparent
    return OptionsInput(
        timeout_ms=options.timeout_ms,
        retry_interval_ms=options.retry_interval_ms,
        retry_limit=options.retry_limit,
        request_timeout_ms=options.request_timeout_ms,
        concurrent=options.concurrent,
        headers=headers,
    )


def branch_spec(branch: pb.Branch) -> BranchSpec:
    """A declared branch."""
    return BranchSpec(
        branch_id=branch.branch_id,
        action=branch.action,
        confirm=branch.confirm,
        cancel=branch.cancel,
        payload=bytes(branch.payload),
        depends_on=tuple(branch.depends_on),
    )


def prepare_command(request: pb.PrepareRequest, traceparent: str | None = None) -> PrepareCommand:
    """The engine command of a ``Prepare``."""
    return PrepareCommand(
        gid=request.gid,
        mode=request.mode,
        options=options_input(request.options, traceparent),
        branches=tuple(branch_spec(b) for b in request.branches),
        query_prepared=request.query_prepared,
    )


def submit_command(request: pb.SubmitRequest, traceparent: str | None = None) -> SubmitCommand:
    """The engine command of a ``Submit``."""
    return SubmitCommand(
        gid=request.gid,
        mode=request.mode,
        options=options_input(request.options, traceparent),
        branches=tuple(branch_spec(b) for b in request.branches),
    )


def options_pb(options: TxOptions) -> pb.TxOptions:
    """Effective options as a message."""
    return pb.TxOptions(
        timeout_ms=options.timeout_ms,
        retry_interval_ms=options.retry_interval_ms,
        retry_limit=options.retry_limit,
        request_timeout_ms=options.request_timeout_ms,
        concurrent=options.concurrent,
        headers=dict(options.headers),
    )


def branch_pb(branch: BranchSpec) -> pb.Branch:
    """A declared branch as a message."""
    return pb.Branch(
        branch_id=branch.branch_id,
        action=branch.action,
        confirm=branch.confirm,
        cancel=branch.cancel,
        payload=branch.payload,
        depends_on=list(branch.depends_on),
    )


def op_pb(op: BranchOp) -> pb.BranchOp:
    """One branch op as a message."""
    return pb.BranchOp(
        branch_id=op.branch_id,
        op=op.op.value,
        target=op.target,
        status=op.status.value,
        attempts=op.attempts,
        last_error=op.last_error,
        next_attempt_at=timestamp(op.next_attempt_at),
        updated_at=timestamp(op.updated_at),
    )


def event_pb(event: Event) -> pb.Event:
    """One history entry as a message."""
    return pb.Event(
        at=timestamp(event.at),
        kind=event.kind.value,
        from_status=int(event.from_status) if event.from_status is not None else 0,  # type: ignore[arg-type]
        to_status=int(event.to_status) if event.to_status is not None else 0,  # type: ignore[arg-type]
        branch_id=event.branch_id,
        op=event.op,
        actor=event.actor,
        detail=event.detail,
    )


def transaction_pb(
    tx: GlobalTx, ops: Iterable[BranchOp] = (), history: Iterable[Event] = ()
) -> pb.Transaction:
    """A transaction as a message (``history`` empty for lists)."""
    op_list = list(ops)
    return pb.Transaction(
        gid=tx.gid,
        mode=int(tx.mode),  # type: ignore[arg-type]
        status=int(tx.status),  # type: ignore[arg-type]
        reason=tx.reason,
        ops=[op_pb(op) for op in op_list],
        history=[event_pb(e) for e in history],
        options=options_pb(tx.options),
        branches=[branch_pb(b) for b in branches_of(tx.mode, op_list)],
        query_prepared=tx.query_prepared,
        created_at=timestamp(tx.created_at),
        updated_at=timestamp(tx.updated_at),
        timeout_at=timestamp(tx.timeout_at),
        finished_at=timestamp(tx.finished_at),
        next_run_at=timestamp(tx.next_run_at),
        retry_paused=tx.retry_paused,
        stuck=tx.stuck,
        version=tx.version,
    )


def view_pb(view: TxView) -> pb.Transaction:
    """A queried transaction (ops and history) as a message."""
    return transaction_pb(view.tx, view.ops, view.history)
