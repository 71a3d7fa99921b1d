import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from customers.v1 import accounts_pb2 as _accounts_pb2
from customers.v1 import options_pb2 as _options_pb2
from customers.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperatorCustomer(_message.Message):
    __slots__ = ("customer", "partner_id", "suspension_reason")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    SUSPENSION_REASON_FIELD_NUMBER: _ClassVar[int]
    customer: _resources_pb2.Customer
    partner_id: str
    suspension_reason: str
    def __init__(self, customer: _Optional[_Union[_resources_pb2.Customer, _Mapping]] = ..., partner_id: _Optional[str] = ..., suspension_reason: _Optional[str] = ...) -> None: ...

class OperatorGetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class OperatorListCustomersRequest(_message.Message):
    __slots__ = ("partner_id", "page_size", "page_token", "status")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    page_size: int
    page_token: str
    status: _resources_pb2.Customer.Status
    def __init__(self, partner_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_resources_pb2.Customer.Status, str]] = ...) -> None: ...

class OperatorListCustomersResponse(_message.Message):
    __slots__ = ("customers", "next_page_token")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[OperatorCustomer]
    next_page_token: str
    def __init__(self, customers: _Optional[_Iterable[_Union[OperatorCustomer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class OperatorGetAccountRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class OperatorGetCardRequest(_message.Message):
    __slots__ = ("card_id",)
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    def __init__(self, card_id: _Optional[str] = ...) -> None: ...

class OperatorActionRequest(_message.Message):
    __slots__ = ("customer_id", "reason")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    reason: str
    def __init__(self, customer_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchAllCustomersRequest(_message.Message):
    __slots__ = ("after",)
    AFTER_FIELD_NUMBER: _ClassVar[int]
    after: int
    def __init__(self, after: _Optional[int] = ...) -> None: ...

class OperatorCustomerEvent(_message.Message):
    __slots__ = ("position", "partner_id", "seq", "event_id", "occurred_at", "customer", "heartbeat")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    position: int
    partner_id: str
    seq: int
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    customer: _resources_pb2.Customer
    heartbeat: bool
    def __init__(self, position: _Optional[int] = ..., partner_id: _Optional[str] = ..., seq: _Optional[int] = ..., event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer: _Optional[_Union[_resources_pb2.Customer, _Mapping]] = ..., heartbeat: _Optional[bool] = ...) -> None: ...
