"""The transaction context a branch call carries, and its conversion to and from gRPC metadata.

Metadata keys (DESIGN.md section 3): ``x-mesh-gid``, ``x-mesh-branch``, ``x-mesh-op``, ``x-mesh-mode``.
This module knows metadata only as (key, value) pairs, so domain code can use it without grpc.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from meshkit.errors import InvalidArgument
from meshkit.observability import logctx

GID_KEY = "x-mesh-gid"
BRANCH_KEY = "x-mesh-branch"
OP_KEY = "x-mesh-op"
MODE_KEY = "x-mesh-mode"
TRACEPARENT_KEY = logctx.TRACEPARENT_KEY

MAX_GID_LEN = 128
MAX_BRANCH_LEN = 64


class Op(StrEnum):
    """Branch operations (the ``x-mesh-op`` values)."""

    TRY = "try"
    CONFIRM = "confirm"
    CANCEL = "cancel"
    ACTION = "action"
    COMPENSATE = "compensate"
    MSG = "msg"


class TxMode(StrEnum):
    """Transaction modes (the ``x-mesh-mode`` values)."""

    TCC = "tcc"
    SAGA = "saga"
    MSG = "msg"


# The operation a rollback op undoes: cancel undoes try, compensate undoes action.
ORIGIN_OF: dict[Op, Op] = {Op.CANCEL: Op.TRY, Op.COMPENSATE: Op.ACTION}

Metadata = Iterable[tuple[str, str | bytes]]


@dataclass(frozen=True, slots=True)
class TxContext:
    """Who is calling a branch: which global transaction, which branch, which operation, which mode."""

    gid: str
    branch_id: str
    op: Op
    mode: TxMode

    def to_metadata(self) -> list[tuple[str, str]]:
        """The ``x-mesh-*`` metadata pairs for this context."""
        return [
            (GID_KEY, self.gid),
            (BRANCH_KEY, self.branch_id),
            (OP_KEY, self.op.value),
            (MODE_KEY, self.mode.value),
        ]

    @property
    def is_rollback(self) -> bool:
        """True for cancel and compensate."""
        return self.op in ORIGIN_OF


CONTEXT_KEYS = (GID_KEY, BRANCH_KEY, OP_KEY, MODE_KEY)
# value -> member: a dict lookup costs less than calling the enum (this runs on every branch call)
_OPS: dict[str, Op] = {o.value: o for o in Op}
_MODES: dict[str, TxMode] = {m.value: m for m in TxMode}
BINARY_SUFFIX = "-bin"

# The operations each mode's branches are called with (the MSG check-back is "msg", its branches "action").
OPS_OF_MODE: dict[TxMode, frozenset[Op]] = {
    TxMode.TCC: frozenset({Op.TRY, Op.CONFIRM, Op.CANCEL}),
    TxMode.SAGA: frozenset({Op.ACTION, Op.COMPENSATE}),
    TxMode.MSG: frozenset({Op.MSG, Op.ACTION}),
}


def _context_key(key: str) -> str | None:
    """The context key ``key`` names (its ``-bin`` form too), ``None`` for any other metadata."""
    name = key.lower()
    if name.endswith(BINARY_SUFFIX):
        name = name[: -len(BINARY_SUFFIX)]
    return name if name in CONTEXT_KEYS else None


def _as_mapping(metadata: Metadata | Mapping[str, str] | None) -> dict[str, str]:
    """The context keys of ``metadata``; each at most once, as text (other metadata is not read)."""
    if metadata is None:
        return {}
    # grpc hands a tuple: test for it before the (slower) abstract Mapping check
    items = metadata if isinstance(metadata, tuple) or not isinstance(metadata, Mapping) else metadata.items()
    out: dict[str, str] = {}
    for key, value in items:
        if key == TRACEPARENT_KEY:  # read along (the first one), so a call's metadata is walked once
            if isinstance(value, str):
                out.setdefault(key, value)
            continue
        name = key if key in CONTEXT_KEYS else _context_key(key)  # the usual case first: it is cheaper
        if name is None:
            continue
        if key.lower() != name:
            raise InvalidArgument(name, f"must be text metadata, not binary ({key.lower()})")
        if name in out:
            raise InvalidArgument(name, "given more than once")
        out[name] = _text(name, value)
    return out


def _text(name: str, value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidArgument(name, "not valid UTF-8") from None


def _check_id(field: str, value: str, limit: int) -> str:
    if not value:
        raise InvalidArgument(field, "missing")
    # A printable character that is a space is " " only (str.isprintable excludes every other one).
    if len(value) > limit or not value.isprintable() or " " in value:
        raise InvalidArgument(field, f"must be 1..{limit} printable characters without spaces")
    return value


def from_metadata(metadata: Metadata | Mapping[str, str] | None) -> TxContext | None:
    """Read the context from call metadata; ``None`` when the call carries no ``x-mesh-gid``.

    Raises :class:`InvalidArgument` naming the key when the context is present but malformed: a key
    given twice, a binary (``-bin``) context key, an unknown op or mode, an op the mode never calls.
    """
    return _context(_as_mapping(metadata))


def read_metadata(metadata: Metadata | Mapping[str, str] | None) -> tuple[TxContext | None, str]:
    """The context (as :func:`from_metadata`) and the ``traceparent`` of a call, normalized ("" if none).

    A malformed ``traceparent`` is dropped (the call then starts a trace of its own), never refused.
    """
    md = _as_mapping(metadata)
    parent = md.get(TRACEPARENT_KEY, "")
    return _context(md), logctx.normalized_traceparent(parent) if parent else ""


def _context(md: dict[str, str]) -> TxContext | None:
    if GID_KEY not in md:
        return None
    gid = _check_id(GID_KEY, md[GID_KEY], MAX_GID_LEN)
    branch = _check_id(BRANCH_KEY, md.get(BRANCH_KEY, ""), MAX_BRANCH_LEN)
    op = _OPS.get(md.get(OP_KEY, ""))
    if op is None:
        raise InvalidArgument(OP_KEY, f"must be one of {', '.join(o.value for o in Op)}")
    mode = _MODES.get(md.get(MODE_KEY, ""))
    if mode is None:
        raise InvalidArgument(MODE_KEY, f"must be one of {', '.join(m.value for m in TxMode)}")
    if op not in OPS_OF_MODE[mode]:
        allowed = ", ".join(sorted(o.value for o in OPS_OF_MODE[mode]))
        raise InvalidArgument(OP_KEY, f"a {mode.value} transaction calls {allowed}, not {op.value}")
    return TxContext(gid=gid, branch_id=branch, op=op, mode=mode)


def require_context(metadata: Metadata | Mapping[str, str] | None) -> TxContext:
    """Like :func:`from_metadata` but a missing context is an :class:`InvalidArgument`."""
    ctx = from_metadata(metadata)
    if ctx is None:
        raise InvalidArgument(GID_KEY, "branch call without transaction context")
    return ctx


# The context of the call being served, for log records and outgoing calls.
current_tx: contextvars.ContextVar[TxContext | None] = contextvars.ContextVar("current_tx", default=None)
