"""SQLModel tables. Every tenant row carries `partner_id`; every timestamp is UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import JSON, Column, Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware on both sides. SQLite keeps no offset, so UTC is stored naive there
    and re-labelled on the way out; PostgreSQL uses timestamptz."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class PartnerRow(SQLModel, table=True):
    __tablename__ = "partners"

    id: UUID = Field(primary_key=True)
    name: str = Field(max_length=128)
    api_key: UUID = Field(unique=True)
    secret_hash: str = Field(max_length=64)
    credentials_version: int
    created_at: datetime = _time()


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        sa.UniqueConstraint("partner_id", "chain_key", name="uq_customers_partner_chain"),
        sa.UniqueConstraint("partner_id", "external_id", name="uq_customers_partner_external"),
        # Keyset pagination: newest first within a partner.
        sa.Index("ix_customers_partner_created", "partner_id", "created_at", "id"),
        # KYC partner callbacks name only the session (migration 0002).
        sa.Index("ix_customers_kyc_session", "kyc_session_id", unique=True),
    )

    id: UUID = Field(primary_key=True)
    partner_id: UUID = Field(foreign_key="partners.id")
    external_id: str = Field(max_length=128)
    chain_id: str = Field(max_length=200)
    chain_key: str = Field(max_length=200)
    status: str = Field(max_length=16)
    kyc_session_id: str | None = Field(default=None, max_length=64)
    kyc_verdict: str | None = Field(default=None, max_length=16)
    challenge_message: str = Field(default="", max_length=2048)
    challenge_expires_at: datetime | None = _time(default=None)
    # Set while an operator suspension stands (migration 0009): the operator's reason.
    suspension_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        sa.Index("ix_accounts_customer_created", "partner_id", "customer_id", "created_at", "id"),
    )

    id: UUID = Field(primary_key=True)
    partner_id: UUID = Field(foreign_key="partners.id")
    customer_id: UUID = Field(foreign_key="customers.id")
    type: str = Field(max_length=32)
    currencies: list[str] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=16)
    inactive_cause: str | None = Field(default=None, max_length=16)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class CardRow(SQLModel, table=True):
    __tablename__ = "cards"
    __table_args__ = (
        sa.Index("ix_cards_account_created", "partner_id", "account_id", "created_at", "id"),
        sa.Index("ix_cards_customer", "partner_id", "customer_id"),
    )

    id: UUID = Field(primary_key=True)
    partner_id: UUID = Field(foreign_key="partners.id")
    account_id: UUID = Field(foreign_key="accounts.id")
    customer_id: UUID = Field(foreign_key="customers.id")
    type: str = Field(max_length=16)
    network: str = Field(max_length=16)
    masked_pan: str = Field(max_length=19)
    status: str = Field(max_length=16)
    inactive_cause: str | None = Field(default=None, max_length=16)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class StatusChangeRow(SQLModel, table=True):
    """Audit trail: every status transition with its cause, for support engineers."""

    __tablename__ = "status_changes"
    __table_args__ = (sa.Index("ix_status_changes_entity", "entity_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_id: UUID = Field(foreign_key="partners.id")
    entity: str = Field(max_length=16)
    entity_id: UUID
    from_status: str = Field(max_length=16)
    to_status: str = Field(max_length=16)
    cause: str = Field(max_length=200)
    at: datetime = _time()


class ServerSecretRow(SQLModel, table=True):
    """Secrets every replica must share (token signing); made by `migrate` if missing."""

    __tablename__ = "server_secrets"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=256)


class IdempotencyRow(SQLModel, table=True):
    """One claimed Idempotency-Key: the request's fingerprint and, once done, its answer."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.Index("ix_idempotency_expires", "expires_at"),)

    partner_id: UUID = Field(primary_key=True, foreign_key="partners.id")
    key: UUID = Field(primary_key=True)
    fingerprint: str = Field(max_length=64)
    state: str = Field(max_length=16)
    claim_id: UUID  # who holds the claim: a take-over must not be undone by the loser
    lease_until: datetime = _time()
    expires_at: datetime = _time()
    grpc_code: int = 0
    http_status: int | None = None
    response: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created_at: datetime = _time()


class SigningKeyRow(SQLModel, table=True):
    __tablename__ = "signing_keys"

    partner_id: UUID = Field(primary_key=True, foreign_key="partners.id")
    key_id: str = Field(primary_key=True, max_length=64)
    algorithm: str = Field(max_length=32)
    public_key_pem: str = Field(max_length=1024)
    created_at: datetime = _time()


