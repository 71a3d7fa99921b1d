"""Faults under load (issue 13, "a fault-injection suite"), bounded to about a minute.

Two replicas on a PostgreSQL of the test's own (tests/helpers/private_postgres.py), behind one
Envoy. A partner creates customers through the gateway from several threads, retrying with
the same Idempotency-Key as the contract tells partners to; a webhook receiver and an SSE
subscriber follow the changes. Meanwhile the test kills a replica with SIGKILL and starts it
again, terminates every database connection, restarts Envoy and restarts PostgreSQL.

Afterwards: every create the partner sent exists exactly once (nothing committed lost, no
duplicate), the partner's event sequence has no gap, every event reached the webhook
receiver, the stream (reconnecting with its last sequence) saw every event once and in
order, and no answer was a 5xx other than a documented 503 while a dependency was down.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from client.signing import SigningAuth
from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.helpers.partners import create_partner
from tests.helpers.private_postgres import PrivatePostgres, private_postgres
from tests.helpers.processes import ServerProcess, free_port, running_server
from tests.helpers.receivers import Receiver, running_receiver
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet

pytestmark = pytest.mark.timeout(300)

WRITERS = 4
# Retries within seconds, deliveries never given up during the test; a killed replica's
# webhook leases (3 x the timeout) run out within the test too.
SERVER_ENV = {
    "CUSTOMERS_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "CUSTOMERS_WEBHOOK_RETRY_MAX_AGE_SECONDS": "600",
    "CUSTOMERS_WEBHOOK_TIMEOUT_SECONDS": "2",
}
# What a partner may see while a dependency is down, and retries (with the same key):
# 503 from the server (database) or from Envoy (no backend), a connection the gateway
# refused or cut while it restarts, and the in-flight answer of a retry that overtook its
# own first attempt.
RETRYABLE = {
    (503, "DATABASE_UNAVAILABLE"),
    (503, "UPSTREAM_UNAVAILABLE"),
    (409, "IDEMPOTENCY_KEY_IN_FLIGHT"),
    (0, "connection"),
}
GIVE_UP_SECONDS = 60.0


def _reason(answer: httpx.Response) -> str:
    try:
        details = answer.json().get("details", [])
    except ValueError:
        return f"non-JSON body: {answer.text[:80]!r}"
    for detail in details:
        if detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return str(detail["reason"])
    return "no ErrorInfo"


@dataclass
class Load:
    """Creates sent from several threads until told to stop; each one retried with its own
    Idempotency-Key until it is answered 201."""

    base_url: str
    partner: RestPartner
    stop: threading.Event = field(default_factory=threading.Event)
    created: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> customer id
    unfinished: list[str] = field(default_factory=list)
    outcomes: Counter[tuple[int, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            while not self.stop.is_set():
                self._create(http)

    def _create(self, http: httpx.Client) -> None:
        key = str(uuid.uuid4())
        wallet = caip10(new_wallet())
        body = {"chainId": wallet, "externalId": wallet[-20:]}
        headers = {"Authorization": f"Bearer {self.partner.token}", "Idempotency-Key": key}
        given_up = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < given_up:
            try:
                answer = http.post(
                    "/customers", json=body, headers=headers, auth=SigningAuth(self.partner.key)
                )
                outcome = (answer.status_code, "" if answer.is_success else _reason(answer))
            except httpx.TransportError:
                outcome = (0, "connection")
                answer = None
            with self._lock:
                self.outcomes[outcome] += 1
                if answer is not None and answer.status_code == 201:
                    self.created[key] = answer.json()["id"]
                    return
            if outcome not in RETRYABLE:
                break
            time.sleep(0.1)
        with self._lock:
            self.unfinished.append(key)


@dataclass
class Subscriber:
    """Follows /customers:watch through the gateway from the start, reconnecting after its
    last sequence whenever the stream breaks, as a partner's client does."""

    base_url: str
    partner: RestPartner
    seqs: list[int] = field(default_factory=list)
    reconnects: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.done.is_set():
            after = self.seqs[-1] if self.seqs else 0
            with suppress(httpx.HTTPError, ValueError):
                self._follow(after)
            self.reconnects += 1
            time.sleep(0.2)

    def _follow(self, after: int) -> None:
        headers = {"Authorization": f"Bearer {self.partner.token}"}
        timeout = httpx.Timeout(10, read=3)
        with (
            httpx.Client(base_url=self.base_url, timeout=timeout) as http,
            http.stream(
                "GET",
                f"/customers:watch?after={after}",
                headers=headers,
                auth=SigningAuth(self.partner.key),
            ) as answer,
        ):
            if answer.status_code != 200:
                return
            for line in answer.iter_lines():
                if self.done.is_set():
                    return
                if line.startswith("data:"):
                    message = json.loads(line[len("data:") :])
                    if not message.get("heartbeat"):
                        self.seqs.append(int(message["seq"]))


