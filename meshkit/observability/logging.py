"""Structured logging for every process: JSON lines when not on a TTY, a readable line otherwise.

Every record carries ``gid``, ``branch`` and ``op`` of the transaction context being served (from
:data:`meshkit.tx.context.current_tx`), the ``trace_id`` of the caller's trace (from
:data:`meshkit.observability.logctx.current_traceparent`, or OpenTelemetry's current span when tracing is on),
the fields bound with :func:`meshkit.observability.logctx.bound` (the coordinator's ``gid``, say) and any
``extra`` fields the caller passed (e.g. ``order_id``). An explicit ``extra`` wins over the others.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from meshkit.observability.logctx import current_traceparent, log_fields, trace_id_of
from meshkit.observability.redact import redact_urls
from meshkit.settings.config import LogSettings
from meshkit.tx.context import current_tx

CONTEXT_FIELDS = ("gid", "branch", "op", "trace_id")
TraceIds = Callable[[], str]

# C0/C1 controls (newlines, escape sequences) and the Unicode line/paragraph separators.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(match: re.Match[str]) -> str:
    char = match[0]
    return _NAMED_CONTROLS.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape_controls(text: str) -> str:
    r"""``text`` with control characters written as ``\n``, ``\x1b``, ``\u2028``... (one line, no escapes).

    Text lines hold client-chosen values (an order id, a branch target): a raw newline there would
    start a forged line, an escape sequence would rewrite the terminal.
    """
    return _CONTROL_RE.sub(_escape_control, text)


def traceparent_trace_id() -> str:
    """The trace id of the incoming ``traceparent`` of the call being served ("" outside one)."""
    return trace_id_of(current_traceparent.get())


# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName", *CONTEXT_FIELDS}
)


class TxContextFilter(logging.Filter):
    """Adds ``gid``, ``branch``, ``op``, ``trace_id`` and the bound fields to every record.

    ``trace_ids`` gives the current trace id (default: the incoming ``traceparent``'s).
    """

    def __init__(self, trace_ids: TraceIds = traceparent_trace_id) -> None:
        super().__init__()
        self.trace_ids = trace_ids

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the context fields (empty strings outside a transaction); never drops a record."""
        for name, value in log_fields.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "trace_id"):
            record.trace_id = self.trace_ids()
        ctx = current_tx.get()
        if not hasattr(record, "gid"):
            record.gid = ctx.gid if ctx else ""
        if not hasattr(record, "branch"):
            record.branch = ctx.branch_id if ctx else ""
        if not hasattr(record, "op"):
            record.op = ctx.op.value if ctx else ""
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields passed to the log call through ``extra``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, "")
            if value:
                out[name] = value
        out.update(extra_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """A readable line: ``time level logger message [gid branch op trace_id key=value ...]``.

    The message and every field value have their control characters escaped (:func:`escape_controls`),
    so one record is one line; only a traceback or stack follows on lines of its own.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging.Formatter's name
        """The first line, with the message escaped."""
        message = record.message
        record.message = escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` with its context and extras appended."""
        line = super().format(record)
        ctx = " ".join(_field(n, getattr(record, n)) for n in CONTEXT_FIELDS if getattr(record, n, ""))
        extras = " ".join(_field(k, v) for k, v in extra_fields(record).items())
        tail = " ".join(part for part in (ctx, extras) if part)
        if not tail:
            return line
        head, sep, exc = line.partition("\n")
        return f"{head} [{tail}]{sep}{exc}"


def _field(name: str, value: object) -> str:
    return f"{escape_controls(name)}={escape_controls(str(value))}"


class RedactingFormatter(logging.Formatter):
    """Renders with ``inner``, then hides URL passwords and NATS tokens anywhere in the line."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's line with every URL credential replaced by ``***``."""
        return redact_urls(self._inner.format(record))


def use_json(settings: LogSettings, stream: TextIO) -> bool:
    """JSON when configured so, else when ``stream`` is not a terminal."""
    if settings.json_format is not None:
        return settings.json_format
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def setup_logging(settings: LogSettings, stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger once for this process; returns the installed handler.

    Replaces any handler a previous call installed, so calling it twice is harmless.
    """
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter(JsonFormatter() if use_json(settings, out) else TextFormatter()))
    handler.addFilter(TxContextFilter())
    handler.set_name("meshkit")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "meshkit"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    return handler
