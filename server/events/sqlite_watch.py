"""Several SQLite workers on one database file: a commit by one wakes the others.

PostgreSQL has LISTEN/NOTIFY (events/notifier.py); SQLite has `PRAGMA data_version`, which
changes on a connection whenever another connection committed to the file. One connection
of our own, asked every `interval`, tells this worker that something changed somewhere;
what changed is then read where it lives (the outbox from each stream's cursor, the memos
afresh), exactly as after a NOTIFY. Costs one tiny statement per interval, and a wake-up per
interval at most, however many commits happened in it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)

INTERVAL_SECONDS = 0.05


class SqliteChangeWatcher:
    def __init__(
        self,
        database_url: str,
        on_change: Callable[[], None],
        *,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        path = make_url(database_url).database
        if not path:
            raise ValueError("an in-memory SQLite database has no other writers to watch")
        self._path = path
        self._on_change = on_change
        self._interval = interval

    async def run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            last = _data_version(connection)
            while True:
                await asyncio.sleep(self._interval)
                try:
                    version = _data_version(connection)
                except sqlite3.Error:
                    log.exception("sqlite change watch failed; waking everyone")
                    version = -1
                if version != last:
                    last = version
                    self._on_change()
        finally:
            connection.close()


def _data_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA data_version").fetchone()[0])
