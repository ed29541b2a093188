"""Protobuf messages as the JSON ``meshctl --json`` prints: every field present, int64 as numbers.

``json_format`` writes 64-bit integers as strings (the proto3 JSON mapping) and leaves out fields at
their zero value; scripts want ``"stuck": 0`` as a number, so both are undone here, guided by the
message's descriptor (a string field that merely looks numeric, such as a gid, stays a string). An
unset message field (a timestamp never set) is ``null``, so every field of the schema is present.
"""

from __future__ import annotations

import json
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as a dict: proto field names, enums by name, zero fields included, int64 as int."""
    doc = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    _numbers(cast("Descriptor", message.DESCRIPTOR), doc)
    return doc


def message_json(message: Message) -> str:
    """:func:`message_dict` as indented, key-sorted JSON text."""
    return json.dumps(message_dict(message), indent=2, sort_keys=True)


def _numbers(descriptor: Descriptor, doc: dict[str, Any]) -> None:
    for field in descriptor.fields:
        if field.name not in doc:
            doc[field.name] = None  # an unset message field (the others are always printed)
            continue
        value = doc[field.name]
        if field.type in INT64_TYPES:
            doc[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None:
            _nested(field, value)


def _nested(field: FieldDescriptor, value: Any) -> None:
    message_type = cast("Descriptor", field.message_type)
    if message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        if value_field.type in INT64_TYPES:
            for key in value:
                value[key] = int(value[key])
        elif value_field.message_type is not None:
            for item in value.values():
                if isinstance(item, dict):
                    _numbers(value_field.message_type, item)
        return
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):  # well-known types (Timestamp, Duration) are strings
            _numbers(message_type, item)
