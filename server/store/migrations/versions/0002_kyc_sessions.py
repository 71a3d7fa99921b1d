"""kyc sessions: customers are found by their KYC session id (partner callbacks)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Unique: the session id is the capability a callback or portal link presents. NULLs
    # (customers made before a session was opened) do not collide on SQLite or PostgreSQL.
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index("ix_customers_kyc_session", ["kyc_session_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_kyc_session")
