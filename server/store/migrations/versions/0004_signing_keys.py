"""signing keys, signature nonces, the gateway attestation secret

Revision ID: 0004
Revises: 0003
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.store.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("public_key_pem", sa.String(length=1024), nullable=False),
        sa.Column("created_at", server.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("partner_id", "key_id"),
    )
    op.create_table(
        "signature_nonces",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("expires_at", server.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "nonce"),
    )
    op.create_index("ix_signature_nonces_expires", "signature_nonces", ["expires_at"])
    # The gateway's verifier (ext_authz) vouches for REST requests with an HMAC under this
    # key; every replica must know it, and no caller ever does.
    server_secrets = sa.table("server_secrets", sa.column("name"), sa.column("value"))
    op.bulk_insert(server_secrets, [{"name": "attestation", "value": secrets.token_urlsafe(48)}])


def downgrade() -> None:
    op.execute("DELETE FROM server_secrets WHERE name = 'attestation'")
    op.drop_index("ix_signature_nonces_expires", table_name="signature_nonces")
    op.drop_table("signature_nonces")
    op.drop_table("signing_keys")
