"""An event's payload is the entity as the gateway prints it: the fast printer in
transport/convert.py gives exactly what protobuf's own JSON printer gives with the gateway's
print options, for every entity message and any field values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from server.domain.accounts import (
    Account,
    AccountType,
    Card,
    CardType,
    EntityStatus,
    InactiveCause,
)
from server.domain.customer import Customer, CustomerStatus
from server.transport import convert

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
text = st.text(max_size=40)


def _library(message: object) -> dict[str, object]:
    return json_format.MessageToDict(
        message,  # type: ignore[arg-type]
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=False,
        use_integers_for_enums=False,
    )


@given(
    status=st.sampled_from(CustomerStatus),
    created=moments,
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
    external_id=text,
    challenge=st.none() | text,
    url=st.none() | text,
)
def test_customers(
    status: CustomerStatus,
    created: datetime,
    later: timedelta,
    external_id: str,
    challenge: str | None,
    url: str | None,
) -> None:
    entity = Customer(
        id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        external_id=external_id,
        chain_id="eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
        chain_key="eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
        status=status,
        created_at=created,
        updated_at=created + later,
    )
    message = convert.customer(entity, challenge=challenge, verification_url=url)
    assert convert.as_gateway_prints(message) == _library(message)
    assert convert.payload(entity) == _library(convert.customer(entity))


@given(
    status=st.sampled_from(EntityStatus),
    cause=st.none() | st.sampled_from(InactiveCause),
    currencies=st.lists(st.sampled_from(["EUR", "USD", "GBP"]), max_size=3),
    at=moments,
)
def test_accounts(
    status: EntityStatus, cause: InactiveCause | None, currencies: list[str], at: datetime
) -> None:
    entity = Account(
        id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        type=AccountType.CARD_ACCOUNT,
        currencies=currencies,
        status=status,
        inactive_cause=cause,
        created_at=at,
        updated_at=at,
    )
    assert convert.payload(entity) == _library(convert.account(entity))


@given(
    status=st.sampled_from(EntityStatus),
    kind=st.sampled_from(CardType),
    network=text,
    pan=text,
    at=moments,
)
def test_cards(status: EntityStatus, kind: CardType, network: str, pan: str, at: datetime) -> None:
    entity = Card(
        id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        type=kind,
        network=network,
        masked_pan=pan,
        status=status,
        created_at=at,
        updated_at=at,
    )
    assert convert.payload(entity) == _library(convert.card(entity))
