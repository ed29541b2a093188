"""Request bodies that do not decode: ``INVALID_ARGUMENT`` instead of grpc's ``UNKNOWN``.

grpc calls a method's request deserializer before any interceptor code sees the request; when it raises
(corrupt wire format, invalid UTF-8 in a string field) grpc ends the call with ``UNKNOWN``, which a
branch caller treats as transient and retries forever. :func:`tolerant` wraps the deserializer so a
body that does not decode becomes an :class:`UndecodableBody`, and :func:`decoded` turns that into an
:class:`~meshkit.errors.InvalidArgument` naming ``request body`` inside the interceptor, where it is
mapped, counted and logged like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from meshkit.errors import InvalidArgument

BODY_FIELD = "request body"

Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class UndecodableBody:
    """Stands in for the request of a call whose body did not decode; ``reason`` says why."""

    reason: str


def _reason(exc: DecodeError) -> str:
    # upb says "Error parsing message with type '<T>': <why>"; the type is the method's, keep the why.
    text = str(exc)
    _, sep, why = text.rpartition("': ")
    return why if sep and why else text or "does not decode"


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """``deserializer``, answering :class:`UndecodableBody` instead of raising :class:`DecodeError`."""
    if deserializer is None:
        return None
    inner = deserializer

    def decode(raw: bytes) -> Any:
        try:
            return inner(raw)
        except DecodeError as exc:
            return UndecodableBody(_reason(exc))

    return decode


def decoded(request: Any) -> Any:
    """``request``, or :class:`InvalidArgument` naming the request body when it did not decode."""
    if isinstance(request, UndecodableBody):
        raise InvalidArgument(BODY_FIELD, f"not a valid message: {request.reason}")
    return request
