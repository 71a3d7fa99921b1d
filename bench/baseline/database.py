"""The baseline's database, the way FastAPI's own SQLModel tutorial does it: a plain
(blocking) engine and a `Session` per request, used from `def` endpoints that FastAPI runs
in its thread pool; one hand-off to a thread per request. (Async SQLAlchemy over aiosqlite,
the other obvious design, hands every statement to a thread and back, several times; it
measured about twice the CPU per request here, so it would make a weaker baseline.)

SQLite is set up the way any team that has read the SQLite pitfalls would: WAL,
synchronous=NORMAL, a busy timeout, BEGIN IMMEDIATE for writes, and one process-wide lock
so this process's writers queue on it instead of in SQLite's sleeping busy handler. These
are the settings of server/store/engine.py, written out here so the baseline stands alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine

from server.store.tables import ServerSecretRow


class Database:
    def __init__(self, url: str) -> None:
        self.is_sqlite = url.startswith("sqlite")
        self._writer: Engine
        if self.is_sqlite:
            # The bench's URL names the async driver the service uses; this app is blocking.
            # One connection per thread of FastAPI's pool (anyio's 40), kept: a smaller pool
            # with overflow would open and close (and re-tune) connections under load.
            self.engine = create_engine(
                url.replace("sqlite+aiosqlite://", "sqlite://", 1),
                pool_size=40,
                max_overflow=0,
                connect_args={"check_same_thread": False},
            )
            _tune_sqlite(self.engine)
            self._writer = self.engine.execution_options(sqlite_immediate=True)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20)
            self._writer = self.engine
        self.dialect = self.engine.dialect.name
        self._write_lock = threading.Lock() if self.is_sqlite else None

    def read(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction; the caller commits (leaving without commit rolls back)."""
        with contextlib.ExitStack() as held:
            if self._write_lock is not None:
                held.enter_context(self._write_lock)
            yield held.enter_context(Session(self._writer, expire_on_commit=False))

    def server_secret(self, name: str) -> str:
        """A secret the migrations made (the token signing key is row "token")."""
        with self.read() as session:
            row = session.get(ServerSecretRow, name)
        if row is None:
            raise RuntimeError(f"no server secret {name!r}: is the database migrated?")
        return row.value

    def close(self) -> None:
        self.engine.dispose()


def _tune_sqlite(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we decide what BEGIN to send
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("sqlite_immediate", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
