"""Hypothesis strategies for the RPC fuzz test: request bodies and call metadata built from descriptors.

Every RPC of every saga-mesh service is found through the generated descriptors, so a new RPC (or a new
field) is fuzzed without touching this module. A body is either a message built field by field with
edge values (empty, huge, negative, unknown enum numbers, out-of-range timestamps), a plausible message
(every field set from a few shared ids and small amounts, so calls meet each other's state), or raw wire
bytes no valid client would send: random bytes, invalid UTF-8 in a string field, 10,000 repeated entries, a
body just over 64 KiB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from meshpb.coordinator.v1 import coordinator_pb2
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from meshpb.points.v1 import points_pb2
from meshpb.stock.v1 import stock_pb2

# The process serving each proto package's services (MeshAddresses field names).
MODULES = {
    "coordinator": coordinator_pb2,
    "order": order_pb2,
    "stock": stock_pb2,
    "pay": pay_pb2,
    "points": points_pb2,
}
MAX_DEPTH = 3
REPEATED_FLOOD = 10_000
JUST_OVER_64K = 64 * 1024 + 1
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"ok\xed\xa0\x80", b"\xf8\x88\x80\x80\x80")
INT32 = (0, 1, -1, 100, 10_000, 10_001, 2**31 - 1, -(2**31))
INT64 = (*INT32, 2**53, 2**63 - 1, -(2**63))
PLAUSIBLE_IDS = ("fz-1", "fz-2", "order-1", "m-1", "sku-1")
STRINGS = ("", "x", "a" * 129, "a" * 5000, " ", "ü", "\x00", "-", "order-1", "127.0.0.1:1/a.B/C")

Wire = tuple[str, bytes]  # (kind of body, serialized bytes)


@dataclass(frozen=True)
class Rpc:
    """One RPC: where it is served and its request type."""

    process: str
    service: str
    method: str
    request: Descriptor

    @property
    def path(self) -> str:
        """The gRPC method path ``/package.Service/Method``."""
        return f"/{self.service}/{self.method}"


def all_rpcs() -> list[Rpc]:
    """Every RPC of every service, from the generated descriptors."""
    found: list[Rpc] = []
    for process, module in MODULES.items():
        for service in module.DESCRIPTOR.services_by_name.values():
            method: MethodDescriptor
            for method in service.methods:
                found.append(Rpc(process, service.full_name, method.name, method.input_type))
    return found


# --------------------------------------------------------------------------- wire encoding


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` as a length-delimited record (string, bytes, message, packed)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _fields(desc: Descriptor, wanted: Callable[[FieldDescriptor], bool]) -> list[FieldDescriptor]:
    return [f for f in desc.fields if wanted(f)]


def _is_string(f: FieldDescriptor) -> bool:
    return f.type == FieldDescriptor.TYPE_STRING


def _is_message(f: FieldDescriptor) -> bool:
    return f.type == FieldDescriptor.TYPE_MESSAGE


def _is_repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def string_paths(desc: Descriptor, depth: int = 0) -> list[tuple[int, ...]]:
    """Field-number paths to every string field, through nested messages (bounded depth)."""
    paths: list[tuple[int, ...]] = [(f.number,) for f in _fields(desc, _is_string)]
    if depth < MAX_DEPTH:
        for f in _fields(desc, _is_message):
            paths += [(f.number, *p) for p in string_paths(f.message_type, depth + 1)]
    return paths


def nested(path: tuple[int, ...], payload: bytes) -> bytes:
    """``payload`` as the innermost field of ``path`` (outer fields wrapping it as messages)."""
    for number in reversed(path):
        payload = length_delimited(number, payload)
    return payload


def flood(desc: Descriptor) -> bytes:
    """10,000 entries of a repeated field (an unknown field number when the message has none)."""
    repeated = _fields(desc, _is_repeated)
    number = repeated[0].number if repeated else 999
    entry = b"" if repeated and _is_message(repeated[0]) else b"x"
    return length_delimited(number, entry) * REPEATED_FLOOD


def oversized(desc: Descriptor) -> bytes:
    """A body just over 64 KiB: one long string/bytes field."""
    text = [f for f in desc.fields if f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)]
    number = text[0].number if text and not _is_repeated(text[0]) else 999
    return length_delimited(number, b"a" * JUST_OVER_64K)


# --------------------------------------------------------------------------- valid-shaped messages


def _timestamp() -> st.SearchStrategy[dict[str, int]]:
    seconds = st.sampled_from((*INT64, 253402300800, -62135596801)) | st.integers(0, 2**34)
    nanos = st.sampled_from((0, -1, 999_999_999, 1_000_000_000, 2**31 - 1))
    return st.fixed_dictionaries({"seconds": seconds, "nanos": nanos})


_INT32_TYPES = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.sampled_from(STRINGS) | st.text(max_size=24),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    **dict.fromkeys(_INT32_TYPES, st.sampled_from(INT32) | st.integers(-(2**31), 2**31 - 1)),
    FieldDescriptor.TYPE_UINT32: st.sampled_from((0, 1, 2**32 - 1)),
    FieldDescriptor.TYPE_FIXED32: st.sampled_from((0, 1, 2**32 - 1)),
    FieldDescriptor.TYPE_UINT64: st.sampled_from((0, 1, 2**64 - 1)),
    FieldDescriptor.TYPE_FIXED64: st.sampled_from((0, 1, 2**64 - 1)),
    FieldDescriptor.TYPE_DOUBLE: st.sampled_from((0.0, -1.0, float("inf"), float("nan"))),
    FieldDescriptor.TYPE_FLOAT: st.sampled_from((0.0, -1.0, float("inf"), float("nan"))),
}
_INT64 = st.sampled_from(INT64) | st.integers(-(2**63), 2**63 - 1)
_NEAR_NOW = st.fixed_dictionaries({"seconds": st.integers(1_700_000_000, 2_100_000_000), "nanos": st.just(0)})


# Plausible values: a few shared ids and small amounts, so calls meet each other's state.
_PLAUSIBLE: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.sampled_from(PLAUSIBLE_IDS),
    FieldDescriptor.TYPE_BYTES: st.just(b""),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.just(1.0),
    FieldDescriptor.TYPE_FLOAT: st.just(1.0),
}
_SMALL = st.sampled_from((1, 2, 5, 100))


def _scalar(f: FieldDescriptor, plausible: bool) -> st.SearchStrategy[Any]:
    if f.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        if plausible:
            return st.sampled_from([n for n in known if n] or known)
        return st.sampled_from(known) | st.sampled_from((-1, 99, 2**31 - 1))
    if plausible:
        return _PLAUSIBLE.get(f.type, _SMALL)
    return _SCALARS.get(f.type, _INT64)


def _value(f: FieldDescriptor, depth: int, plausible: bool) -> st.SearchStrategy[Any]:
    if not _is_message(f):
        return _scalar(f, plausible)
    if f.message_type.full_name == "google.protobuf.Timestamp":
        return _NEAR_NOW if plausible else _timestamp()
    if depth >= MAX_DEPTH:
        return st.just({})
    return message_fields(f.message_type, depth + 1, plausible=plausible)


def message_fields(
    desc: Descriptor, depth: int = 0, *, plausible: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of field name -> value for ``desc``: any field present or not, or (plausible) all of them."""
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        if _is_message(f) and f.message_type.GetOptions().map_entry:
            key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            entries = st.dictionaries(_scalar(key, plausible), _value(value, depth, plausible), max_size=3)
            strategies[f.name] = entries
        elif _is_repeated(f):
            strategies[f.name] = st.lists(_value(f, depth, plausible), min_size=plausible, max_size=3)
        else:
            strategies[f.name] = _value(f, depth, plausible)
    if plausible:
        return st.fixed_dictionaries(strategies)
    return st.fixed_dictionaries({}, optional=strategies)


