"""Per-task log fields: the caller's trace and fields such as ``gid`` or ``order_id``, in contextvars.

:data:`current_traceparent` holds the W3C ``traceparent`` of the call being served (the server
interceptor sets it from the incoming metadata); transactions started while serving continue that
trace (:mod:`meshkit.tx.initiator`), and every log record carries its ``trace_id``.
:func:`bound` adds fields to every record logged inside a block (the coordinator binds the ``gid``
of the transaction it drives), :func:`tag` for the rest of the current task (a handler tags the
``order_id`` it serves). Both cost one contextvar read per record, nothing per call otherwise.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
NO_FIELDS: Mapping[str, str] = MappingProxyType({})
TRACEPARENT_KEY = "traceparent"

# The incoming traceparent of the call being served ("" when none or malformed).
current_traceparent: contextvars.ContextVar[str] = contextvars.ContextVar("current_traceparent", default="")
# Fields bound by :func:`bound` for every record logged in the current task.
log_fields: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_fields", default=NO_FIELDS
)


def normalized_traceparent(value: str) -> str:
    """``value`` stripped and lower-cased if it is a well-formed W3C ``traceparent``, else "".

    Well-formed: version 00-fe, non-zero trace id and non-zero parent id. Store, forward and log only
    this form, so that slicing out the trace id and comparing trace ids work.
    """
    text = value.strip().lower()
    match = _TRACEPARENT_RE.fullmatch(text)
    if match is None or match[1] == "ff" or match[2] == "0" * 32 or match[3] == "0" * 16:
        return ""
    return text


def valid_traceparent(value: str) -> bool:
    """True for a well-formed W3C ``traceparent`` (see :func:`normalized_traceparent`)."""
    return bool(normalized_traceparent(value))


def trace_id_of(traceparent: str) -> str:
    """The 32-hex trace id of a well-formed ``traceparent`` (``00-<trace>-<span>-<flags>``), else ""."""
    return traceparent[3:35] if len(traceparent) >= 55 else ""


def seeded_trace_id(seed: str) -> str:
    """The trace id of a transaction whose initiator sent no ``traceparent``: derived from its gid."""
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Add ``fields`` to every log record made inside the block (nested blocks add to the outer ones)."""
    token = log_fields.set({**log_fields.get(), **fields})
    try:
        yield
    finally:
        log_fields.reset(token)


def tag(**fields: str) -> None:
    """Add ``fields`` to every record logged for the rest of the current task.

    For a gRPC handler: its task ends with the call, and the call's own log line (written by the
    server interceptor after the handler returned) carries them too.
    """
    log_fields.set({**log_fields.get(), **fields})


@contextmanager
def continuing(traceparent: str) -> Iterator[None]:
    """Treat ``traceparent`` as the current trace inside the block (e.g. a transaction's own trace)."""
    token = current_traceparent.set(traceparent)
    try:
        yield
    finally:
        current_traceparent.reset(token)
