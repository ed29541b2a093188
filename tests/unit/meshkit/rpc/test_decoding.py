"""meshkit.rpc.decoding: a body that does not decode becomes INVALID_ARGUMENT naming the request body."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from meshkit.rpc.decoding import BODY_FIELD, UndecodableBody, decoded, tolerant
from meshkit.rpc.status import status_of
from meshpb.points.v1 import points_pb2


def test_item7_a_valid_body_decodes_as_before() -> None:
    decode = tolerant(points_pb2.GrantRequest.FromString)
    assert decode is not None
    raw = points_pb2.GrantRequest(user_id="u", amount=5, out_trade_no="t").SerializeToString()
    assert decoded(decode(raw)) == points_pb2.GrantRequest(user_id="u", amount=5, out_trade_no="t")
    assert tolerant(None) is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [(b"\xff\xff\xff", "Wire format was corrupt"), (b"\x0a\x02\xc3\x28", "String field had bad UTF-8")],
    ids=["corrupt", "invalid-utf8"],
)
def test_item7_an_undecodable_body_is_invalid_argument_naming_the_body(raw: bytes, why: str) -> None:
    decode = tolerant(points_pb2.GrantRequest.FromString)
    assert decode is not None
    stand_in = decode(raw)
    assert stand_in == UndecodableBody(why)
    with pytest.raises(InvalidArgument) as info:
        decoded(stand_in)
    assert info.value.field == BODY_FIELD
    status = status_of(info.value)
    assert status.code.name == "INVALID_ARGUMENT"
    assert status.details == f"request body: not a valid message: {why}"


def test_item7_other_deserializer_errors_still_raise() -> None:
    def broken(raw: bytes) -> None:
        raise RuntimeError("a bug")

    decode = tolerant(broken)
    assert decode is not None
    with pytest.raises(RuntimeError):
        decode(b"")
