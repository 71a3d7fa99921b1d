"""webhook operations: secret rotation, disabling, and the delivery log's columns

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.store.tables import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Secret rotation: the secret before the last rotation, still signed with until then.
    op.add_column(
        "webhook_subscriptions",
        sa.Column("previous_secret", sa.String(length=64), nullable=True),
    )
    op.add_column(
        "webhook_subscriptions",
        sa.Column("previous_secret_until", UTCDateTime(), nullable=True),
    )
    # Disabling: since when every attempt failed (NULL after a success), and when it was
    # disabled for that.
    op.add_column("webhook_subscriptions", sa.Column("failing_since", UTCDateTime(), nullable=True))
    op.add_column("webhook_subscriptions", sa.Column("disabled_at", UTCDateTime(), nullable=True))
    # The delivery log shows each delivery's event type and sequence without its payload.
    op.add_column("webhook_deliveries", sa.Column("event_type", sa.String(32), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("redelivered_at", UTCDateTime(), nullable=True))
    # Rows made before: their events are still there unless pruned (then they stay NULL).
    op.execute(
        "UPDATE webhook_deliveries SET"
        " seq = (SELECT e.seq FROM events e WHERE e.event_id = webhook_deliveries.event_id),"
        " event_type = (SELECT e.type FROM events e"
        " WHERE e.event_id = webhook_deliveries.event_id)"
    )
    op.create_index(
        "ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_subscription", table_name="webhook_deliveries")
    for column in ("redelivered_at", "seq", "event_type"):
        op.drop_column("webhook_deliveries", column)
    for column in ("disabled_at", "failing_since", "previous_secret_until", "previous_secret"):
        op.drop_column("webhook_subscriptions", column)
