"""The descriptor set Envoy loads (gen/customers.pb), indexed for the OpenAPI generator.

Reading the very bytes the transcoder reads (not the Python stubs) is the point: the document
describes what the gateway does with that set, json names and http bindings included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from google.api import annotations_pb2 as _annotations  # noqa: F401  (registers the extension)
from google.api import field_behavior_pb2 as _behavior  # noqa: F401  (registers the extension)
from google.protobuf import descriptor_pb2

from customers.v1 import options_pb2 as _options  # noqa: F401  (registers the extensions)

# SourceCodeInfo paths: field numbers of FileDescriptorProto, DescriptorProto, ...
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


@dataclass(frozen=True, slots=True)
class Comments:
    leading: str = ""
    trailing: str = ""

    @property
    def text(self) -> str:
        """The comment a reader would take as the element's description."""
        return _clean(self.leading or self.trailing)


@dataclass(frozen=True, slots=True)
class Message:
    full_name: str
    proto: descriptor_pb2.DescriptorProto
    comments: Comments
    field_comments: dict[str, Comments]  # by field name


@dataclass(frozen=True, slots=True)
class Enum:
    full_name: str
    proto: descriptor_pb2.EnumDescriptorProto
    comments: Comments
    value_comments: dict[str, Comments]


@dataclass(frozen=True, slots=True)
class Method:
    service: str  # full name: customers.v1.CustomerService
    proto: descriptor_pb2.MethodDescriptorProto
    comments: Comments

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.proto.name}"

    @property
    def input_type(self) -> str:
        return self.proto.input_type.lstrip(".")

    @property
    def output_type(self) -> str:
        return self.proto.output_type.lstrip(".")


@dataclass
class DescriptorIndex:
    messages: dict[str, Message] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    services: dict[str, Comments] = field(default_factory=dict)
    methods: list[Method] = field(default_factory=list)

    def methods_of(self, service: str) -> Iterator[Method]:
        """The service's methods in proto order."""
        return (m for m in self.methods if m.service == service)


def load(data: bytes) -> DescriptorIndex:
    """Indexes a serialized FileDescriptorSet (built with --include_source_info)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    index = DescriptorIndex()
    for file in files:
        comments = _comments(file)
        prefix = f"{file.package}." if file.package else ""
        for i, message in enumerate(file.message_type):
            _add_message(index, comments, prefix, message, (_FILE_MESSAGE, i))
        for i, enum in enumerate(file.enum_type):
            _add_enum(index, comments, prefix, enum, (_FILE_ENUM, i))
        for i, service in enumerate(file.service):
            name = prefix + service.name
            index.services[name] = comments.get((_FILE_SERVICE, i), Comments())
            for j, method in enumerate(service.method):
                where = (_FILE_SERVICE, i, _SERVICE_METHOD, j)
                index.methods.append(Method(name, method, comments.get(where, Comments())))
    return index


def _add_message(
    index: DescriptorIndex,
    comments: dict[tuple[int, ...], Comments],
    prefix: str,
    message: descriptor_pb2.DescriptorProto,
    path: tuple[int, ...],
) -> None:
    name = prefix + message.name
    fields = {
        f.name: comments.get((*path, _MESSAGE_FIELD, i), Comments())
        for i, f in enumerate(message.field)
    }
    index.messages[name] = Message(name, message, comments.get(path, Comments()), fields)
    for i, nested in enumerate(message.nested_type):
        _add_message(index, comments, name + ".", nested, (*path, _MESSAGE_NESTED, i))
    for i, enum in enumerate(message.enum_type):
        _add_enum(index, comments, name + ".", enum, (*path, _MESSAGE_ENUM, i))


def _add_enum(
    index: DescriptorIndex,
    comments: dict[tuple[int, ...], Comments],
    prefix: str,
    enum: descriptor_pb2.EnumDescriptorProto,
    path: tuple[int, ...],
) -> None:
    values = {
        v.name: comments.get((*path, _ENUM_VALUE, i), Comments()) for i, v in enumerate(enum.value)
    }
    name = prefix + enum.name
    index.enums[name] = Enum(name, enum, comments.get(path, Comments()), values)


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], Comments]:
    return {
        tuple(location.path): Comments(location.leading_comments, location.trailing_comments)
        for location in file.source_code_info.location
        if location.leading_comments or location.trailing_comments
    }


def _clean(comment: str) -> str:
    """protoc keeps the space after `//`: strip one from every line, and the ends."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(lines).strip("\n").rstrip()
