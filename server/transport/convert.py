"""Domain entities -> protobuf messages, and protobuf enums -> domain enums."""

from __future__ import annotations

import enum
import functools
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from customers.v1 import customers_pb2, events_pb2, operator_pb2, webhooks_pb2
from customers.v1 import resources_pb2 as pb
from server.domain.accounts import Account, AccountType, Card, CardType
from server.domain.customer import Customer, CustomerStatus
from server.domain.events import ChangeEvent, EventType


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def customer(
    entity: Customer, *, challenge: str | None = None, verification_url: str | None = None
) -> pb.Customer:
    message = pb.Customer(
        id=str(entity.id),
        external_id=entity.external_id,
        chain_id=entity.chain_id,
        status=entity.status.value,
        created_at=timestamp(entity.created_at),
        updated_at=timestamp(entity.updated_at),
    )
    if challenge is not None:
        message.challenge = challenge
    if verification_url is not None:
        message.verification_url = verification_url
    return message


def account(entity: Account) -> pb.Account:
    return pb.Account(
        id=str(entity.id),
        customer_id=str(entity.customer_id),
        type=entity.type.value,
        currencies=entity.currencies,
        status=entity.status.value,
        created_at=timestamp(entity.created_at),
        updated_at=timestamp(entity.updated_at),
    )


def card(entity: Card) -> pb.Card:
    return pb.Card(
        id=str(entity.id),
        account_id=str(entity.account_id),
        type=entity.type.value,
        network=entity.network,
        masked_pan=entity.masked_pan,
        status=entity.status.value,
        created_at=timestamp(entity.created_at),
        updated_at=timestamp(entity.updated_at),
    )


def payload(entity: Customer | Account | Card) -> dict[str, Any]:
    """An entity as the REST API shows it: the JSON of the very message a GET answers with.
    Events carry this as their payload (domain/events.py Shape, wired in bootstrap)."""
    message: Any
    if isinstance(entity, Customer):
        message = customer(entity)
    elif isinstance(entity, Account):
        message = account(entity)
    else:
        message = card(entity)
    return as_gateway_prints(message)


def as_gateway_prints(message: Any) -> dict[str, Any]:
    """The message's JSON with the gateway's print options (gateway/config.py
    "print_options"): camelCase names, enum names, every field without presence printed.

    Equal to `json_format.MessageToDict(message, always_print_fields_with_no_presence=True)`
    for our entity messages (tests/unit/test_event_payloads.py checks it field by field), at
    a fraction of its cost: a cascade prints 61 of these in its transaction. It follows a
    plan made once per message type from its descriptor (_plan), so a field added to the
    proto is printed without a change here; a message with a field kind the plan does not
    know is printed by the library.
    """
    plan = _plan(message.DESCRIPTOR)
    if plan is None:
        return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    out: dict[str, Any] = {}
    for name, json_name, kind, presence, names in plan:
        if presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        if kind is _Kind.PLAIN:
            out[json_name] = value
        elif kind is _Kind.ENUM:
            out[json_name] = names[value]
        elif kind is _Kind.TIMESTAMP:
            out[json_name] = value.ToJsonString()
        else:
            out[json_name] = list(value)
    return out


_TIMESTAMP = "google.protobuf.Timestamp"
# Printed as they are (64-bit integers are strings in JSON, so they are not among them).
_PLAIN = frozenset(
    {
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_BOOL,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_SINT32,
    }
)


class _Kind(enum.Enum):
    PLAIN = "plain"
    REPEATED_PLAIN = "repeated plain"
    ENUM = "enum"
    TIMESTAMP = "timestamp"


# One field's printing: name, JSON name, kind, whether it has presence, enum names by number.
_Step = tuple[str, str, _Kind, bool, dict[int, str]]


