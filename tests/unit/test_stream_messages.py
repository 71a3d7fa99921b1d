"""The stream message cache converts an event once for every stream that carries it, and
holds only a bounded number of recent messages (a soak read its filling as a leak)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from customers.v1 import customers_pb2
from server.domain.customer import Customer, CustomerStatus
from server.domain.events import ChangeEvent, EventType
from server.transport import convert
from server.transport.customers import HEARTBEAT, StreamMessages

PARTNER = uuid.uuid4()
AT = datetime(2026, 12, 3, tzinfo=UTC)


def _change(seq: int) -> ChangeEvent:
    customer = Customer(
        id=uuid.uuid4(),
        partner_id=PARTNER,
        external_id=f"user-{seq}",
        chain_id="eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
        chain_key="eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
        status=CustomerStatus.ACTIVE,
        created_at=AT,
        updated_at=AT,
    )
    return ChangeEvent(
        event_id=uuid.uuid4(),
        partner_id=PARTNER,
        type=EventType.CUSTOMER_UPDATED,
        entity_id=customer.id,
        payload=convert.payload(customer),
        occurred_at=AT,
        seq=seq,
    )


def test_one_message_per_event_for_every_stream() -> None:
    messages = StreamMessages()
    change = _change(1)
    first = messages.of(change)
    assert messages.of(change) is first  # serialized once, the same bytes for every stream
    parsed = customers_pb2.CustomerEvent.FromString(first)
    assert parsed == convert.customer_event(change)
    assert parsed.seq == 1 and parsed.customer.external_id == "user-1"
    assert customers_pb2.CustomerEvent.FromString(messages.of(None)) == HEARTBEAT


def test_only_the_newest_messages_are_kept() -> None:
    messages = StreamMessages(size=3)
    changes = [_change(seq) for seq in range(1, 6)]
    kept = {change.seq: messages.of(change) for change in changes}
    assert messages.of(changes[-1]) is kept[5]  # still held
    again = messages.of(changes[0])  # evicted: converted anew, equal but not the same
    assert again is not kept[1] and again == kept[1]
    assert len(messages) == 3
