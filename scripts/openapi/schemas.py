"""JSON Schema (OpenAPI 3.1) for protobuf messages, exactly as the gateway prints them.

The transcoder's print options (gateway/config.py) decide the shape: camelCase json names,
enum value names as strings (ours are lowercase on purpose), 64-bit integers as strings
(proto3 JSON), Timestamps as RFC 3339 strings, and every field without presence printed
(`always_print_primitive_fields`), so those are `required` in what the gateway answers.
Fields with presence (proto3 `optional`, oneof members, messages) appear only when set.
Request messages mark as `required` the fields annotated `(google.api.field_behavior) =
REQUIRED`, which must also hold a value (not "", [] or the zero enum value).
"""

from __future__ import annotations

import re
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2

from scripts.openapi.descriptors import DescriptorIndex, Enum, Message
from server.domain.deliveries import MAX_OVERLAP
from server.domain.events import EventType
from server.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from server.services.accounts import MAX_CURRENCIES

Json = dict[str, Any]
_F = descriptor_pb2.FieldDescriptorProto

_INT64_PATTERN = "^-?[0-9]+$"
_SCALARS: dict[int, Json] = {
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_INT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _F.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    _F.TYPE_FIXED32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    # proto3 JSON prints 64-bit integers as strings (JavaScript numbers lose precision).
    _F.TYPE_INT64: {"type": "string", "format": "int64", "pattern": _INT64_PATTERN},
    _F.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": _INT64_PATTERN},
    _F.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": _INT64_PATTERN},
    _F.TYPE_UINT64: {"type": "string", "pattern": "^[0-9]+$"},
    _F.TYPE_FIXED64: {"type": "string", "pattern": "^[0-9]+$"},
    _F.TYPE_DOUBLE: {"type": "number"},
    _F.TYPE_FLOAT: {"type": "number"},
}

# Well-known types have their own JSON forms; they are inlined, not components.
WELL_KNOWN: dict[str, Json] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339, UTC (`Z`).",
    },
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"},
    "google.protobuf.Empty": {"type": "object", "properties": {}},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Any": {
        "type": "object",
        "description": "A typed message: `@type` names it, its own fields follow.",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
}

_EXAMPLE = re.compile(r'e\.g\. "([^"]+)"')

