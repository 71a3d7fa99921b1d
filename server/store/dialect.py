"""The one place that picks SQL by database: `INSERT ... ON CONFLICT` exists in both
PostgreSQL and SQLite (3.24+), but SQLAlchemy builds it from each dialect's own `insert`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite


def is_postgres(session: Any) -> bool:
    """`session`: an AsyncSession or Session bound to our engine."""
    return bool(session.get_bind().dialect.name == "postgresql")


def upsert_insert(session: Any) -> Any:
    """The dialect's `insert`, which has `on_conflict_do_nothing/do_update`."""
    return postgresql.insert if is_postgres(session) else sqlite.insert
