"""Waking this replica when another one commits events, or changes a partner's credentials
or signing keys: PostgreSQL LISTEN/NOTIFY.

A notification is only a wake-up, never the data: after every notification, and after every
reconnect of the listening connection (notifications sent while it was down are lost),
readers re-read the outbox from their own last sequence, and the memos of credentials and
keys are dropped (for the partner; after a reconnect, entirely).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import UUID

import psycopg
import structlog

from server.store.outbox import CHANNEL
from server.store.unit_of_work import CREDENTIALS_CHANNEL

log = structlog.get_logger(__name__)


class PostgresListener:
    def __init__(
        self,
        database_url: str,
        *,
        on_partner: Callable[[UUID], None],
        on_credentials: Callable[[UUID], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        """`on_partner`: events were committed for the partner; `on_credentials`: its
        credentials or signing keys changed; `on_reconnect`: anything may have been missed."""
        # SQLAlchemy's URL -> libpq's.
        self._dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._handlers = {CHANNEL: on_partner, CREDENTIALS_CHANNEL: on_credentials}
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
                    for channel in self._handlers:
                        await connection.execute(f"LISTEN {channel}")
                    self._on_reconnect()  # anything sent while we were not listening
                    backoff = 0.2
                    async for notification in connection.notifies():
                        handler = self._handlers.get(notification.channel)
                        try:
                            partner_id = UUID(notification.payload)
                        except ValueError:
                            handler = None
                        if handler is None:
                            log.warning(
                                "odd notification",
                                channel=notification.channel,
                                payload=notification.payload,
                            )
                            continue
                        handler(partner_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
            finally:
                self.connection = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
