"""Webhook receivers for tests: real HTTP servers on loopback that check every request's
Standard Webhooks signature, as a partner's endpoint would, and dedupe on eventId."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Attempt:
    headers: dict[str, str]  # lower-case names
    body: bytes
    verified: bool
    answered: int
    at: float  # time.monotonic() when it arrived


@dataclass
class Receiver:
    """`statuses` scripts the answers to successive requests (then 200); `delay` seconds of
    sleep before answering; `first_delay` only before the first answer."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    first_delay: float = 0.0
    secret: str | None = None  # set once the subscription is created
    # Accepted too (a receiver in the middle of a secret rotation keeps both).
    also_secrets: list[str] = field(default_factory=list)
    keep_alive: bool = False  # HTTP/1.1 with persistent connections, as real receivers
    peers: set[tuple[str, int]] = field(default_factory=set)  # client ends of connections
    attempts: list[Attempt] = field(default_factory=list)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # eventId -> body
    port: int = 0
    max_concurrent: int = 0  # the most requests it was answering at one time
    _received: int = 0
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def received(self) -> int:
        """Requests that arrived, answered or not."""
        return self._received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            first = self._received == 0
            self._received += 1
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
            scripted = self.statuses.pop(0) if self.statuses else 200
        try:
            time.sleep(self.delay + (self.first_delay if first else 0.0))
        finally:
            with self._lock:
                self._active -= 1
        verified = False
        parsed: dict[str, Any] | None = None
        for secret in [self.secret, *self.also_secrets] if self.secret is not None else []:
            try:
                parsed = Webhook(secret).verify(body, headers)
                verified = True
                break
            except WebhookVerificationError:
                continue
        answered = scripted if verified else 401
        with self._lock:
            self.attempts.append(Attempt(headers, body, verified, answered, time.monotonic()))
            if verified and 200 <= answered < 300 and parsed is not None:
                self.deliveries.setdefault(str(parsed["eventId"]), parsed)
        return answered

    def wait_for(self, condition: Callable[[Receiver], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if condition(self):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver condition not met in {timeout}s: {len(self.attempts)} attempts, "
                    f"{len(self.deliveries)} deliveries"
                )
            time.sleep(0.05)

    def has_events(self, event_ids: Iterable[str]) -> bool:
        return set(event_ids) <= set(self.deliveries)


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        with self.receiver._lock:
            self.receiver.peers.add(self.client_address)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status = self.receiver.handle(headers, body)
        try:
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:  # the sender gave up waiting (a timed-out attempt)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def running_receiver(receiver: Receiver | None = None) -> Iterator[Receiver]:
    found = receiver or Receiver()
    protocol = "HTTP/1.1" if found.keep_alive else "HTTP/1.0"
    handler = type("Handler", (_Handler,), {"receiver": found, "protocol_version": protocol})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    found.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def sync_url(database_url: str) -> str:
    """The server's async database URL as a blocking driver's."""
    return database_url.replace("sqlite+aiosqlite://", "sqlite://", 1)


# Typed views of the server's tables, so UUIDs bind and read the same on both databases.
_deliveries = sa.table(
    "webhook_deliveries",
    sa.column("id", sa.Integer),
    sa.column("subscription_id", sa.Uuid),
    sa.column("event_id", sa.Uuid),
    sa.column("state", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("last_status", sa.Integer),
    sa.column("last_error", sa.String),
)
_events = sa.table(
    "events",
    sa.column("id", sa.Integer),
    sa.column("event_id", sa.Uuid),
    sa.column("partner_id", sa.Uuid),
)


def delivery_rows(database_url: str, subscription_id: str) -> list[dict[str, Any]]:
    """What an operator sees in webhook_deliveries for one subscription."""
    columns = [_deliveries.c[name] for name in ("event_id", "state", "attempts", "last_status")]
    query = (
        sa.select(*columns, _deliveries.c.last_error)
        .where(_deliveries.c.subscription_id == uuid.UUID(subscription_id))
        .order_by(_deliveries.c.id)
    )
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def event_ids(database_url: str, partner_id: str) -> list[str]:
    """Every committed event of the partner, straight from the outbox."""
    query = (
        sa.select(_events.c.event_id)
        .where(_events.c.partner_id == uuid.UUID(partner_id))
        .order_by(_events.c.id)
    )
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return [str(row[0]) for row in connection.execute(query)]
    finally:
        engine.dispose()
