from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Access(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_UNSPECIFIED: _ClassVar[Access]
    SIGNED: _ClassVar[Access]
    PUBLIC: _ClassVar[Access]
    FIRST_KEY: _ClassVar[Access]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    READER: _ClassVar[Role]
    OPERATOR: _ClassVar[Role]
    WATCHER: _ClassVar[Role]
ACCESS_UNSPECIFIED: Access
SIGNED: Access
PUBLIC: Access
FIRST_KEY: Access
ROLE_UNSPECIFIED: Role
READER: Role
OPERATOR: Role
WATCHER: Role
ACCESS_FIELD_NUMBER: _ClassVar[int]
access: _descriptor.FieldDescriptor
RESPONSES_FIELD_NUMBER: _ClassVar[int]
responses: _descriptor.FieldDescriptor
ROLE_FIELD_NUMBER: _ClassVar[int]
role: _descriptor.FieldDescriptor

class Responses(_message.Message):
    __slots__ = ("success", "errors")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    success: _containers.RepeatedScalarFieldContainer[int]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, success: _Optional[_Iterable[int]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...
