"""Domain errors shared by every service. Domain code raises these; it never imports grpc.

The one place that maps them to gRPC status codes is :mod:`meshkit.rpc.status`; the reverse mapping
(a status code a branch call answered -> one of these) lives there too.
"""

from __future__ import annotations


class MeshError(Exception):
    """Base of every saga-mesh domain error."""


class InvalidArgument(MeshError):
    """Bad input; ``field`` names what is wrong. Raised before any state changes."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(MeshError):
    """The named thing does not exist."""


class AlreadyExists(MeshError):
    """Creating something that exists, where that is not idempotent."""


class FailedPrecondition(MeshError):
    """The request is valid but the current state forbids it (e.g. an illegal order transition)."""


class Unauthenticated(MeshError):
    """Missing or wrong credentials."""


class ResourceExhausted(MeshError):
    """A limit or rate was exceeded; retry later."""


class BranchFailure(MeshError):
    """A branch's business failure: the transaction must roll back; never retried (``ABORTED``)."""


class BranchOngoing(MeshError):
    """The branch cannot answer yet; ask again later (``FAILED_PRECONDITION``)."""


class TransientError(MeshError):
    """A failure that may pass (unavailable, deadline, internal); the caller retries with backoff."""

    def __init__(self, message: str, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        self.code = code
