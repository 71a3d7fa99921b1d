"""Rows <-> domain entities. Kept apart so the domain never sees SQLModel.

The `*_from_row` functions take a Core result row of the table's columns (by column name);
the `*_values` functions give the column values a Core INSERT or UPDATE writes. No ORM
instance is built on either path (see repositories.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from server.domain.accounts import (
    Account,
    AccountType,
    Card,
    CardType,
    EntityStatus,
    InactiveCause,
)
from server.domain.customer import Customer, CustomerStatus, KycVerdict
from server.domain.partner import Partner
from server.domain.signing_keys import PublicKey, SigningKey


def partner_from_row(row: Row[Any]) -> Partner:
    return Partner(
        id=row.id,
        name=row.name,
        api_key=row.api_key,
        secret_hash=row.secret_hash,
        credentials_version=row.credentials_version,
        created_at=row.created_at,
    )


def partner_values(partner: Partner) -> dict[str, Any]:
    return {
        "id": partner.id,
        "name": partner.name,
        "api_key": partner.api_key,
        "secret_hash": partner.secret_hash,
        "credentials_version": partner.credentials_version,
        "created_at": partner.created_at,
    }


def customer_from_row(row: Row[Any]) -> Customer:
    return Customer(
        id=row.id,
        partner_id=row.partner_id,
        external_id=row.external_id,
        chain_id=row.chain_id,
        chain_key=row.chain_key,
        status=CustomerStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        kyc_session_id=row.kyc_session_id,
        kyc_verdict=KycVerdict(row.kyc_verdict) if row.kyc_verdict else None,
        challenge_message=row.challenge_message,
        challenge_expires_at=row.challenge_expires_at,
        suspension_reason=row.suspension_reason,
    )


def customer_values(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "partner_id": customer.partner_id,
        "external_id": customer.external_id,
        "chain_id": customer.chain_id,
        "chain_key": customer.chain_key,
        "status": customer.status.value,
        "kyc_session_id": customer.kyc_session_id,
        "kyc_verdict": customer.kyc_verdict.value if customer.kyc_verdict else None,
        "challenge_message": customer.challenge_message,
        "challenge_expires_at": customer.challenge_expires_at,
        "suspension_reason": customer.suspension_reason,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }


def account_from_row(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        partner_id=row.partner_id,
        customer_id=row.customer_id,
        type=AccountType(row.type),
        currencies=list(row.currencies),
        status=EntityStatus(row.status),
        inactive_cause=InactiveCause(row.inactive_cause) if row.inactive_cause else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def account_values(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "partner_id": account.partner_id,
        "customer_id": account.customer_id,
        "type": account.type.value,
        "currencies": list(account.currencies),
        "status": account.status.value,
        "inactive_cause": account.inactive_cause.value if account.inactive_cause else None,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }


def card_from_row(row: Row[Any]) -> Card:
    return Card(
        id=row.id,
        partner_id=row.partner_id,
        account_id=row.account_id,
        customer_id=row.customer_id,
        type=CardType(row.type),
        network=row.network,
        masked_pan=row.masked_pan,
        status=EntityStatus(row.status),
        inactive_cause=InactiveCause(row.inactive_cause) if row.inactive_cause else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def card_values(card: Card) -> dict[str, Any]:
    return {
        "id": card.id,
        "partner_id": card.partner_id,
        "account_id": card.account_id,
        "customer_id": card.customer_id,
        "type": card.type.value,
        "network": card.network,
        "masked_pan": card.masked_pan,
        "status": card.status.value,
        "inactive_cause": card.inactive_cause.value if card.inactive_cause else None,
        "created_at": card.created_at,
        "updated_at": card.updated_at,
    }


def signing_key_from_row(row: Row[Any]) -> SigningKey:
    return SigningKey(
        partner_id=row.partner_id,
        public=PublicKey(row.key_id, row.algorithm, row.public_key_pem),
        created_at=row.created_at,
    )
