import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Customer(_message.Message):
    __slots__ = ("id", "external_id", "chain_id", "status", "created_at", "updated_at", "challenge", "verification_url")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Customer.Status]
        initiating: _ClassVar[Customer.Status]
        screening: _ClassVar[Customer.Status]
        verifying: _ClassVar[Customer.Status]
        active: _ClassVar[Customer.Status]
        inactive: _ClassVar[Customer.Status]
        rejected: _ClassVar[Customer.Status]
    STATUS_UNSPECIFIED: Customer.Status
    initiating: Customer.Status
    screening: Customer.Status
    verifying: Customer.Status
    active: Customer.Status
    inactive: Customer.Status
    rejected: Customer.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_URL_FIELD_NUMBER: _ClassVar[int]
    id: str
    external_id: str
    chain_id: str
    status: Customer.Status
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    challenge: str
    verification_url: str
    def __init__(self, id: _Optional[str] = ..., external_id: _Optional[str] = ..., chain_id: _Optional[str] = ..., status: _Optional[_Union[Customer.Status, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., challenge: _Optional[str] = ..., verification_url: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("id", "customer_id", "type", "currencies", "status", "created_at", "updated_at")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Account.Type]
        card_account: _ClassVar[Account.Type]
    TYPE_UNSPECIFIED: Account.Type
    card_account: Account.Type
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Account.Status]
        active: _ClassVar[Account.Status]
        inactive: _ClassVar[Account.Status]
    STATUS_UNSPECIFIED: Account.Status
    active: Account.Status
    inactive: Account.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCIES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    customer_id: str
    type: Account.Type
    currencies: _containers.RepeatedScalarFieldContainer[str]
    status: Account.Status
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., customer_id: _Optional[str] = ..., type: _Optional[_Union[Account.Type, str]] = ..., currencies: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[Account.Status, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Card(_message.Message):
    __slots__ = ("id", "account_id", "type", "network", "masked_pan", "status", "created_at", "updated_at")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Card.Type]
        virtual: _ClassVar[Card.Type]
        physical: _ClassVar[Card.Type]
    TYPE_UNSPECIFIED: Card.Type
    virtual: Card.Type
    physical: Card.Type
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Card.Status]
        active: _ClassVar[Card.Status]
        inactive: _ClassVar[Card.Status]
    STATUS_UNSPECIFIED: Card.Status
    active: Card.Status
    inactive: Card.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    MASKED_PAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    account_id: str
    type: Card.Type
    network: str
    masked_pan: str
    status: Card.Status
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., account_id: _Optional[str] = ..., type: _Optional[_Union[Card.Type, str]] = ..., network: _Optional[str] = ..., masked_pan: _Optional[str] = ..., status: _Optional[_Union[Card.Status, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
