"""operator actions: customer suspension, the audit table, global event positions

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from server.store.tables import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customers",
        sa.Column("suspension_reason", sqlmodel.AutoString(length=500), nullable=True),
    )
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal", sqlmodel.AutoString(length=128), nullable=False),
        sa.Column("action", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.AutoString(length=500), nullable=False),
        sa.Column("entity", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_operator_actions_entity", "operator_actions", ["entity_id", "at"])
    # Global positions: events already written are all committed, so their row ids (unique,
    # insertion order) are a valid history to continue from.
    op.add_column("events", sa.Column("position", sa.BigInteger(), nullable=True))
    op.execute("UPDATE events SET position = id")
    op.create_index("ix_events_position", "events", ["position"], unique=True)
    op.create_table(
        "event_positions",
        sa.Column("name", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.execute(
        "INSERT INTO event_positions (name, last_position)"
        " SELECT 'global', COALESCE(MAX(id), 0) FROM events"
    )


def downgrade() -> None:
    op.drop_table("event_positions")
    op.drop_index("ix_events_position", table_name="events")
    op.drop_column("events", "position")
    op.drop_index("ix_operator_actions_entity", table_name="operator_actions")
    op.drop_table("operator_actions")
    op.drop_column("customers", "suspension_reason")
