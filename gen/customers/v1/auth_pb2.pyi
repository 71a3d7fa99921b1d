from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTokenRequest(_message.Message):
    __slots__ = ("api_key", "api_secret")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    API_SECRET_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    api_secret: str
    def __init__(self, api_key: _Optional[str] = ..., api_secret: _Optional[str] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("token", "expires_at", "token_type")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: int
    token_type: str
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[int] = ..., token_type: _Optional[str] = ...) -> None: ...
