"""A ``traceparent`` is validated and used in one form: stripped and lower-cased; zero ids are invalid.

Review item "traceparent validated in one form, used in another": the raw value used to be kept after a
check of its normalized form, so the trace id was sliced from the wrong offset and forwarded headers
failed validation downstream.
"""

from __future__ import annotations

import pytest

from coordinator.api.convert import options_input
from meshkit.observability.logctx import (
    normalized_traceparent,
    seeded_trace_id,
    trace_id_of,
    valid_traceparent,
)
from meshkit.rpc.client_trace import continued
from meshkit.tx.branchcall import child_traceparent
from meshkit.tx.context import read_metadata
from meshpb.coordinator.v1 import coordinator_pb2 as pb

TRACE = "ab" * 16
SPAN = "c" * 16
NORMAL = f"00-{TRACE}-{SPAN}-01"
RAW = f" 00-{TRACE.upper()}-{SPAN.upper()}-01\t"


def test_traceparent_read_from_metadata_is_stripped_and_lower_cased() -> None:
    _, parent = read_metadata([("traceparent", RAW)])
    assert parent == NORMAL
    assert trace_id_of(parent) == TRACE


def test_traceparent_forwarded_from_a_normalized_one_stays_valid_and_keeps_the_trace() -> None:
    _, parent = read_metadata([("traceparent", RAW)])
    forwarded = continued(parent)
    assert valid_traceparent(forwarded)
    assert trace_id_of(forwarded) == TRACE
    assert forwarded != parent


def test_traceparent_of_a_branch_call_continues_a_non_normalized_parent() -> None:
    child = child_traceparent(RAW, "gid-1")
    assert normalized_traceparent(child) == child
    assert trace_id_of(child) == TRACE


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{'0' * 16}-01",  # zero parent id
        f"00-{'0' * 32}-{SPAN}-01",  # zero trace id
        f"ff-{TRACE}-{SPAN}-01",  # version ff
        f"00-{TRACE}-{SPAN}",
        "garbage",
    ],
)
def test_traceparent_invalid_per_w3c_is_dropped_and_a_derived_trace_used(value: str) -> None:
    assert not valid_traceparent(value)
    assert normalized_traceparent(value) == ""
    assert read_metadata([("traceparent", value)]) == (None, "")
    assert trace_id_of(child_traceparent(value, "gid-1")) == seeded_trace_id("gid-1")


def test_traceparent_named_in_the_options_is_stored_normalized() -> None:
    options = pb.TxOptions(headers={"traceparent": RAW.strip(), "x-tenant": "acme"})
    assert options_input(options).headers == {"traceparent": NORMAL, "x-tenant": "acme"}


def test_traceparent_of_the_caller_joins_the_options_only_when_they_name_none() -> None:
    assert options_input(pb.TxOptions(), NORMAL).headers == {"traceparent": NORMAL}
    named = f"00-{'1' * 32}-{SPAN}-01"
    assert options_input(pb.TxOptions(headers={"traceparent": named}), NORMAL).headers == {
        "traceparent": named
    }
