"""The one place mapping domain errors (:mod:`meshkit.errors`) to gRPC status codes, and back.

Servers turn a raised :class:`~meshkit.errors.MeshError` into a status with :func:`status_of`
(the error-mapping interceptor does this for every handler). Clients turn a failed call into a
domain error with :func:`error_from_rpc`, which is how branch results are classified (DESIGN.md
section 3): ``ABORTED`` = business failure, ``FAILED_PRECONDITION`` = not yet, anything else that is
not bad input or a missing thing = transient.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from meshkit.errors import (
    AlreadyExists,
    BranchFailure,
    BranchOngoing,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    NotFound,
    ResourceExhausted,
    TransientError,
    Unauthenticated,
)

INTERNAL_DETAILS = "internal error"

# Order matters only where classes inherit from one another; these are all siblings of MeshError.
_CODE_OF: tuple[tuple[type[MeshError], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (BranchOngoing, grpc.StatusCode.FAILED_PRECONDITION),
    (BranchFailure, grpc.StatusCode.ABORTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """A status code with its details string, ready for ``context.abort(status.code, status.details)``."""

    code: grpc.StatusCode
    details: str

    @property
    def is_internal(self) -> bool:
        """True when the error was not a domain error (the caller should log it with its traceback)."""
        return self.code is grpc.StatusCode.INTERNAL and self.details == INTERNAL_DETAILS


def code_by_name(name: str, default: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> grpc.StatusCode:
    """The status code called ``name`` (e.g. ``"DEADLINE_EXCEEDED"``), ``default`` when there is none."""
    try:
        return grpc.StatusCode[name.upper()]
    except KeyError:
        return default


def status_of(exc: BaseException) -> RpcStatus:
    """The gRPC status a server answers for ``exc``.

    Domain errors map to their code with the error's message as details (for
    :class:`InvalidArgument` that is ``"<field>: <message>"``, so the field is named).
    :class:`TransientError` answers the code it names. Anything else is ``INTERNAL`` with a
    generic details string, so no internals leak to callers; :class:`NotImplementedError` (raised by
    the generated base servicers) is ``UNIMPLEMENTED``.
    """
    if isinstance(exc, NotImplementedError):  # what the generated base servicers raise
        return RpcStatus(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
    if isinstance(exc, TransientError):
        return RpcStatus(code_by_name(exc.code), str(exc))
    for cls, code in _CODE_OF:
        if isinstance(exc, cls):
            return RpcStatus(code, str(exc) or cls.__name__)
    return RpcStatus(grpc.StatusCode.INTERNAL, INTERNAL_DETAILS)


def error_from_status(code: grpc.StatusCode, details: str) -> MeshError:
    """The domain error a client sees for a call that ended with ``code`` and ``details``.

    ``ABORTED`` -> :class:`BranchFailure`, ``FAILED_PRECONDITION`` -> :class:`BranchOngoing`,
    ``INVALID_ARGUMENT`` -> :class:`InvalidArgument` (field parsed from ``"<field>: <message>"``),
    ``NOT_FOUND`` -> :class:`NotFound`, any other code -> :class:`TransientError` carrying the code name.
    """
    if code is grpc.StatusCode.ABORTED:
        return BranchFailure(details)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return BranchOngoing(details)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        field, sep, message = details.partition(": ")
        return InvalidArgument(field, message) if sep else InvalidArgument("request", details)
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFound(details)
    return TransientError(details or code.name, code=code.name)


def error_from_rpc(exc: grpc.aio.AioRpcError) -> MeshError:
    """The domain error for a failed client call (see :func:`error_from_status`)."""
    return error_from_status(exc.code(), exc.details() or "")
