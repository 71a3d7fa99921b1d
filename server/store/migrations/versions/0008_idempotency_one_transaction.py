"""idempotency claims commit with their answers: retire the 'committed' record state

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An older server version marked "changes committed, answer not stored yet" as 'committed',
    # answered 409 in flight until the key expired. The same answer, in today's states: an
    # in-flight claim whose lease lasts as long as the key.
    op.execute(
        "UPDATE idempotency_keys SET state = 'in_flight', lease_until = expires_at "
        "WHERE state = 'committed'"
    )


def downgrade() -> None:
    pass  # the rows are valid for the older server version as they are
