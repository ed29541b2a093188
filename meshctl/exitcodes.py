"""The one exit-code table of every ``meshctl`` command (README "CLI", ``meshctl --help``).

Commands raise ``typer.Exit(ExitCode.X)``; typer itself exits 2 on a usage error, which is why bad
input checked by meshctl uses the same code.
"""

from __future__ import annotations

from enum import IntEnum

import grpc


class ExitCode(IntEnum):
    """What a ``meshctl`` exit status means."""

    OK = 0
    FAILED = 1  # a check failed (audit, status, demo) or the server refused the action
    USAGE = 2  # bad input: typer's usage errors, a bad option value, INVALID_ARGUMENT
    UNAVAILABLE = 3  # a server (or the local stack) could not be reached or did not answer
    NOT_FOUND = 4  # the named transaction (or other object) does not exist
    AUTH = 5  # the admin token was refused (UNAUTHENTICATED, PERMISSION_DENIED)
    INTERRUPTED = 130  # stopped by SIGINT / SIGTERM


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "a check failed or the action was refused",
    ExitCode.USAGE: "usage error or bad input (nothing was changed)",
    ExitCode.UNAVAILABLE: "a server or the local stack is unreachable / unavailable",
    ExitCode.NOT_FOUND: "not found (e.g. an unknown gid)",
    ExitCode.AUTH: "the admin token was refused",
    ExitCode.INTERRUPTED: "interrupted (SIGINT/SIGTERM)",
}

_BY_STATUS: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.FAILED,
    grpc.StatusCode.ABORTED: ExitCode.FAILED,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.FAILED,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.USAGE,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.AUTH,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.AUTH,
}


def for_status(code: grpc.StatusCode | None) -> ExitCode:
    """The exit code of a failed RPC (UNAVAILABLE for codes that say the server did not do its job)."""
    return _BY_STATUS.get(code, ExitCode.UNAVAILABLE) if code is not None else ExitCode.UNAVAILABLE


def epilog() -> str:
    """The exit-code table as ``meshctl --help`` shows it (one line per code)."""
    lines = [f"{int(code):>3}  {meaning}" for code, meaning in MEANINGS.items()]
    return "Exit codes:\n\n" + "\n\n".join(lines)