# What the server refuses in a request field that the field's type alone allows, where JSON
# Schema can say it exactly (so clients and the fuzzer know): keyed `Message.field`.
# Rules it cannot say exactly (CAIP-10 with EIP-55 checksums, a wallet signature, a public
# key, the callback URL rules) stay in the field's description and the server's answer.
BODY_RULES: dict[str, Json] = {
    # server/services/accounts.py: 1-10 codes, each three capital letters.
    "CreateAccountRequest.currencies": {
        "maxItems": MAX_CURRENCIES,
        "items": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    # server/domain/webhooks.py parse_types: known types, none twice.
    "PutWebhookRequest.types": {
        "uniqueItems": True,
        "items": {"type": "string", "enum": [kind.value for kind in EventType]},
    },
    "CreateCustomerRequest.external_id": {"maxLength": MAX_EXTERNAL_ID_LENGTH},
    # server/domain/deliveries.py overlap and check_replay_after.
    "RotateWebhookSecretRequest.overlap_seconds": {
        "minimum": 0,
        "maximum": int(MAX_OVERLAP.total_seconds()),
    },
    "ReplayWebhookEventsRequest.after_sequence": {"pattern": "^[0-9]+$"},
}


def component_name(full_name: str, package: str) -> str:
    """`customers.v1.Customer.Status` -> `Customer.Status`; other packages keep theirs."""
    return full_name.removeprefix(package + ".")


class Schemas:
    """Builds components on demand: `ref()` a message or enum and it (and what it uses)
    lands in `components`. Output messages mark what the gateway always prints required;
    request messages what the proto annotates REQUIRED (the server's own rule)."""

    def __init__(self, index: DescriptorIndex, package: str) -> None:
        self._index = index
        self._package = package
        self.components: dict[str, Json] = {}
        self._output: dict[str, bool] = {}

    def ref(self, full_name: str, *, output: bool) -> Json:
        if full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[full_name])
        name = component_name(full_name, self._package)
        if full_name in self._index.enums:
            if name not in self.components:
                self.components[name] = self._enum(self._index.enums[full_name])
        elif name not in self.components:
            self._output[name] = output
            self.components[name] = {}  # placeholder: recursive messages terminate
            self.components[name] = self.message(self._index.messages[full_name], output=output)
        elif self._output.get(name) != output and self.components[name].get("required"):
            raise ValueError(f"{full_name} is both a request and an answer; split it")
        return {"$ref": f"#/components/schemas/{name}"}

    def message(
        self, message: Message, *, output: bool, exclude: frozenset[str] = frozenset()
    ) -> Json:
        """An object schema; `exclude`: proto field names bound elsewhere (path parameters)."""
        properties: Json = {}
        required: list[str] = []
        for field in message.proto.field:
            if field.name in exclude:
                continue
            property_schema = self.field(message, field, output=output)
            if output and always_printed(field):
                required.append(field.json_name)
            elif not output and is_required(field):
                required.append(field.json_name)
                property_schema = self._non_empty(field, property_schema)
            if not output:
                property_schema |= BODY_RULES.get(f"{message.proto.name}.{field.name}", {})
            properties[field.json_name] = property_schema
        schema: Json = {"type": "object"}
        if message.comments.text:
            schema["description"] = message.comments.text
        schema["properties"] = properties
        if required:
            schema["required"] = required
        if not output:
            # Other names are ignored, but the transcoder refuses an empty one ("Proto fields
            # must have a name"), found by the contract fuzz.
            schema["propertyNames"] = {"minLength": 1}
        return schema

    def field(self, message: Message, field: _F, *, output: bool) -> Json:
        entry = self._map_entry(field)
        if entry is not None:
            value = next(f for f in entry.proto.field if f.name == "value")
            schema: Json = {"type": "object", "additionalProperties": self._single(value, output)}
        elif field.label == _F.LABEL_REPEATED:
            schema = {"type": "array", "items": self._single(field, output)}
        else:
            schema = self._single(field, output)
        comment = message.field_comments.get(field.name)
        text = comment.text if comment is not None else ""
        if text:
            schema["description"] = text
            example = _EXAMPLE.search(text)
            if example is not None and schema.get("type") == "string":
                schema["examples"] = [example.group(1)]
        return schema

    def _non_empty(self, field: _F, schema: Json) -> Json:
        """A REQUIRED request field must hold a value, not its default (google.aip.dev/203):
        the server refuses "" and [] and the zero enum value as missing, so does the
        document."""
        if field.label == _F.LABEL_REPEATED:
            return {**schema, "minItems": 1}
        if field.type == _F.TYPE_ENUM:
            zero = self._index.enums[field.type_name.lstrip(".")].proto.value[0].name
            return {**schema, "not": {"const": zero}}
        if field.type in (_F.TYPE_STRING, _F.TYPE_BYTES):
            return {**schema, "minLength": 1}
        return schema

    def _single(self, field: _F, output: bool) -> Json:
        if field.type in (_F.TYPE_MESSAGE, _F.TYPE_ENUM):
            return self.ref(field.type_name.lstrip("."), output=output)
        return dict(_SCALARS[field.type])

    def _map_entry(self, field: _F) -> Message | None:
        if field.type != _F.TYPE_MESSAGE or field.label != _F.LABEL_REPEATED:
            return None
        entry = self._index.messages.get(field.type_name.lstrip("."))
        return entry if entry is not None and entry.proto.options.map_entry else None

    def _enum(self, enum: Enum) -> Json:
        names = [value.name for value in enum.proto.value]
        lines = [
            f"- `{name}`: {comment.text}"
            for name, comment in enum.value_comments.items()
            if comment.text
        ]
        description = "\n".join(part for part in (enum.comments.text, "\n".join(lines)) if part)
        schema: Json = {"type": "string", "enum": names}
        if description:
            schema["description"] = description
        return schema


def is_required(field: _F) -> bool:
    """`[(google.api.field_behavior) = REQUIRED]`: the request must set the field; the server
    refuses it missing (server/interceptors/messages.py reads the same annotation)."""
    behaviors = field.options.Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def always_printed(field: _F) -> bool:
    """Whether the gateway prints the field even when it holds its default value."""
    if field.proto3_optional or field.HasField("oneof_index"):
        return False  # has presence: printed only when set
    if field.label == _F.LABEL_REPEATED:
        return True  # lists and maps, empty ones included
    return field.type != _F.TYPE_MESSAGE  # a singular message has presence