@functools.cache  # one plan per message type: a handful of entity messages
def _plan(descriptor: Any) -> tuple[_Step, ...] | None:
    """How as_gateway_prints prints a message type; None: a field kind it leaves to the
    library."""
    steps: list[_Step] = []
    known = True
    for field in descriptor.fields:
        names: dict[int, str] = {}
        if field.is_repeated:
            kind = _Kind.REPEATED_PLAIN if field.type in _PLAIN else None
        elif field.type == field.TYPE_ENUM:
            kind = _Kind.ENUM
            names = {value.number: value.name for value in field.enum_type.values}
        elif field.type == field.TYPE_MESSAGE and field.message_type.full_name == _TIMESTAMP:
            kind = _Kind.TIMESTAMP
        else:
            kind = _Kind.PLAIN if field.type in _PLAIN else None
        if kind is None:
            known = False
            break
        steps.append((field.name, field.json_name, kind, field.has_presence, names))
    return tuple(steps) if known else None


def customer_status(value: int) -> CustomerStatus | None:
    """Unset (0) means "any status"; unknown numbers cannot come through the transcoder."""
    if value == pb.Customer.Status.STATUS_UNSPECIFIED:
        return None
    return CustomerStatus(pb.Customer.Status.Name(value))


def account_type(value: int) -> AccountType | None:
    if value not in pb.Account.Type.values() or value == pb.Account.Type.TYPE_UNSPECIFIED:
        return None
    return AccountType(pb.Account.Type.Name(value))


def card_type(value: int) -> CardType | None:
    if value not in pb.Card.Type.values() or value == pb.Card.Type.TYPE_UNSPECIFIED:
        return None
    return CardType(pb.Card.Type.Name(value))


def _entity_of(event: ChangeEvent) -> tuple[str, Any]:
    """The payload (API-shaped JSON) back into its message."""
    match event.type:
        case EventType.CUSTOMER_UPDATED:
            return "customer", json_format.ParseDict(event.payload, pb.Customer())
        case EventType.ACCOUNT_UPDATED:
            return "account", json_format.ParseDict(event.payload, pb.Account())
        case EventType.CARD_UPDATED:
            return "card", json_format.ParseDict(event.payload, pb.Card())
        case EventType.WEBHOOK_DISABLED:
            return "webhook", json_format.ParseDict(event.payload, webhooks_pb2.Webhook())


def event(change: ChangeEvent) -> events_pb2.Event:
    field, entity = _entity_of(change)
    return events_pb2.Event(
        seq=change.seq,
        event_id=str(change.event_id),
        webhook_type=change.type.value,
        occurred_at=timestamp(change.occurred_at),
        **{field: entity},
    )


def customer_event(change: ChangeEvent | None) -> customers_pb2.CustomerEvent:
    """A stream message; None is a heartbeat."""
    if change is None:
        return customers_pb2.CustomerEvent(heartbeat=True)
    _, entity = _entity_of(change)
    return customers_pb2.CustomerEvent(
        seq=change.seq,
        event_id=str(change.event_id),
        webhook_type=change.type.value,
        occurred_at=timestamp(change.occurred_at),
        customer=entity,
    )


def operator_customer(entity: Customer) -> operator_pb2.OperatorCustomer:
    """A customer as internal services see it: with its partner and standing suspension."""
    message = operator_pb2.OperatorCustomer(
        customer=customer(entity), partner_id=str(entity.partner_id)
    )
    if entity.suspension_reason is not None:
        message.suspension_reason = entity.suspension_reason
    return message


def operator_customer_event(change: ChangeEvent | None) -> operator_pb2.OperatorCustomerEvent:
    """A cross-partner stream message; None is a heartbeat."""
    if change is None:
        return operator_pb2.OperatorCustomerEvent(heartbeat=True)
    _, entity = _entity_of(change)
    return operator_pb2.OperatorCustomerEvent(
        position=change.position,
        partner_id=str(change.partner_id),
        seq=change.seq,
        event_id=str(change.event_id),
        occurred_at=timestamp(change.occurred_at),
        customer=entity,
    )