def _fill(msg: Message, values: dict[str, Any]) -> None:
    desc = msg.DESCRIPTOR
    for name, value in values.items():
        f = desc.fields_by_name[name]
        if _is_message(f) and f.message_type.GetOptions().map_entry:
            target = getattr(msg, name)
            for k, v in value.items():
                if isinstance(v, dict):
                    _fill(target[k], v)
                else:
                    target[k] = v
        elif _is_repeated(f):
            container = getattr(msg, name)
            for item in value:
                if isinstance(item, dict):
                    _fill(container.add(), item)
                else:
                    container.append(item)
        elif isinstance(value, dict):
            _fill(getattr(msg, name), value)
            getattr(msg, name).SetInParent()
        else:
            setattr(msg, name, value)


def build(desc: Descriptor, values: dict[str, Any]) -> bytes:
    """The serialized message of ``desc`` with ``values``."""
    msg = message_factory.GetMessageClass(desc)()
    _fill(msg, values)
    return msg.SerializeToString()


def bodies(desc: Descriptor) -> st.SearchStrategy[Wire]:
    """Request bodies for a method taking ``desc``: valid-shaped and every kind of invalid one."""
    valid = message_fields(desc).map(lambda v: build(desc, v))
    strings = string_paths(desc)
    plausible = message_fields(desc, plausible=True).map(lambda v: build(desc, v))
    kinds: list[st.SearchStrategy[Wire]] = [
        valid.map(lambda b: ("valid", b)),
        plausible.map(lambda b: ("plausible", b)),
        st.just(("empty", b"")),
        st.binary(min_size=1, max_size=300).map(lambda b: ("random", b)),
        valid.map(lambda b: ("flood", b + flood(desc))),
        st.just(("over-64k", oversized(desc))),
    ]
    if strings:
        bad = st.tuples(valid, st.sampled_from(strings), st.sampled_from(INVALID_UTF8))
        kinds.append(bad.map(lambda t: ("invalid-utf8", t[0] + nested(t[1], t[2]))))
    return st.one_of(kinds)
