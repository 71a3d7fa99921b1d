"""drop the gateway attestation secret: REST calls are verified in the one transcoded call

Revision ID: 0007
Revises: 0006
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nothing reads it any more (no ext_authz verifier, no attestation); a secret kept
    # around unused is one more thing to leak.
    op.execute("DELETE FROM server_secrets WHERE name = 'attestation'")


def downgrade() -> None:
    server_secrets = sa.table("server_secrets", sa.column("name"), sa.column("value"))
    op.bulk_insert(server_secrets, [{"name": "attestation", "value": secrets.token_urlsafe(48)}])
