"""The REST request's JSON held to the published contract, not to proto3 JSON's leniency.

The transcoder parses bodies and queries the protobuf way, which accepts more than
gen/openapi.json allows: `null` for any field (its default), a bare value for a repeated
field (`"currencies": "EUR"` read as `["EUR"]`), enum numbers (`status=0`, `"type": 1`),
numbers in quotes and 64-bit integers as numbers. A partner whose request works only thanks
to that leniency has written against something we never published, so the server checks the
raw REST request (what gateway/request.lua forwards) against the method's input message,
field by field, and names the first field that does not have the document's JSON type.

What stays lenient, as documented (docs/DECISIONS.md): unknown JSON fields are ignored (the
document allows additional properties), and proto field names (`chain_id`) are accepted
beside json names, as the transcoder does. Values the types allow but the service does not
(a bad currency code) are the services' to refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from server.domain.errors import InvalidJson

_F = FieldDescriptor
_INTS_32 = frozenset(
    {
        _F.TYPE_INT32,
        _F.TYPE_SINT32,
        _F.TYPE_SFIXED32,
        _F.TYPE_UINT32,
        _F.TYPE_FIXED32,
    }
)
_INTS_64 = frozenset(
    {_F.TYPE_INT64, _F.TYPE_SINT64, _F.TYPE_SFIXED64, _F.TYPE_UINT64, _F.TYPE_FIXED64}
)
_FLOATS = frozenset({_F.TYPE_DOUBLE, _F.TYPE_FLOAT})
_INT64_TEXT = re.compile(r"-?[0-9]+")
_BOOL_TEXT = frozenset({"true", "false"})
# Well-known types with a JSON form of their own: what that form is (scripts/openapi/schemas.py).
_STRING_FORMS = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
_ANY_FORM = frozenset({"google.protobuf.Value"})
_OBJECT_FORMS = frozenset({"google.protobuf.Struct", "google.protobuf.Any"})
HTTP_BODY = "google.api.HttpBody"  # raw bytes, not JSON: nothing to check


@lru_cache(maxsize=256)
def _fields(message: Descriptor) -> Mapping[str, FieldDescriptor]:
    """A message's fields by json name and by proto name (the transcoder takes both)."""
    table: dict[str, FieldDescriptor] = {}
    for field in message.fields:
        table[field.name] = field
        table[field.json_name] = field
    return table


def check_body(raw: bytes, target: Descriptor, prefix: str = "") -> None:
    """Raises InvalidJson naming the first field whose JSON type the contract does not allow.
    `target`: the message the body fills (the input message for `body: "*"`, or the body
    field's message type); `prefix` the body field's json name then."""
    if target.full_name == HTTP_BODY:
        return
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        # The transcoder parsed it, Python's stricter parser does not (a lone surrogate, say).
        raise InvalidJson(prefix or "body", "The request body is not valid JSON") from None
    _message(value, target, prefix)


def check_query(query: str, message: Descriptor) -> None:
    """Query parameters (`a.b=v`, repeated keys for lists): enums by name only, integers and
    booleans in their text form. Unknown names are the transcoder's to refuse."""
    for key, text in parse_qsl(query, keep_blank_values=True):
        field = _query_field(message, key)
        if field is None:
            continue
        if field.enum_type is not None:
            if text not in field.enum_type.values_by_name:
                raise InvalidJson(key, f"{key} must be one of: {_names(field)} (not numbers)")
        elif field.type in _INTS_32 or field.type in _INTS_64:
            if not _INT64_TEXT.fullmatch(text):
                raise InvalidJson(key, f"{key} must be a decimal integer")
        elif field.type == _F.TYPE_BOOL and text not in _BOOL_TEXT:
            raise InvalidJson(key, f"{key} must be true or false")


def _query_field(message: Descriptor, key: str) -> FieldDescriptor | None:
    field: FieldDescriptor | None = None
    current: Descriptor | None = message
    for part in key.split("."):
        if current is None:
            return None
        field = _fields(current).get(part)
        if field is None:
            return None
        current = field.message_type
    return field


def _message(value: Any, message: Descriptor, path: str) -> None:
    name = message.full_name
    if name in _ANY_FORM:
        return
    if name in _STRING_FORMS:
        _expect(isinstance(value, str), path, "a string")
        return
    _expect(isinstance(value, dict), path, "a JSON object")
    if name in _OBJECT_FORMS:
        return
    fields = _fields(message)
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            continue  # unknown fields are ignored (module docstring)
        _field(item, field, f"{path}.{field.json_name}" if path else field.json_name)


def _field(value: Any, field: FieldDescriptor, path: str) -> None:
    if value is None:
        raise InvalidJson(path, f"{path} must not be null: leave the field out instead")
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        _expect(isinstance(value, dict), path, "a JSON object")
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            _single(item, value_field, f"{path}.{key}")
        return
    if field.is_repeated:
        _expect(isinstance(value, list), path, "a JSON array")
        for index, item in enumerate(value):
            _single(item, field, f"{path}[{index}]")
        return
    _single(value, field, path)


def _single(value: Any, field: FieldDescriptor, path: str) -> None:
    if value is None:
        raise InvalidJson(path, f"{path} must not be null")
    kind = field.type
    if field.message_type is not None:
        _message(value, field.message_type, path)
    elif field.enum_type is not None:
        if not (isinstance(value, str) and value in field.enum_type.values_by_name):
            raise InvalidJson(path, f"{path} must be one of: {_names(field)} (not numbers)")
    elif kind in (_F.TYPE_STRING, _F.TYPE_BYTES):
        _expect(isinstance(value, str), path, "a string")
    elif kind == _F.TYPE_BOOL:
        _expect(isinstance(value, bool), path, "true or false")
    elif kind in _INTS_32:
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        _expect(integral and not isinstance(value, bool), path, "an integer (not in quotes)")
    elif kind in _INTS_64:
        text = isinstance(value, str) and _INT64_TEXT.fullmatch(value) is not None
        _expect(text, path, 'a decimal integer in a string ("123")')
    elif kind in _FLOATS:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        _expect(number, path, "a number (not in quotes)")


def _names(field: FieldDescriptor) -> str:
    assert field.enum_type is not None
    return ", ".join(value.name for value in field.enum_type.values)


def _expect(ok: bool, path: str, what: str) -> None:
    if not ok:
        raise InvalidJson(path or "body", f"{path or 'The body'} must be {what}")