@dataclass
class Gateway:
    config: str
    admin_port: int
    log_path: pathlib.Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_envoy_sync(
            self.config, admin_port=self.admin_port, log_path=self.log_path
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_envoy_sync(self.process)
            self.process = None


@dataclass
class World:
    postgres: PrivatePostgres
    servers: list[ServerProcess]
    gateway: Gateway
    base_url: str


@pytest.fixture
def world(tmp_path: pathlib.Path) -> Iterator[World]:
    with ExitStack() as stack:
        postgres = stack.enter_context(private_postgres())
        servers = [
            stack.enter_context(running_server(postgres.url, **SERVER_ENV)) for _ in range(2)
        ]
        http_port, admin_port = free_port(), free_port()
        config = render_gateway(
            http_port=http_port,
            admin_port=admin_port,
            backends=[path for server in servers for path in server.sockets],
            access_log=False,
        )
        gateway = Gateway(config, admin_port, tmp_path / "envoy.log")
        gateway.start()
        stack.callback(gateway.stop)
        yield World(postgres, servers, gateway, f"http://127.0.0.1:{http_port}")


def _events(postgres: PrivatePostgres, partner_id: str) -> list[tuple[int, str]]:
    """The partner's events as committed: (sequence, event id), in sequence order."""
    with psycopg.connect(postgres.plain_url) as db:
        rows = db.execute(
            "SELECT seq, event_id FROM events WHERE partner_id = %s ORDER BY seq",
            (partner_id,),
        ).fetchall()
    return [(int(seq), str(event_id)) for seq, event_id in rows]


def _customers(postgres: PrivatePostgres, partner_id: str) -> list[str]:
    with psycopg.connect(postgres.plain_url) as db:
        rows = db.execute("SELECT id FROM customers WHERE partner_id = %s", (partner_id,))
        return [str(row[0]) for row in rows.fetchall()]


def test_nothing_is_lost_duplicated_or_answered_5xx_through_crashes_and_restarts(
    world: World,
) -> None:
    credentials = create_partner(world.postgres.url)
    with running_receiver(Receiver(keep_alive=True)) as receiver:
        with httpx.Client(base_url=world.base_url, timeout=10) as http:
            partner = RestPartner(http, credentials)
            created = partner.call(
                "PUT",
                "/webhooks",
                json={"callbackUrl": receiver.url, "types": ["customer.updated"]},
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]

        load = Load(world.base_url, partner)
        subscriber = Subscriber(world.base_url, partner)
        threads = [threading.Thread(target=load.run) for _ in range(WRITERS)]
        threads.append(threading.Thread(target=subscriber.run))
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            world.servers[0].kill()
            time.sleep(1)
            world.servers[0].start_again()
            time.sleep(2)
            assert world.postgres.terminate_backends() > 0
            time.sleep(2)
            world.gateway.stop()
            time.sleep(0.5)
            world.gateway.start()
            time.sleep(2)
            world.postgres.restart()
            time.sleep(3)
        finally:
            load.stop.set()
            for thread in threads[:WRITERS]:
                thread.join(GIVE_UP_SECONDS + 15)

        events = _events(world.postgres, str(credentials.partner_id))
        customers = _customers(world.postgres, str(credentials.partner_id))
        # Every create was answered 201 in the end, and made exactly one customer.
        assert load.unfinished == [], load.outcomes
        assert len(load.created) >= 40, load.outcomes  # the load really ran through the faults
        assert sorted(customers) == sorted(load.created.values())
        # No 5xx but the documented 503s; nothing else but 201 and the retryable answers.
        assert set(load.outcomes) <= RETRYABLE | {(201, "")}, load.outcomes
        # The partner's sequence has no gap; one customer.updated per create.
        assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
        assert len(events) == len(customers)
        # Every event delivered to the webhook, and followed by the stream once, in order.
        receiver.wait_for(lambda r: r.has_events(event_id for _, event_id in events), 60)
        deadline = time.monotonic() + 30
        while len(subscriber.seqs) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
        subscriber.done.set()
        threads[-1].join(15)
        assert subscriber.seqs == [seq for seq, _ in events]
        assert subscriber.reconnects >= 1  # the stream did break and resume
        print(
            "FAULTS",
            load.outcomes,
            len(load.created),
            len(events),
            subscriber.reconnects,
            len(receiver.attempts),
        )
