"""The one place that picks SQL by database: `INSERT ... ON CONFLICT` exists in both
PostgreSQL and SQLite (3.24+), but SQLAlchemy builds it from each dialect's own `insert`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")


def is_postgres(session: Any) -> bool:
    """`session`: an AsyncSession or Session bound to our engine."""
    return bool(session.get_bind().dialect.name == "postgresql")


def upsert_insert(session: Any) -> Any:
    """The dialect's `insert`, which has `on_conflict_do_nothing/do_update`."""
    return postgresql.insert if is_postgres(session) else sqlite.insert


class PerDialect(Generic[T]):
    """A statement built once for each database at import (a hot path's statement is not
    rebuilt per call), and picked by the session it runs on.

    `build(insert, postgres)` gets the dialect's `insert` and whether it is PostgreSQL's."""

    def __init__(self, build: Callable[[Any, bool], T]) -> None:
        self._postgres = build(postgresql.insert, True)
        self._sqlite = build(sqlite.insert, False)

    def of(self, session: Any) -> T:
        return self._postgres if is_postgres(session) else self._sqlite
