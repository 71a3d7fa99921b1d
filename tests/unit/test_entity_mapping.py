"""Rows <-> domain entities by one rule (server/store/mapping.py): what a write stores, a read
gives back, enums as their values and lists as lists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from server.domain.accounts import Account, AccountType, Card, CardType, EntityStatus, InactiveCause
from server.domain.customer import Customer, CustomerStatus, KycVerdict
from server.store import mapping
from server.store.mapping import EntityMapping

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def as_row(values: dict[str, Any]) -> Any:
    return SimpleNamespace(_mapping=values)


def test_a_customer_written_reads_back_the_same_with_enums_stored_as_their_values() -> None:
    customer = Customer(
        id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        external_id="user-1",
        chain_id="eip155:1:0xAb",
        chain_key="eip155:1:0xab",
        status=CustomerStatus.VERIFYING,
        created_at=NOW,
        updated_at=NOW,
        kyc_verdict=KycVerdict.APPROVED,
    )
    values = mapping.CUSTOMERS.values(customer)
    assert values["status"] == CustomerStatus.VERIFYING.value
    assert type(values["status"]) is str
    assert values["kyc_verdict"] == KycVerdict.APPROVED.value
    assert "changes" not in values
    loaded = mapping.CUSTOMERS.load(as_row(values))
    assert loaded == customer
    assert loaded.status is CustomerStatus.VERIFYING


def test_accounts_and_cards_round_trip_with_their_optional_cause_and_currency_list() -> None:
    account = Account(
        id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        type=next(iter(AccountType)),
        currencies=["EUR", "USD"],
        status=EntityStatus.INACTIVE,
        inactive_cause=next(iter(InactiveCause)),
        created_at=NOW,
        updated_at=NOW,
    )
    assert mapping.ACCOUNTS.load(as_row(mapping.ACCOUNTS.values(account))) == account
    card = Card(
        id=uuid.uuid4(),
        partner_id=account.partner_id,
        account_id=account.id,
        customer_id=account.customer_id,
        type=next(iter(CardType)),
        network="visa",
        masked_pan="4000 00** **** 0002",
        status=EntityStatus.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
    )
    values = mapping.CARDS.values(card)
    assert values["inactive_cause"] is None
    assert mapping.CARDS.load(as_row(values)) == card


def test_a_column_without_a_field_of_the_same_name_fails_at_import() -> None:
    table = sa.Table("cards_plus", sa.MetaData(), sa.Column("id"), sa.Column("nickname"))
    with pytest.raises(TypeError, match="nickname"):
        EntityMapping(Card, table)
