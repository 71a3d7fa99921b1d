"""Engine construction: SQLite tuned for concurrent writers, PostgreSQL as is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo)
    # No pool_pre_ping: it costs a round trip per checkout; stale connections are recycled.
    engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_recycle=1800)
    # An executemany INSERT (a cascade's 61 events, its audit rows) becomes one multi-row
    # INSERT ... VALUES per 1,000 rows, as SQLAlchemy's psycopg2 dialect does by default;
    # psycopg 3's own executemany sends and executes one INSERT per row. (Not for
    # ON CONFLICT inserts, which SQLAlchemy keeps per row.)
    engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def sqlite_inline_engine(url: str) -> Engine:
    """A plain (blocking) engine whose SQLite statements run on the event loop's own thread.

    Why: aiosqlite hands every statement to a worker thread, so a transaction costs several
    thread hand-offs and ~1 ms of CPU, while the same statements run directly take ~50 us
    each. It is safe for one server process: WAL readers never wait for writers, and this
    process's writers queue on an asyncio lock (unit_of_work.py) before BEGIN IMMEDIATE, so
    they only ever wait for another process's write (the operator CLI), bounded by the
    short busy timeout below.
    """
    engine = create_engine(
        url.replace("sqlite+aiosqlite://", "sqlite://", 1),
        **_pool(url, size=4),
        connect_args={"check_same_thread": False},
    )
    # Short: a wait here stalls the event loop (only another process's write can cause one).
    _tune_sqlite(engine, busy_timeout_ms=2_000)
    return engine


def _sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo, **_pool(url, size=8))
    _tune_sqlite(engine.sync_engine)
    return engine


def _pool(url: str, *, size: int) -> dict[str, int]:
    """Pool sizes for a database file; an in-memory database has one connection (SQLAlchemy
    picks a StaticPool, which takes no sizes): service tests over fakes build one unused."""
    if make_url(url).database in (None, "", ":memory:"):
        return {}
    return {"pool_size": size, "max_overflow": size}


def _tune_sqlite(engine: Engine, *, busy_timeout_ms: int = 10_000) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so `begin` below decides the BEGIN kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that upgrades later
        # fails at once with "database is locked" instead of waiting its turn.
        # Readers stay in autocommit: one SELECT is consistent on its own, and skipping BEGIN
        # saves a round trip to the driver's thread on every read.
        if connection.get_execution_options().get("sqlite_immediate", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