class SignatureNonceRow(SQLModel, table=True):
    """Nonces seen inside the signature window, shared by every replica."""

    __tablename__ = "signature_nonces"
    __table_args__ = (sa.Index("ix_signature_nonces_expires", "expires_at"),)

    key_id: str = Field(primary_key=True, max_length=64)
    nonce: str = Field(primary_key=True, max_length=128)
    expires_at: datetime = _time()


class EventRow(SQLModel, table=True):
    """The outbox: written in the same transaction as the change it records."""

    __tablename__ = "events"
    __table_args__ = (
        sa.UniqueConstraint("partner_id", "seq", name="uq_events_partner_seq"),
        sa.Index("ix_events_occurred", "occurred_at"),
        sa.Index("ix_events_position", "position", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)  # global commit-ish order
    event_id: UUID = Field(unique=True)
    partner_id: UUID = Field(foreign_key="partners.id")
    seq: int = Field(sa_type=sa.BigInteger)
    type: str = Field(max_length=32)
    entity_id: UUID
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = _time()
    # Global, in commit order across partners (the cross-partner stream's cursor), from
    # event_positions at commit (migration 0009; earlier events got their row id).
    position: int | None = Field(default=None, sa_type=sa.BigInteger)


class EventPositionRow(SQLModel, table=True):
    """The last global event position handed out (one row, "global"); its row lock, taken
    last before COMMIT, makes position order the commit order across partners."""

    __tablename__ = "event_positions"

    name: str = Field(primary_key=True, max_length=16)
    last_position: int = Field(default=0, sa_type=sa.BigInteger)


class OperatorActionRow(SQLModel, table=True):
    """Audit of the programme operator's actions: who, what, why, when, on which entity."""

    __tablename__ = "operator_actions"
    __table_args__ = (sa.Index("ix_operator_actions_entity", "entity_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=128)
    action: str = Field(max_length=16)
    reason: str = Field(max_length=500)
    entity: str = Field(max_length=16)
    entity_id: UUID
    partner_id: UUID = Field(foreign_key="partners.id")
    at: datetime = _time()


class PartnerSequenceRow(SQLModel, table=True):
    """The last event sequence handed out per partner; its row lock orders commits."""

    __tablename__ = "partner_sequences"

    partner_id: UUID = Field(primary_key=True, foreign_key="partners.id")
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)


class WebhookSubscriptionRow(SQLModel, table=True):
    """A partner's webhook subscription. Deleting one only stamps `deleted_at`: its
    deliveries keep their foreign key, and the dispatcher drops their pending retries."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        sa.Index("ix_webhook_subscriptions_partner", "partner_id", "created_at", "id"),
    )

    id: UUID = Field(primary_key=True)
    partner_id: UUID = Field(foreign_key="partners.id")
    callback_url: str = Field(max_length=2048)
    types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    secret: str = Field(max_length=64)  # whsec_...: needed in clear to sign (HMAC)
    # The secret before the last rotation: deliveries are signed with it too until then.
    previous_secret: str | None = Field(default=None, max_length=64)
    previous_secret_until: datetime | None = _time(default=None)
    failing_since: datetime | None = _time(default=None)  # first failure since a success
    disabled_at: datetime | None = _time(default=None)  # set: nothing is sent until enabled
    created_at: datetime = _time()
    updated_at: datetime = _time()
    deleted_at: datetime | None = _time(default=None)


class WebhookDeliveryRow(SQLModel, table=True):
    """One event owed to one subscription: pending -> delivering (leased) -> delivered, or
    back to pending with a later `next_attempt_at`, or finally failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint(
            "subscription_id", "event_id", name="uq_webhook_deliveries_subscription_event"
        ),
        sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),  # the log
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: UUID = Field(foreign_key="webhook_subscriptions.id")
    event_id: UUID  # no foreign key: events are pruned after 30 days, deliveries need not be
    partner_id: UUID = Field(foreign_key="partners.id")
    event_type: str | None = Field(default=None, max_length=32)  # NULL: made before 0010
    seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # the event's sequence
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # the flat body
    attempts: int = 0
    state: str = Field(max_length=16)
    next_attempt_at: datetime = _time()
    lease_until: datetime | None = _time(default=None)
    last_status: int | None = None  # the receiver's HTTP status, never its body
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = _time()
    # A redelivery, replay or re-enable starts the retry window again from here.
    redelivered_at: datetime | None = _time(default=None)


class WebhookRelayCursorRow(SQLModel, table=True):
    """How far the webhook relay has read each subscribed partner's events, by per-partner
    sequence (commit order), not by the events' row id (insertion order)."""

    __tablename__ = "webhook_relay_cursors"

    partner_id: UUID = Field(primary_key=True, foreign_key="partners.id")
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)
