"""Progress of a long command on stderr: a rich spinner on a terminal, plain lines otherwise.

stdout stays free for the command's result (tables, ``--json``). ``--json`` runs get no progress.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from rich.console import Console
from rich.status import Status


class Progress(Protocol):
    """Something that is told what a command is doing now."""

    def __call__(self, step: str) -> None:
        """Show ``step`` as the current step."""


def silent(step: str) -> None:
    """A :class:`Progress` that shows nothing (``--json``, or a caller that reports by itself)."""


class _Lines:
    """One plain line per step (a pipe, a log file, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, step: str) -> None:
        print(f"... {step}", file=self._stream, flush=True)


class _Spinner:
    """A rich status line that is replaced by each step."""

    def __init__(self, status: Status) -> None:
        self._status = status

    def __call__(self, step: str) -> None:
        self._status.update(step)


@contextmanager
def shown(first: str, *, enabled: bool = True, stream: TextIO | None = None) -> Iterator[Progress]:
    """A :class:`Progress` on ``stream`` (stderr) for the duration of the block, starting at ``first``."""
    out = stream if stream is not None else sys.stderr
    if not enabled:
        yield silent
        return
    if not out.isatty():
        lines = _Lines(out)
        lines(first)
        yield lines
        return
    with Console(file=out).status(first) as status:
        yield _Spinner(status)
