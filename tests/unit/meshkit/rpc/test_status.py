"""meshkit.rpc.status: domain errors -> gRPC status codes (servers) and back (clients)."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

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
from meshkit.rpc.status import INTERNAL_DETAILS, code_by_name, error_from_rpc, error_from_status, status_of

SC = grpc.StatusCode


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (NotFound("order 7"), SC.NOT_FOUND),
        (AlreadyExists("sku a"), SC.ALREADY_EXISTS),
        (FailedPrecondition("CREATED -> SHIPPED"), SC.FAILED_PRECONDITION),
        (BranchOngoing("try still running"), SC.FAILED_PRECONDITION),
        (BranchFailure("out of stock"), SC.ABORTED),
        (Unauthenticated("no token"), SC.UNAUTHENTICATED),
        (ResourceExhausted("rate"), SC.RESOURCE_EXHAUSTED),
    ],
)
def test_domain_error_maps_to_its_code(exc: MeshError, code: grpc.StatusCode) -> None:
    status = status_of(exc)
    assert status.code is code
    assert status.details == str(exc)
    assert not status.is_internal


def test_invalid_argument_names_the_field() -> None:
    status = status_of(InvalidArgument("items[3].quantity", "must be 1..10000"))
    assert status.code is SC.INVALID_ARGUMENT
    assert status.details == "items[3].quantity: must be 1..10000"


def test_transient_error_answers_the_code_it_names() -> None:
    assert status_of(TransientError("slow", code="DEADLINE_EXCEEDED")).code is SC.DEADLINE_EXCEEDED
    assert status_of(TransientError("down")).code is SC.UNAVAILABLE


def test_transient_error_with_unknown_code_name_is_unavailable() -> None:
    assert status_of(TransientError("odd", code="NOT_A_CODE")).code is SC.UNAVAILABLE


def test_unexpected_exception_is_internal_without_leaking_details() -> None:
    status = status_of(RuntimeError("password=hunter2 in a stack trace"))
    assert status.code is SC.INTERNAL
    assert status.details == INTERNAL_DETAILS
    assert status.is_internal


def test_not_implemented_is_unimplemented() -> None:
    assert status_of(NotImplementedError("Method not implemented!")).code is SC.UNIMPLEMENTED


def test_code_by_name_is_case_insensitive_with_default() -> None:
    assert code_by_name("aborted") is SC.ABORTED
    assert code_by_name("nope", default=SC.INTERNAL) is SC.INTERNAL


def test_aborted_becomes_branch_failure() -> None:
    err = error_from_status(SC.ABORTED, "insufficient stock for sku a")
    assert isinstance(err, BranchFailure)
    assert str(err) == "insufficient stock for sku a"


def test_failed_precondition_becomes_branch_ongoing() -> None:
    assert isinstance(error_from_status(SC.FAILED_PRECONDITION, "not yet"), BranchOngoing)


def test_invalid_argument_round_trips_the_field() -> None:
    original = InvalidArgument("x-mesh-op", "must be one of try, confirm")
    status = status_of(original)
    err = error_from_status(status.code, status.details)
    assert isinstance(err, InvalidArgument)
    assert (err.field, err.message) == ("x-mesh-op", "must be one of try, confirm")


def test_invalid_argument_without_field_names_the_request() -> None:
    err = error_from_status(SC.INVALID_ARGUMENT, "garbage")
    assert isinstance(err, InvalidArgument)
    assert err.field == "request"


def test_not_found_becomes_not_found() -> None:
    assert isinstance(error_from_status(SC.NOT_FOUND, "gid g1"), NotFound)


@pytest.mark.parametrize(
    "code",
    [
        SC.UNAVAILABLE,
        SC.DEADLINE_EXCEEDED,
        SC.INTERNAL,
        SC.UNKNOWN,
        SC.RESOURCE_EXHAUSTED,
        SC.UNAUTHENTICATED,
    ],
)
def test_other_codes_become_transient_with_the_code(code: grpc.StatusCode) -> None:
    err = error_from_status(code, "")
    assert isinstance(err, TransientError)
    assert err.code == code.name
    assert status_of(err).code is code


def test_error_from_rpc_reads_code_and_details_of_a_failed_call() -> None:
    exc = grpc.aio.AioRpcError(SC.ABORTED, grpc.aio.Metadata(), grpc.aio.Metadata(), details="sold out")
    err = error_from_rpc(exc)
    assert isinstance(err, BranchFailure)
    assert str(err) == "sold out"
