"""Waking this replica when another one commits events: PostgreSQL LISTEN/NOTIFY.

A notification is only a wake-up, never the data: after every notification, and after every
reconnect of the listening connection (notifications sent while it was down are lost),
readers re-read the outbox from their own last sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import UUID

import psycopg
import structlog

from server.store.outbox import CHANNEL

log = structlog.get_logger(__name__)


class PostgresListener:
    def __init__(
        self,
        database_url: str,
        *,
        on_partner: Callable[[UUID], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        # SQLAlchemy's URL -> libpq's.
        self._dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._on_partner = on_partner
        self._on_reconnect = on_reconnect
        self.connection: psycopg.AsyncConnection[object] | None = None  # tests kill it

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as connection:
                    self.connection = connection
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._on_reconnect()  # anything sent while we were not listening
                    backoff = 0.2
                    async for notification in connection.notifies():
                        try:
                            self._on_partner(UUID(notification.payload))
                        except ValueError:
                            log.warning("odd notification", payload=notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
            finally:
                self.connection = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
